// Package load drives a running wisp the way browsers do: rooms of two
// members, each joined through the room page with a cookie and a keep-alive
// connection of its own and listening on the room's WebSocket, each sending
// messages on a fixed, open-loop schedule — over its socket (`send`,
// answered by `ack`) or with POST /api/messages. It measures, per message,
// the time from when it was due to its arrival at the other member.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// SendMode is how members send their messages.
type SendMode string

const (
	// SendSocket writes {"type":"send",…} on the member's own WebSocket;
	// the ack frame on that socket is the acknowledgement.
	SendSocket SendMode = "socket"
	// SendPOST posts to /api/messages over the member's own connection;
	// the 200 answer is the acknowledgement.
	SendPOST SendMode = "post"
)

// Describe is a label for reports.
func (m SendMode) Describe() string {
	if m == SendPOST {
		return "POST /api/messages"
	}
	return "over the socket (send → ack)"
}

// ParseSendMode reads "socket" (or "ws") and "post".
func ParseSendMode(s string) (SendMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "socket", "ws", "":
		return SendSocket, nil
	case "post", "http":
		return SendPOST, nil
	}
	return "", fmt.Errorf("send mode %q: want socket or post", s)
}

// Config is one run.
type Config struct {
	Gateways []string      // gateway base URLs (http://host:port); members alternate between them
	Rooms    int           // rooms, two members each
	Rate     float64       // messages per second, all members together
	Duration time.Duration // measured part of the schedule
	Warmup   time.Duration // schedule before the measured part; sent, not counted
	Size     int           // bytes of message text (at least the id it carries)
	Grace    time.Duration // how long after the schedule's end a message may still be answered and arrive
	Send     SendMode      // socket (default) or post
	// SharedConns > 0 is the extra, not browser-like mode: all members share
	// that many keep-alive HTTP connections per gateway, and as many senders
	// take due POSTs from one queue. 0 (default): every member its own.
	SharedConns int
	Sources     int // loopback source addresses to spread connections over (0: DefaultSources; -1: none)
	Setup       int // concurrent room setups
	Log         io.Writer
	// Mark, when set, is called as the measured part of the schedule
	// begins (true) and ends (false), e.g. to sample CPU use.
	Mark func(measuring bool)
}

func (c *Config) defaults() error {
	if len(c.Gateways) == 0 {
		return errors.New("no gateway url")
	}
	if c.Rooms <= 0 || c.Rate < 0 || c.Duration <= 0 {
		return errors.New("rooms and duration must be positive, rate not negative")
	}
	if c.Send == "" {
		c.Send = SendSocket
	}
	if c.Send != SendSocket && c.Send != SendPOST {
		return fmt.Errorf("send mode %q: want socket or post", c.Send)
	}
	if c.SharedConns > 0 && c.Send == SendSocket {
		return errors.New("a shared connection pool only changes POST sends; use it with send mode post")
	}
	if c.Size <= 0 {
		c.Size = 64
	}
	if c.Grace <= 0 {
		c.Grace = 5 * time.Second
	}
	if c.Sources == 0 {
		c.Sources = DefaultSources
	}
	if c.Setup <= 0 {
		c.Setup = 32
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return nil
}

// Status values of a slot besides HTTP-style codes.
const (
	statusNone        = 0  // no answer (yet)
	statusWriteFailed = -1 // the frame or request could not be written
	statusAcked       = 200
)

// slot is one scheduled message. Times are nanoseconds since the run's base.
type slot struct {
	sched   int64        // when it was due; set before it is queued
	start   atomic.Int64 // when its sender began writing it
	reply   atomic.Int64 // when it was answered (ack, error, POST answer): the first answer wins
	status  atomic.Int32 // statusAcked, an error status, statusWriteFailed; statusNone until answered
	ackSeq  atomic.Int64 // seq of the stored message the answer carried
	recv    atomic.Int64 // when the other member first received it
	recvSeq atomic.Int64 // seq it had there
	dups    atomic.Int32 // further receipts by the other member
	reacks  atomic.Int32 // answers beyond the first
}

// answer records the first answer to a slot; false when it had one.
func (s *slot) answer(at int64, status int32, seq int64) bool {
	if !s.reply.CompareAndSwap(0, at) {
		s.reacks.Add(1)
		return false
	}
	s.ackSeq.Store(seq)
	s.status.Store(status) // last: status != 0 says reply and seq are set
	return true
}

type run struct {
	cfg     Config
	base    time.Time // the clock's zero; set before any socket opens
	t0      int64     // when the schedule began
	played  int       // slots queued
	slots   []slot
	rooms   []*Room
	members int

	echoes    atomic.Int64 // a member's own message back on its socket (expected)
	misrouted atomic.Int64 // a message, ack or error on another room's or member's socket
	unknown   atomic.Int64 // frames the generator did not send or cannot read
	reordered atomic.Int64 // a chat.message with a seq below one the socket already had
}

func (r *run) now() int64 { return max(int64(time.Since(r.base)), 1) }

// Run opens cfg.Rooms rooms, plays the schedule and reports.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	gws := make([]*Gateway, len(cfg.Gateways))
	for i, u := range cfg.Gateways {
		g, err := NewGateway(u, GatewayOptions{SharedConns: max(0, cfg.SharedConns/len(cfg.Gateways)), Sources: max(cfg.Sources, 0)})
		if err != nil {
			return Result{}, err
		}
		gws[i] = g
	}
	total := int(cfg.Rate * (cfg.Warmup + cfg.Duration).Seconds())
	r := &run{cfg: cfg, slots: make([]slot, total), members: cfg.Rooms * 2}

	setupStart := time.Now()
	rooms, err := CreateRooms(ctx, gws, cfg.Rooms, cfg.Setup)
	if err != nil {
		return Result{}, err
	}
	r.rooms = rooms
	defer CloseHTTP(rooms)
	if cfg.Rate == 0 {
		CloseHTTP(rooms) // idle sockets only: their keep-alive connections would be measured too
	}
	r.base = time.Now()
	socks, err := Connect(ctx, rooms, cfg.Setup, r.onFrame)
	if err != nil {
		return Result{}, err
	}
	setup := time.Since(setupStart)
	conns := "one keep-alive connection and one socket per member"
	if cfg.SharedConns > 0 {
		conns = fmt.Sprintf("EXTRA MODE: members share %d keep-alive connections", cfg.SharedConns)
	}
	fmt.Fprintf(cfg.Log, "  %d rooms, %d sockets ready in %v (%s); %d messages at %.0f/s, sent %s\n",
		cfg.Rooms, socks.Len(), setup.Round(time.Millisecond), conns, total, cfg.Rate, cfg.Send.Describe())

	if cfg.Rate == 0 {
		// Idle sockets only (memory measurements): hold them for Duration.
		select {
		case <-ctx.Done():
		case <-time.After(cfg.Duration):
		}
	}
	r.play(ctx)
	r.await(ctx)
	ended, endedBy := socks.Ended(), socks.EndedBy()
	socks.Close()

	res := r.result()
	res.Setup = setup
	res.SocketsEnded = ended
	res.SocketsEndedBy = endedBy
	return res, nil
}

// play sends the schedule: message i is due at i/rate, whatever happened
// to the ones before it (open loop). Message i is sent by member
// memberOf(i), so every member sends at the same steady rate, each from its own queue
// over its own connection or socket; a member that falls behind delays
// only its own messages, and the delay counts in their latency because it
// is measured from the due time.
func (r *run) play(ctx context.Context) {
	interval := float64(time.Second) / max(r.cfg.Rate, 1)
	pace := newPacer(time.Duration(interval)) // on this goroutine's thread
	defer pace.close()
	var senders sync.WaitGroup
	var shared *sendQueue
	if r.cfg.SharedConns > 0 {
		shared = newSendQueue()
		for range r.cfg.SharedConns {
			senders.Go(func() { r.sender(shared, nil) })
		}
	} else {
		for _, rm := range r.rooms {
			for _, m := range rm.Members {
				m.queue = newSendQueue()
				senders.Go(func() { r.sender(m.queue, m) })
			}
		}
	}
	r.t0 = r.now()
	measured := false
	for i := range r.slots {
		at := r.t0 + int64(float64(i)*interval)
		if d := at - r.now(); d > 0 {
			pace.sleep(time.Duration(d))
		}
		if ctx.Err() != nil {
			break
		}
		if !measured && at >= r.t0+int64(r.cfg.Warmup) {
			measured = true
			r.mark(true)
		}
		r.slots[i].sched = at
		r.played++
		if shared != nil {
			shared.push(i)
		} else {
			r.memberOf(i).queue.push(i)
		}
	}
	r.mark(false)
	if shared != nil {
		shared.close()
	}
	for _, rm := range r.rooms {
		for _, m := range rm.Members {
			if m.queue != nil {
				m.queue.close()
			}
		}
	}
	senders.Wait()
}

func (r *run) mark(measuring bool) {
	if r.cfg.Mark != nil {
		r.cfg.Mark(measuring)
	}
}

// memberOf is the member that sends message i: the first members of rooms
// 0…N-1, then the second members, over and over. Every member sends every
// 2N/rate seconds, and a room's two members half a period apart, as two
// people taking turns would (not 1/rate apart, which would make nearly
// every send meet the other member's in flight).
func (r *run) memberOf(i int) *Member {
	c := i % r.members
	n := len(r.rooms)
	return r.rooms[c%n].Members[c/n]
}

// sender sends the messages of one queue: one member's (m) or, in the
// shared mode (m nil), any member's over the pool.
func (r *run) sender(q *sendQueue, m *Member) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	var due []int
	var buf []byte
	batch := 0 // all that is due, at once, for a member's own queue
	if m == nil {
		batch = 1 // one at a time: the other senders of the pool take the rest
	}
	for {
		var ok bool
		due, ok = q.take(due[:0], batch)
		if !ok {
			return
		}
		if r.cfg.Send == SendSocket {
			_ = m.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		}
		for _, i := range due {
			s := &r.slots[i]
			from := m
			if from == nil {
				from = r.memberOf(i)
			}
			if r.cfg.Send == SendSocket {
				buf = sendFrame(buf[:0], i, r.cfg.Size)
				s.start.Store(r.now())
				if err := from.conn.WriteMessage(websocket.TextMessage, buf); err != nil {
					s.answer(r.now(), statusWriteFailed, 0)
				}
				continue
			}
			buf = postBody(buf[:0], i, r.cfg.Size)
			s.start.Store(r.now())
			status, _ := from.http.Send(from.Room.ID, from.Cookie, buf, resp)
			at := r.now()
			var seq int64
			if status == statusAcked {
				seq = intField(resp.Body(), seqKey)
			}
			s.answer(at, int32(status), seq)
			resp.Reset()
		}
	}
}

// onFrame matches a server frame to its slot: chat.message by the number
// in its text, ack and error by their clientId.
func (r *run) onFrame(m *Member, frame []byte) {
	at := r.now()
	switch string(eventOf(frame)) {
	case "chat.message":
		r.onMessage(m, frame, at)
	case "ack":
		r.onAnswer(m, frame, at, true)
	case "error":
		r.onAnswer(m, frame, at, false)
	case "chat.presence", "chat.typing", "chat.read", "chat.destroy":
	default:
		r.unknown.Add(1)
	}
}

func (r *run) onMessage(m *Member, frame []byte, at int64) {
	text, _ := textOf(frame)
	id := numberIn(text, 'L')
	if id < 0 || id >= len(r.slots) {
		r.unknown.Add(1)
		return
	}
	seq := intField(frame, seqKey)
	if seq > 0 {
		if seq < m.lastSeq {
			r.reordered.Add(1)
		} else {
			m.lastSeq = seq
		}
	}
	from := r.memberOf(id)
	switch {
	case from.Room != m.Room:
		r.misrouted.Add(1)
	case from == m:
		r.echoes.Add(1)
	default:
		s := &r.slots[id]
		if s.recv.CompareAndSwap(0, at) {
			s.recvSeq.Store(seq)
		} else {
			s.dups.Add(1)
		}
	}
}

// onAnswer takes an ack (the message stored, with its seq) or an error
// (with the status POST would have answered) for a send on m's socket.
func (r *run) onAnswer(m *Member, frame []byte, at int64, ack bool) {
	cid, _ := stringField(frame, clientIDKey)
	id := numberIn(cid, 'b')
	if id < 0 || id >= len(r.slots) {
		r.unknown.Add(1)
		return
	}
	if r.memberOf(id) != m {
		r.misrouted.Add(1)
		return
	}
	s := &r.slots[id]
	if ack {
		s.answer(at, statusAcked, intField(frame, seqKey))
		return
	}
	status := intField(frame, statusKey)
	if status <= 0 || status == statusAcked {
		status = 599 // an error frame without a usable status: still an error
	}
	s.answer(at, int32(status), 0)
}

// await waits until every queued message is answered and every
// acknowledged one has reached the other member, or the grace period is
// over. Messages complete roughly in order, so it keeps its place.
func (r *run) await(ctx context.Context) {
	deadline := time.Now().Add(r.cfg.Grace)
	lo := 0
	for ctx.Err() == nil {
		for lo < r.played && r.slots[lo].complete() {
			lo++
		}
		if lo == r.played || !time.Now().Before(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *slot) complete() bool {
	st := s.status.Load()
	return st != statusNone && (st != statusAcked || s.recv.Load() != 0)
}

// Result is what a run measured over its measured part (after warmup).
type Result struct {
	Rooms          int
	Rate           float64 // target, msgs/s
	Duration       time.Duration
	Size           int
	Send           SendMode
	SharedConns    int // > 0: the extra shared-pool mode
	Setup          time.Duration
	Scheduled      int
	SentOK         int            // acknowledged: ack frame, or POST answered 200
	Errors         map[string]int // by status ("no answer", "write failed")
	Delivered      int            // reached the other member
	Lost           int            // acknowledged, never reached the other member
	Unacked        int            // reached the other member without an acknowledgement
	Duplicates     int            // reached the other member more than once
	SeqMismatch    int            // the other member got another seq than the acknowledgement said
	Reanswered     int            // answers (ack/error) beyond the first for one send
	Misrouted      int64          // on another room's or member's socket
	Unknown        int64          // frames the generator did not send or cannot read
	Reordered      int64          // chat.message with a lower seq than one before it on the socket
	Echoes         int64          // own messages back (expected, not counted)
	SocketsEnded   int64          // sockets the server closed (or that failed) during the run
	SocketsEndedBy map[string]int // why
	Achieved       float64        // acknowledged per second of the measured part
	Latency        Percentiles    // due → other member received
	Reply          Percentiles    // due → acknowledged (ack frame or POST answer)
	SenderLag      Percentiles    // due → sender began writing it (generator delay)
}

// Percentiles of a duration sample.
type Percentiles struct {
	N                        int
	P50, P90, P99, P999, Max time.Duration
}

// PercentilesOf sorts d and reads the nearest-rank percentiles: the value
// at index ⌊q·n⌋ (so p50 of 1..1000 is 501, p99 is 991).
func PercentilesOf(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return Percentiles{N: len(d), P50: at(.50), P90: at(.90), P99: at(.99), P999: at(.999), Max: d[len(d)-1]}
}

func (r *run) result() Result {
	res := Result{Rooms: r.cfg.Rooms, Rate: r.cfg.Rate, Duration: r.cfg.Duration, Size: r.cfg.Size,
		Send: r.cfg.Send, SharedConns: r.cfg.SharedConns, Errors: map[string]int{},
		Misrouted: r.misrouted.Load(), Unknown: r.unknown.Load(), Echoes: r.echoes.Load(), Reordered: r.reordered.Load()}
	from := r.t0 + int64(r.cfg.Warmup)
	var lat, rep, lag []time.Duration
	for i := range r.played {
		s := &r.slots[i]
		if s.sched < from {
			continue
		}
		res.Scheduled++
		status, recv := s.status.Load(), s.recv.Load()
		switch status {
		case statusAcked:
			res.SentOK++
			rep = append(rep, time.Duration(s.reply.Load()-s.sched))
			if recv == 0 {
				res.Lost++
			} else if a, b := s.ackSeq.Load(), s.recvSeq.Load(); a > 0 && b > 0 && a != b {
				res.SeqMismatch++
			}
		case statusNone:
			res.Errors["no answer"]++
		case statusWriteFailed:
			res.Errors["write failed"]++
		default:
			res.Errors[strconv.Itoa(int(status))]++
		}
		if start := s.start.Load(); start != 0 {
			lag = append(lag, time.Duration(start-s.sched))
		}
		if recv != 0 {
			res.Delivered++
			lat = append(lat, time.Duration(recv-s.sched))
			if status != statusAcked {
				res.Unacked++
			}
		}
		res.Duplicates += int(s.dups.Load())
		res.Reanswered += int(s.reacks.Load())
	}
	if res.Scheduled > 0 {
		res.Achieved = float64(res.SentOK) / r.cfg.Duration.Seconds()
	}
	res.Latency, res.Reply, res.SenderLag = PercentilesOf(lat), PercentilesOf(rep), PercentilesOf(lag)
	return res
}

// ErrorCount is the number of failed sends.
func (r Result) ErrorCount() int {
	n := 0
	for _, v := range r.Errors {
		n += v
	}
	return n
}

// Sustained says whether the run kept up: every message acknowledged and
// delivered once, to the right member with the acknowledged seq, no socket
// dropped, and p99 latency under limit.
func (r Result) Sustained(limit time.Duration) bool {
	return r.Scheduled > 0 && r.ErrorCount() == 0 && r.Lost == 0 && r.Duplicates == 0 && r.Misrouted == 0 &&
		r.SeqMismatch == 0 && r.Reanswered == 0 && r.SocketsEnded == 0 &&
		r.Delivered == r.Scheduled && r.Latency.P99 < limit
}

// Mode is a label of how the run sent and connected.
func (r Result) Mode() string {
	s := "sends " + r.Send.Describe()
	if r.SharedConns > 0 {
		s += fmt.Sprintf("; EXTRA: %d shared keep-alive connections (not browser-like)", r.SharedConns)
	} else {
		s += "; own connection per member"
	}
	return s
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) }

// String is a human summary of the run.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rooms=%d target=%.0f/s achieved=%.0f/s size=%dB measured=%v (%s)\n", r.Rooms, r.Rate, r.Achieved, r.Size, r.Duration, r.Mode())
	fmt.Fprintf(&b, "  latency ms (due→other member): p50=%s p90=%s p99=%s p99.9=%s max=%s (n=%d)\n",
		ms(r.Latency.P50), ms(r.Latency.P90), ms(r.Latency.P99), ms(r.Latency.P999), ms(r.Latency.Max), r.Latency.N)
	fmt.Fprintf(&b, "  ack ms (due→acknowledged): p50=%s p99=%s max=%s; sender lag ms: p50=%s p99=%s max=%s\n",
		ms(r.Reply.P50), ms(r.Reply.P99), ms(r.Reply.Max), ms(r.SenderLag.P50), ms(r.SenderLag.P99), ms(r.SenderLag.Max))
	fmt.Fprintf(&b, "  scheduled=%d acked=%d delivered=%d lost=%d unacked-delivered=%d duplicates=%d seq-mismatch=%d reanswered=%d misrouted=%d reordered=%d unknown=%d errors=%v sockets-ended=%d",
		r.Scheduled, r.SentOK, r.Delivered, r.Lost, r.Unacked, r.Duplicates, r.SeqMismatch, r.Reanswered, r.Misrouted, r.Reordered, r.Unknown, r.Errors, r.SocketsEnded)
	if len(r.SocketsEndedBy) > 0 {
		fmt.Fprintf(&b, " %v", r.SocketsEndedBy)
	}
	return b.String()
}
