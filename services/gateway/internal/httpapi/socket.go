package httpapi

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	fastws "github.com/fasthttp/websocket"

	"wisp/services/gateway/internal/relay"
)

// RFC 6455 opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA

	maxControlPayload = 125
	// maxBatch is how many queued frames one write system call may carry.
	maxBatch = 16
)

// socket is the server side of one WebSocket, written for wisp's traffic:
// the server sends text frames (the room's events), pings and a close; the
// client sends control frames, and whatever else it sends is read and
// dropped. It keeps no goroutine while idle except the reader blocked in
// read: a writer is started when a frame, a kick or a ping is due, and ends
// when nothing is left to write.
type socket struct {
	srv    *Server
	client *relay.Client
	roomID string
	conn   net.Conn

	started  atomic.Bool
	writing  atomic.Bool  // a writer goroutine runs (or is about to)
	pingWant atomic.Bool  // the pinger asked for a ping
	nextPing atomic.Int64 // when the next ping is due (UnixNano); 0 before start
	closing  atomic.Bool  // a close frame went out, or the connection failed

	wmu       sync.Mutex // one writer on conn at a time
	wdeadline int64      // the write deadline set last (UnixNano), under wmu
	raw       syscall.RawConn
	// carry holds the unwritten end of frames a non-blocking write could not
	// finish (under wmu); it goes out before anything else, so no frame is
	// ever interleaved with another. closeAfter: the room's last frame is in
	// it (or was just written), so the close follows.
	carry      []byte
	closeAfter bool

	// rbuf is the reader's scratch: header, extended length, mask key and a
	// control frame's payload.
	rbuf [2 + 8 + 4 + maxControlPayload]byte
}

func newSocket(srv *Server, client *relay.Client, roomID string) *socket {
	return &socket{srv: srv, client: client, roomID: roomID}
}

// start attaches the upgraded connection and writes whatever was queued
// since the client joined the room.
func (k *socket) start(conn net.Conn) {
	k.conn = conn
	if sc, ok := conn.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			k.raw = rc
		}
	}
	k.nextPing.Store(time.Now().Add(pingPeriod).UnixNano())
	k.started.Store(true)
	k.wake()
}

// wake writes what is due, or starts a writer to do it, unless a writer
// runs. It never blocks: the relay calls it while delivering to a whole
// room. Most of the time the socket's send buffer has room, so the frames
// go out at once in a non-blocking write, with no goroutine to start and
// schedule; whatever would block is left to a writer goroutine.
func (k *socket) wake() {
	if !k.started.Load() || !k.writing.CompareAndSwap(false, true) {
		return
	}
	for k.writeNow() {
		k.writing.Store(false)
		// As in drain: look again for what arrived before the flag dropped.
		if !k.pending() || !k.writing.CompareAndSwap(false, true) {
			return
		}
	}
	go k.drain()
}

var frameBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// writeNow writes the queued frames without blocking and reports whether
// it was all that was due; false leaves the rest to a writer goroutine
// (a kick, a ping, a close, bytes the send buffer had no room for).
func (k *socket) writeNow() bool {
	if k.raw == nil || !k.wmu.TryLock() {
		return false
	}
	defer k.wmu.Unlock()
	if len(k.carry) > 0 || k.closeAfter || k.closing.Load() || k.pingWant.Load() {
		return false
	}
	select {
	case <-k.client.Done():
		return false
	default:
	}
	bp := frameBuffers.Get().(*[]byte)
	defer frameBuffers.Put(bp)
	buf, last := (*bp)[:0], false
batch:
	for n := 0; n < maxBatch && !last; n++ {
		select {
		case f := <-k.client.Frames():
			buf = appendFrameHeader(buf, opText, len(f.Data))
			buf = append(buf, f.Data...)
			last = f.Last
		default:
			break batch
		}
	}
	*bp = buf[:0]
	if len(buf) == 0 {
		return true
	}
	written := 0
	var werr error
	err := k.raw.Write(func(fd uintptr) bool {
		for written < len(buf) {
			n, e := syscall.Write(int(fd), buf[written:])
			if n > 0 {
				written += n
			}
			if e == syscall.EINTR {
				continue
			}
			if e != nil || n <= 0 {
				werr = e
				break
			}
		}
		return true // never wait for room: that is the writer goroutine's job
	})
	if err != nil || (werr != nil && werr != syscall.EAGAIN) {
		k.fail()
		return true
	}
	if written < len(buf) {
		k.carry = append(k.carry, buf[written:]...)
	}
	k.closeAfter = last
	return written == len(buf) && !last
}

// flushCarryLocked finishes the frames a non-blocking write left half
// written, before any other frame goes out.
func (k *socket) flushCarryLocked() error {
	if len(k.carry) == 0 {
		return nil
	}
	k.extendWriteDeadline()
	_, err := k.conn.Write(k.carry)
	k.carry = k.carry[:0]
	if cap(k.carry) > 4096 {
		k.carry = nil
	}
	return err
}

// pingDue reports, for the pinger, whether the socket's ping is due now, and
// if so marks it wanted and schedules the next one.
func (k *socket) pingDue(now time.Time) bool {
	next := k.nextPing.Load()
	if next == 0 || now.UnixNano() < next {
		return false
	}
	k.nextPing.Store(now.Add(pingPeriod).UnixNano())
	k.pingWant.Store(true)
	return true
}

func (k *socket) drain() {
	for {
		k.flush()
		k.writing.Store(false)
		// A frame or kick that arrived after flush looked, but before the
		// flag dropped, saw a writer running and started none: look again.
		if !k.pending() || !k.writing.CompareAndSwap(false, true) {
			return
		}
	}
}

func (k *socket) pending() bool {
	if len(k.client.Frames()) > 0 {
		return true
	}
	if k.closing.Load() {
		return false
	}
	if k.pingWant.Load() {
		return true
	}
	select {
	case <-k.client.Done():
		return true
	default:
		return false
	}
}

// flush writes what is due: a close if the client was kicked; otherwise
// the queued frames, several per system call, then a ping if one is wanted.
func (k *socket) flush() {
	k.wmu.Lock()
	defer k.wmu.Unlock()
	if k.closing.Load() {
		for len(k.client.Frames()) > 0 {
			<-k.client.Frames()
		}
		return
	}
	if err := k.flushCarryLocked(); err != nil {
		k.fail()
		return
	}
	if k.closeAfter {
		k.closeLocked(fastws.CloseNormalClosure, "room ended")
		return
	}
	select {
	case <-k.client.Done():
		code := fastws.CloseGoingAway
		if k.client.Reason() == relay.ReasonSlow {
			code = fastws.CloseTryAgainLater
		}
		k.closeLocked(code, k.client.Reason())
		return
	default:
	}
	for {
		var hdrs [maxBatch * 10]byte
		bufs := make(net.Buffers, 0, 2*maxBatch)
		h, last := hdrs[:0], false
	batch:
		for n := 0; n < maxBatch && !last; n++ {
			select {
			case f := <-k.client.Frames():
				start := len(h)
				h = appendFrameHeader(h, opText, len(f.Data))
				bufs = append(bufs, h[start:], f.Data)
				last = f.Last
			default:
				break batch
			}
		}
		if len(bufs) == 0 {
			break
		}
		k.extendWriteDeadline()
		if _, err := bufs.WriteTo(k.conn); err != nil {
			k.fail()
			return
		}
		if last {
			k.closeLocked(fastws.CloseNormalClosure, "room ended")
			return
		}
	}
	if k.pingWant.Swap(false) {
		if err := k.writeControlLocked(opPing, nil, writeWait); err != nil {
			k.fail()
		}
	}
}

// extendWriteDeadline keeps the write deadline between writeWait/2 and
// writeWait ahead: moving it for every frame costs a runtime timer update
// per frame, and a peer that stopped reading is still dropped within
// writeWait.
func (k *socket) extendWriteDeadline() {
	now := time.Now()
	if k.wdeadline-now.UnixNano() > int64(writeWait/2) {
		return
	}
	d := now.Add(writeWait)
	k.wdeadline = d.UnixNano()
	_ = k.conn.SetWriteDeadline(d)
}

// closeLocked sends a close frame and gives the peer a moment to answer
// before the reader gives up.
func (k *socket) closeLocked(code int, reason string) {
	k.closing.Store(true)
	_ = k.writeControlLocked(opClose, fastws.FormatCloseMessage(code, reason), time.Second)
	_ = k.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
}

// fail gives up on a connection that cannot be written: the reader ends.
func (k *socket) fail() {
	k.closing.Store(true)
	_ = k.conn.Close()
}

func (k *socket) writeControlLocked(op byte, payload []byte, wait time.Duration) error {
	if err := k.flushCarryLocked(); err != nil {
		return err
	}
	if len(payload) > maxControlPayload {
		payload = payload[:maxControlPayload]
	}
	frame := appendFrameHeader(make([]byte, 0, 2+len(payload)), op, len(payload))
	frame = append(frame, payload...)
	d := time.Now().Add(wait)
	k.wdeadline = d.UnixNano()
	_ = k.conn.SetWriteDeadline(d)
	_, err := k.conn.Write(frame)
	return err
}

// appendFrameHeader appends an unmasked, final frame header (server frames
// are never masked nor fragmented here).
func appendFrameHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n <= 125:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}

// serve reads until the peer goes, then takes the client off the room and
// closes the connection.
func (k *socket) serve() {
	defer k.srv.sockets.done(k)
	defer k.srv.hub.Leave(k.roomID, k.client)
	_ = k.conn.SetReadDeadline(time.Now().Add(pongWait))
	if code := k.read(); code != 0 {
		k.wmu.Lock()
		if !k.closing.Load() {
			k.closeLocked(code, "")
		}
		k.wmu.Unlock()
	}
	k.client.Kick("peer closed")
	_ = k.conn.Close()
}

// read handles the client's frames until the connection ends or the client
// closes it; it returns a close code to send when the client broke the
// protocol or the read limit, 0 otherwise.
func (k *socket) read() int {
	hdr, ext, mask, ctl := k.rbuf[0:2], k.rbuf[2:10], k.rbuf[10:14], k.rbuf[14:]
	inMessage, size := false, int64(0)
	for {
		if _, err := io.ReadFull(k.conn, hdr); err != nil {
			return 0
		}
		fin, op := hdr[0]&0x80 != 0, hdr[0]&0x0F
		if hdr[0]&0x70 != 0 || hdr[1]&0x80 == 0 {
			return fastws.CloseProtocolError // extensions are not negotiated; clients must mask
		}
		n := int64(hdr[1] & 0x7F)
		switch n {
		case 126:
			if _, err := io.ReadFull(k.conn, ext[:2]); err != nil {
				return 0
			}
			n = int64(binary.BigEndian.Uint16(ext))
		case 127:
			if _, err := io.ReadFull(k.conn, ext); err != nil {
				return 0
			}
			u := binary.BigEndian.Uint64(ext)
			if u>>63 != 0 {
				return fastws.CloseProtocolError
			}
			n = int64(u)
		}
		if _, err := io.ReadFull(k.conn, mask); err != nil {
			return 0
		}
		switch op {
		case opClose, opPing, opPong:
			if !fin || n > maxControlPayload {
				return fastws.CloseProtocolError
			}
			p := ctl[:n]
			if _, err := io.ReadFull(k.conn, p); err != nil {
				return 0
			}
			for i := range p {
				p[i] ^= mask[i&3]
			}
			switch op {
			case opPing:
				k.wmu.Lock()
				if !k.closing.Load() {
					_ = k.writeControlLocked(opPong, p, writeWait)
				}
				k.wmu.Unlock()
			case opPong:
				_ = k.conn.SetReadDeadline(time.Now().Add(pongWait))
			case opClose:
				// Answer with the client's code, as the close handshake asks.
				k.wmu.Lock()
				if !k.closing.Load() {
					k.closing.Store(true)
					_ = k.writeControlLocked(opClose, p[:min(len(p), 2)], time.Second)
				}
				k.wmu.Unlock()
				return 0
			}
			continue
		case opContinuation:
			if !inMessage {
				return fastws.CloseProtocolError
			}
			size += n
		case opText, opBinary:
			if inMessage {
				return fastws.CloseProtocolError
			}
			inMessage, size = true, n
		default:
			return fastws.CloseProtocolError
		}
		if size > readLimit {
			return fastws.CloseMessageTooBig
		}
		if _, err := io.CopyN(io.Discard, k.conn, n); err != nil {
			return 0
		}
		if fin {
			inMessage = false
		}
	}
}
