// Package ws is the gateway's server side of RFC 6455 after the handshake:
// framing (through github.com/gobwas/ws as a stateless codec), control
// frames, the close handshake, the writer discipline, pings and the
// registry of live sockets. It knows nothing of rooms or chat: a socket
// writes what its Outbox holds and hands each complete text message to its
// Handler.
//
// Who writes when: one writer at a time holds Socket.wmu. Three parties
// take it: whoever calls Wake (the relay, delivering to a whole room) for a
// non-blocking write that never waits (TryLock, no deadline); the drain
// goroutine, started on demand for what would block, which alone may wait
// on the peer, under a write deadline it clears before letting go; and the
// reader, for a pong or a close reply, under the same rule. So no deadline
// is ever left set while wmu is free, and a write can never fail on a stale
// one.
package ws

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	gws "github.com/gobwas/ws"
)

// Frame is one text frame to send; Last marks the final one, after which
// the socket closes normally.
type Frame struct {
	Data []byte
	Last bool
}

// Outbox is what a socket writes from: a bounded queue filled by others.
type Outbox interface {
	// Next takes the oldest frame to write, if any.
	Next() (*Frame, bool)
	// Queued is how many frames wait.
	Queued() int
	// Kicked reports that the socket must close without waiting for more
	// frames; CloseStatus says with which code and reason.
	Kicked() bool
	CloseStatus() (StatusCode, string)
}

// Handler receives what the peer sends.
type Handler struct {
	// OnText gets each complete, valid UTF-8 text message; msg is only
	// valid during the call. A non-zero code closes the socket with it.
	OnText func(msg []byte) (gws.StatusCode, string)
	// OnClose runs once, after the connection is closed.
	OnClose func()
}

// StatusCode is a close code (RFC 6455 §7.4).
type StatusCode = gws.StatusCode

// Status codes the package closes with, besides those an Outbox asks for.
const (
	StatusNormal      = gws.StatusNormalClosure
	StatusGoingAway   = gws.StatusGoingAway
	StatusProtocol    = gws.StatusProtocolError
	StatusUnsupported = gws.StatusUnsupportedData
	StatusInvalidData = gws.StatusInvalidFramePayloadData
	StatusPolicy      = gws.StatusPolicyViolation
	StatusTooBig      = gws.StatusMessageTooBig
	StatusInternal    = gws.StatusInternalServerError
	StatusTryLater    = gws.StatusCode(1013)
)

const (
	// maxBatch is how many queued frames one write system call may carry.
	maxBatch = 16
	// closeLinger bounds how long a closing socket waits for the peer's
	// close frame and FIN, and lingerBytes how much it reads meanwhile, so
	// the close frame is not lost to a TCP reset from unread data.
	closeLinger = 2 * time.Second
	lingerBytes = 64 << 10
)

// Socket is the server side of one WebSocket. Where the platform has a
// poller (Linux) it keeps no goroutine while idle: a reader turn runs when
// the peer's bytes arrive and ends when none are left, a writer when a
// frame, a close or a ping is due and ends when nothing is left to write.
type Socket struct {
	out Outbox
	h   Handler
	set *Settings

	conn net.Conn
	raw  syscall.RawConn

	started  atomic.Bool
	writing  atomic.Bool  // a writer goroutine runs (or is about to)
	pingWant atomic.Bool  // the pinger asked for a ping
	nextPing atomic.Int64 // when the next ping is due (UnixNano); 0 before start
	closing  atomic.Bool  // a close frame went out, or the connection failed

	wmu sync.Mutex // one writer on conn at a time; see the package comment
	// carry holds the unwritten end of frames a non-blocking write could not
	// finish (under wmu); it goes out before anything else, so no frame is
	// ever interleaved with another. closeAfter: the last frame is in it
	// (or was just written), so the close follows.
	carry      []byte
	closeAfter bool

	// heard is when the last frame came from the peer (UnixNano): the
	// pinger closes a socket silent for PongWait. (A read deadline would do
	// it too, but moving one runs the runtime's timer code on the reader's
	// goroutine, whose stack then doubles for good: 2 KB per idle socket.)
	heard atomic.Int64
	// reading says who reads: a turn goroutine (running), the poller on
	// its behalf (parked: an idle socket keeps no goroutine), or nobody
	// any more (over). See reader_linux.go.
	reading atomic.Int32
	pollID  uint64 // the socket's key in the poller; 0 until first parked
	blocks  bool   // the poller refused it: its reader blocks in read
	done    func(*Socket)
	// hbuf is the reader's scratch for a header (a control frame's payload
	// comes from ctlBufs: pings are rare, and an idle socket holds none).
	hbuf [gws.MaxHeaderSize - 2]byte
}

var ctlBufs = sync.Pool{New: func() any { return new([gws.MaxControlFramePayloadSize]byte) }}

// NewSocket returns a socket that will write from out and report to h once
// started. Wake may be called before Start: it does nothing until then.
func NewSocket(out Outbox, h Handler) *Socket {
	return &Socket{out: out, h: h}
}

// Started reports whether the socket has its connection.
func (k *Socket) Started() bool { return k.started.Load() }

// ErrNotRaw is a connection without a file descriptor to write to.
var ErrNotRaw = errors.New("ws: connection has no raw file descriptor")

// start attaches the connection and writes whatever was queued meanwhile.
func (k *Socket) start(conn net.Conn, set *Settings) error {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return ErrNotRaw
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return errors.Join(ErrNotRaw, err)
	}
	k.conn, k.raw, k.set = conn, rc, set
	now := time.Now()
	k.heard.Store(now.UnixNano())
	k.nextPing.Store(now.Add(set.PingInterval).UnixNano())
	k.started.Store(true)
	k.Wake()
	return nil
}

// Wake writes what is due, or starts a writer to do it, unless a writer
// runs. It never blocks: the relay calls it while delivering to a whole
// room. Most of the time the socket's send buffer has room, so the frames
// go out at once in a non-blocking write, with no goroutine to start and
// schedule; whatever would block is left to a writer goroutine.
func (k *Socket) Wake() {
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

// frameBuf is a pooled write buffer that gobwas/ws writes headers into.
type frameBuf struct {
	b   []byte
	hdr [gws.MaxHeaderSize]byte
}

func (f *frameBuf) Write(p []byte) (int, error) { f.b = append(f.b, p...); return len(p), nil }

func (f *frameBuf) appendFrame(op gws.OpCode, payload []byte) {
	// Writing to a frameBuf cannot fail, and server frames are never masked.
	_ = gws.WriteHeaderBuffer(f, gws.Header{Fin: true, OpCode: op, Length: int64(len(payload))}, f.hdr[:])
	f.b = append(f.b, payload...)
}

var frameBufs = sync.Pool{New: func() any { return &frameBuf{b: make([]byte, 0, 2048)} }}

func getFrameBuf() *frameBuf { f := frameBufs.Get().(*frameBuf); f.b = f.b[:0]; return f }

func putFrameBuf(f *frameBuf) {
	if cap(f.b) <= 64<<10 {
		frameBufs.Put(f)
	}
}

// batch moves up to maxBatch queued frames into f; last: the final frame
// is among them.
func (k *Socket) batch(f *frameBuf) (last bool) {
	for n := 0; n < maxBatch && !last; n++ {
		fr, ok := k.out.Next()
		if !ok {
			return last
		}
		f.appendFrame(gws.OpText, fr.Data)
		last = fr.Last
	}
	return last
}

// writeNow writes the queued frames without blocking and reports whether
// it was all that was due; false leaves the rest to a writer goroutine
// (a close, a ping, bytes the send buffer had no room for).
func (k *Socket) writeNow() bool {
	if !k.wmu.TryLock() {
		return false
	}
	defer k.wmu.Unlock()
	if len(k.carry) > 0 || k.closeAfter || k.closing.Load() || k.pingWant.Load() || k.out.Kicked() {
		return false
	}
	f := getFrameBuf()
	defer putFrameBuf(f)
	last := k.batch(f)
	if len(f.b) == 0 {
		return true
	}
	written := 0
	var werr error
	err := k.raw.Write(func(fd uintptr) bool {
		for written < len(f.b) {
			n, e := syscall.Write(int(fd), f.b[written:])
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
	if written < len(f.b) {
		k.carry = append(k.carry, f.b[written:]...)
	}
	k.closeAfter = last
	return written == len(f.b) && !last
}

// pingDue reports, for the pinger, whether the socket's ping is due now, and
// if so marks it wanted and schedules the next one.
func (k *Socket) pingDue(now time.Time) bool {
	next := k.nextPing.Load()
	if next == 0 || now.UnixNano() < next {
		return false
	}
	k.nextPing.Store(now.Add(k.set.PingInterval).UnixNano())
	k.pingWant.Store(true)
	return true
}

func (k *Socket) drain() {
	for {
		k.flush()
		k.writing.Store(false)
		// A frame or close that arrived after flush looked, but before the
		// flag dropped, saw a writer running and started none: look again.
		if !k.pending() || !k.writing.CompareAndSwap(false, true) {
			return
		}
	}
}

func (k *Socket) pending() bool {
	if k.out.Queued() > 0 {
		return true // a closing socket's writer discards them
	}
	if k.closing.Load() {
		return false
	}
	return k.pingWant.Load() || k.out.Kicked()
}

// blocking runs write under a write deadline of WriteWait and clears the
// deadline afterwards, so the non-blocking path never meets a stale one.
// Called with wmu held.
func (k *Socket) blocking(write func() error) error {
	_ = k.conn.SetWriteDeadline(time.Now().Add(k.set.WriteWait))
	err := write()
	_ = k.conn.SetWriteDeadline(time.Time{})
	return err
}

// flush writes what is due: a close if the outbox was kicked; otherwise the
// queued frames, several per system call, then a ping if one is wanted.
func (k *Socket) flush() {
	k.wmu.Lock()
	defer k.wmu.Unlock()
	if k.closing.Load() {
		for _, ok := k.out.Next(); ok; _, ok = k.out.Next() {
		}
		return
	}
	err := k.blocking(func() error {
		if err := k.flushCarryLocked(); err != nil {
			return err
		}
		if k.closeAfter {
			return errClosed
		}
		if k.out.Kicked() {
			return errDone
		}
		f := getFrameBuf()
		defer putFrameBuf(f)
		for {
			f.b = f.b[:0]
			last := k.batch(f)
			if len(f.b) == 0 {
				break
			}
			if _, err := k.conn.Write(f.b); err != nil {
				return err
			}
			if last {
				return errClosed
			}
		}
		if k.pingWant.Swap(false) {
			_, err := k.conn.Write(gws.CompiledPing)
			return err
		}
		return nil
	})
	switch {
	case errors.Is(err, errClosed):
		k.closeLocked(StatusNormal, "room ended")
	case errors.Is(err, errDone):
		code, reason := k.out.CloseStatus()
		k.closeLocked(code, reason)
	case err != nil:
		k.fail()
	}
}

var (
	errClosed = errors.New("last frame written")
	errDone   = errors.New("outbox done")
)

// flushCarryLocked finishes the frames a non-blocking write left half
// written, before any other frame goes out.
func (k *Socket) flushCarryLocked() error {
	if len(k.carry) == 0 {
		return nil
	}
	_, err := k.conn.Write(k.carry)
	k.carry = k.carry[:0]
	if cap(k.carry) > 4096 {
		k.carry = nil
	}
	return err
}

// writeControlLocked sends a control frame after whatever was half written.
func (k *Socket) writeControlLocked(op gws.OpCode, payload []byte) error {
	f := getFrameBuf()
	defer putFrameBuf(f)
	f.appendFrame(op, payload[:min(len(payload), gws.MaxControlFramePayloadSize)])
	return k.blocking(func() error {
		if err := k.flushCarryLocked(); err != nil {
			return err
		}
		_, err := k.conn.Write(f.b)
		return err
	})
}

// closeLocked sends a close frame once; the reader then waits a moment for
// the peer's answer before it lets the connection go.
func (k *Socket) closeLocked(code gws.StatusCode, reason string) {
	if k.closing.Swap(true) {
		return
	}
	if len(reason) > gws.MaxControlFramePayloadSize-2 {
		reason = reason[:gws.MaxControlFramePayloadSize-2]
	}
	if err := k.writeControlLocked(gws.OpClose, gws.NewCloseFrameBody(code, reason)); err != nil {
		_ = k.conn.Close()
	} else {
		_ = k.conn.SetReadDeadline(time.Now().Add(closeLinger))
	}
	k.resume() // a parked reader must take the peer's answer, or the deadline
}

// Close sends a close frame with code and reason (once) and lets the
// reader finish the close handshake.
func (k *Socket) Close(code gws.StatusCode, reason string) {
	k.wmu.Lock()
	k.closeLocked(code, reason)
	k.wmu.Unlock()
}

// fail gives up on a connection that cannot be written: the reader ends.
func (k *Socket) fail() {
	k.closing.Store(true)
	_ = k.conn.Close()
	k.resume()
}

// States of Socket.reading.
const (
	running int32 = iota
	parked
	over
)

// turn reads what the peer sent; when nothing is left it parks the socket
// with the poller and returns (a later turn goes on), otherwise it ends the
// socket. ready: the poller saw bytes waiting.
func (k *Socket) turn(ready bool) {
	br := readBufs.Get().(*bufio.Reader)
	br.Reset(k.conn)
	defer func() { br.Reset(nil); readBufs.Put(br) }()
	for {
		code, reason, idle := k.read(br, ready)
		if !idle {
			k.finish(code, reason)
			return
		}
		if !k.park() {
			return
		}
		ready = false
	}
}

// park hands the socket to the poller and reports false; true when the
// caller must read on: the socket started closing meanwhile (its reader
// must wait for the close handshake), or it cannot be polled.
func (k *Socket) park() (readOn bool) {
	k.reading.Store(parked)
	// A close or failure checks for a parked reader after it sets closing,
	// and this checks closing after parking: one of the two sees the other.
	err := k.arm()
	if err == nil && !k.closing.Load() {
		return false
	}
	if !k.reading.CompareAndSwap(parked, running) {
		return false
	}
	k.blocks = k.blocks || err != nil
	return true
}

// resume starts a turn for a parked socket that is closing, so that it
// ends even if the peer sends nothing more.
func (k *Socket) resume() { k.wakeReader(false) }

// wakeReader starts a turn for a parked socket (ready: the poller saw
// bytes waiting); it does nothing while a turn runs or once it is over.
func (k *Socket) wakeReader(ready bool) {
	if k.reading.CompareAndSwap(parked, running) {
		go k.turn(ready)
	}
}

// finish closes the connection once the peer is done, then reports.
func (k *Socket) finish(code gws.StatusCode, reason string) {
	if code != 0 {
		k.Close(code, reason)
	}
	if k.closing.Load() {
		k.linger()
	}
	k.reading.Store(over)
	k.unpoll()
	_ = k.conn.Close()
	if k.h.OnClose != nil {
		k.h.OnClose()
	}
	k.done(k)
}

// linger half-closes the connection after the close frame and reads what
// the peer still sends until it closes too, within closeLinger.
func (k *Socket) linger() {
	if cw, ok := k.conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = k.conn.SetReadDeadline(time.Now().Add(closeLinger))
	_, _ = io.CopyN(io.Discard, k.conn, lingerBytes)
}

// silent reports, for the pinger, whether nothing came from the peer for
// PongWait: no pong to the pings, no frame at all.
func (k *Socket) silent(now time.Time) bool {
	return !k.closing.Load() && now.UnixNano()-k.heard.Load() > int64(k.set.PongWait)
}

// readBufs buffer a reader turn's reads, so a frame usually takes one
// system call; a parked socket holds none.
var readBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 2048) }}

var msgBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// read handles the peer's frames until the connection ends or the close
// handshake is done; it returns a close code (and reason) to send when the
// peer broke the protocol or a limit, 0 otherwise. With a poller it
// returns idle instead when, between messages, it has read all it was
// handed: the socket can park (and is resumed at once if more came).
// ready: bytes are known to wait.
func (k *Socket) read(br *bufio.Reader, ready bool) (code gws.StatusCode, reason string, idle bool) {
	var (
		msg       *[]byte // the text message being assembled
		checked   int     // bytes of *msg already known to be valid UTF-8
		fragments bool
	)
	defer func() {
		if msg != nil && cap(*msg) <= 4<<10 {
			msgBufs.Put(msg)
		}
	}()
	limit := k.set.ReadLimit
	for first := true; ; first = false {
		if polled && !k.blocks && msg == nil && br.Buffered() == 0 && !k.closing.Load() {
			// After a message, park: arming reports bytes already waiting.
			// The first turn of a socket looks before it reads.
			if !first || (!ready && !k.readable()) {
				return 0, "", true
			}
		}
		h, err := gws.ReadHeaderBuffer(br, k.hbuf[:])
		if err != nil {
			if errors.Is(err, gws.ErrHeaderLengthMSB) || errors.Is(err, gws.ErrHeaderLengthUnexpected) {
				return StatusProtocol, "bad frame length", false
			}
			return 0, "", false
		}
		if k.closing.Load() {
			// Our close went out: wait only for the peer's, ignore the rest.
			if h.OpCode == gws.OpClose {
				return 0, "", false
			}
			if _, err := io.CopyN(io.Discard, br, min(h.Length, lingerBytes)); err != nil {
				return 0, "", false
			}
			continue
		}
		state := gws.StateServerSide
		if fragments {
			state |= gws.StateFragmented
		}
		if err := gws.CheckHeader(h, state); err != nil {
			return StatusProtocol, err.Error(), false
		}
		k.heard.Store(time.Now().UnixNano())
		if h.OpCode.IsControl() {
			if code, reason, done := k.control(br, h); code != 0 || done {
				return code, reason, false
			}
			continue
		}
		if h.OpCode == gws.OpBinary {
			return StatusUnsupported, "binary frames are not accepted", false
		}
		if h.OpCode == gws.OpText {
			fragments, checked = true, 0
			if msg == nil {
				msg = msgBufs.Get().(*[]byte)
			}
			*msg = (*msg)[:0]
		}
		// Checked before adding, so a declared length near 2^63 cannot
		// overflow the sum: the socket closes before reading any of it.
		if h.Length > limit-int64(len(*msg)) {
			return StatusTooBig, "message too big", false
		}
		start := len(*msg)
		*msg = append(*msg, make([]byte, h.Length)...)
		if _, err := io.ReadFull(br, (*msg)[start:]); err != nil {
			return 0, "", false
		}
		gws.Cipher((*msg)[start:], h.Mask, 0)
		if !validUTF8Prefix((*msg)[checked:], h.Fin) {
			return StatusInvalidData, "invalid UTF-8", false
		}
		checked = completeRunes(*msg, checked)
		if !h.Fin {
			continue
		}
		fragments = false
		code, reason = 0, ""
		if k.h.OnText != nil {
			code, reason = k.h.OnText(*msg)
		}
		// An idle socket holds no buffer; a large one is not pooled.
		if cap(*msg) <= 4<<10 {
			msgBufs.Put(msg)
		}
		msg = nil
		if code != 0 {
			return code, reason, false
		}
	}
}

// control handles a ping, pong or close; done: the close handshake ended.
func (k *Socket) control(br *bufio.Reader, h gws.Header) (code gws.StatusCode, reason string, done bool) {
	buf := ctlBufs.Get().(*[gws.MaxControlFramePayloadSize]byte)
	defer ctlBufs.Put(buf)
	p := buf[:h.Length]
	if _, err := io.ReadFull(br, p); err != nil {
		return 0, "", true
	}
	gws.Cipher(p, h.Mask, 0)
	switch h.OpCode {
	case gws.OpPing:
		k.wmu.Lock()
		if !k.closing.Load() {
			if err := k.writeControlLocked(gws.OpPong, p); err != nil {
				k.fail()
			}
		}
		k.wmu.Unlock()
	case gws.OpClose:
		code, reason := closeReply(p)
		k.wmu.Lock()
		k.closeLocked(code, reason)
		k.wmu.Unlock()
		return 0, "", true
	}
	return 0, "", false
}

// closeReply is the answer to a peer's close payload: its own code when
// valid (RFC 6455 §5.5.1), 1000 when it gave none, 1002 for a payload or
// code it must not send, 1007 for a reason that is not UTF-8.
func closeReply(p []byte) (gws.StatusCode, string) {
	switch len(p) {
	case 0:
		return StatusNormal, ""
	case 1:
		return StatusProtocol, "invalid close payload"
	}
	code, reason := gws.ParseCloseFrameDataUnsafe(p)
	if !utf8.ValidString(reason) {
		return StatusInvalidData, "invalid UTF-8 in close reason"
	}
	if !validCloseCode(code) {
		return StatusProtocol, "invalid close code"
	}
	return code, ""
}

// validCloseCode: a code a peer may send (1000–1003, 1007–1014, 3000–4999).
// gobwas/ws predates 1012–1014 and does not bound the range above 4999.
func validCloseCode(c gws.StatusCode) bool {
	switch {
	case c >= 1012 && c <= 1014:
		return true
	case c > 4999:
		return false
	}
	return gws.CheckCloseFrameData(c, "") == nil
}

// validUTF8Prefix reports whether b is valid UTF-8, allowing a rune cut
// off at its end while more fragments are to come.
func validUTF8Prefix(b []byte, final bool) bool {
	if final {
		return utf8.Valid(b)
	}
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(b[i]) {
			// FullRune is false only for a valid start of a longer rune.
			if !utf8.FullRune(b[i:]) {
				return utf8.Valid(b[:i])
			}
			break
		}
	}
	return utf8.Valid(b)
}

// completeRunes returns the length of b's prefix that ends on a rune
// boundary, looking no further back than from.
func completeRunes(b []byte, from int) int {
	for i := len(b) - 1; i >= from && i >= len(b)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}
