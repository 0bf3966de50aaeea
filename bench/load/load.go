// Package load drives a running wisp the way browsers do: rooms of two
// members, each joined through the room page with a cookie of its own and
// listening on the room's WebSocket, each posting messages on a fixed,
// open-loop schedule. It measures, per message, the time from its scheduled
// send to its arrival at the other member.
package load

import (
	"bytes"
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

	"github.com/valyala/fasthttp"
)

// Config is one run.
type Config struct {
	Gateways []string      // gateway base URLs (http://host:port); members alternate between them
	Rooms    int           // rooms, two members each
	Rate     float64       // messages per second, all members together
	Duration time.Duration // measured part of the schedule
	Warmup   time.Duration // schedule before the measured part; sent, not counted
	Size     int           // bytes of message text (at least the id it carries)
	Grace    time.Duration // how long after the last reply a message may still arrive
	Conns    int           // HTTP connections (and concurrent sends) at most, over all gateways
	Setup    int           // concurrent room setups
	Log      io.Writer     // progress; discarded when nil
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
	if c.Size <= 0 {
		c.Size = 64
	}
	if c.Grace <= 0 {
		c.Grace = 5 * time.Second
	}
	if c.Conns <= 0 {
		c.Conns = 256
	}
	if c.Setup <= 0 {
		c.Setup = 32
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return nil
}

// slot is one scheduled message. Times are nanoseconds since the run's base.
type slot struct {
	sched  int64 // when the schedule sends it
	start  int64 // when a sender began the POST
	reply  int64 // when the POST answered
	recv   atomic.Int64
	status int32 // HTTP status; 0 = no answer
	dups   atomic.Int32
}

type run struct {
	cfg     Config
	base    time.Time // the clock's zero; set before any socket opens
	t0      int64     // when the schedule began
	played  int       // slots handed to senders
	slots   []slot
	rooms   []*Room
	members int

	echoes    atomic.Int64 // a member's own message back on its socket (expected)
	misrouted atomic.Int64 // a message on another room's socket
	unknown   atomic.Int64 // frames the generator did not send
}

func (r *run) now() int64 { return int64(time.Since(r.base)) }

// Run opens cfg.Rooms rooms, plays the schedule and reports.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	gws := make([]*Gateway, len(cfg.Gateways))
	for i, u := range cfg.Gateways {
		g, err := NewGateway(u, max(1, cfg.Conns/len(cfg.Gateways)))
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
	r.base = time.Now()
	socks, err := Connect(ctx, rooms, cfg.Setup, r.onFrame)
	if err != nil {
		return Result{}, err
	}
	setup := time.Since(setupStart)
	fmt.Fprintf(cfg.Log, "  %d rooms, %d sockets ready in %v; %d messages at %.0f/s\n",
		cfg.Rooms, socks.Len(), setup.Round(time.Millisecond), total, cfg.Rate)

	if cfg.Rate == 0 {
		// Idle sockets only (memory measurements): hold them for Duration.
		select {
		case <-ctx.Done():
		case <-time.After(cfg.Duration):
		}
	}
	r.play(ctx)
	r.await(ctx)
	ended := socks.Ended()
	socks.Close()

	res := r.result()
	res.Setup = setup
	res.SocketsEnded = ended
	return res, nil
}

// play sends the schedule: message i is due at i/rate, whatever happened
// to the ones before it (open loop). Senders take due messages from a
// queue; when they fall behind, the delay counts in the latency because it
// is measured from the due time.
func (r *run) play(ctx context.Context) {
	queue := make(chan int, 1<<16)
	var senders sync.WaitGroup
	for range r.cfg.Conns {
		senders.Go(func() { r.sender(queue) })
	}
	interval := float64(time.Second) / max(r.cfg.Rate, 1)
	r.t0 = r.now()
	measured := false
	for i := range r.slots {
		at := r.t0 + int64(float64(i)*interval)
		if d := at - r.now(); d > 0 {
			time.Sleep(time.Duration(d))
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
		queue <- i
	}
	r.mark(false)
	close(queue)
	senders.Wait()
}

func (r *run) mark(measuring bool) {
	if r.cfg.Mark != nil {
		r.cfg.Mark(measuring)
	}
}

// sender posts due messages. Message i is sent by member i mod 2N: every
// member sends at the same steady rate.
func (r *run) sender(queue <-chan int) {
	body := make([]byte, 0, 64+r.cfg.Size)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	for i := range queue {
		c := i % r.members
		m := r.rooms[c/2].Members[c%2]
		body = append(body[:0], `{"sender":"bench","text":"L`...)
		body = strconv.AppendInt(body, int64(i), 10)
		body = append(body, '.')
		for n := len(body) - len(`{"sender":"bench","text":"`); n < r.cfg.Size; n++ {
			body = append(body, 'x')
		}
		body = append(body, `"}`...)
		s := &r.slots[i]
		s.start = r.now()
		status, _ := m.gw.Send(m.Room.ID, m.Cookie, body, resp)
		s.reply = r.now()
		s.status = int32(status)
		resp.Reset()
	}
}

// onFrame matches a chat.message to its slot by the id in its text.
func (r *run) onFrame(m *Member, frame []byte) {
	at := r.now()
	text, ok := textOf(frame)
	if !ok || len(text) < 2 || text[0] != 'L' {
		if ok || !containsDestroy(frame) {
			r.unknown.Add(1)
		}
		return
	}
	id := 0
	for _, c := range text[1:] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + int(c-'0')
	}
	if id >= len(r.slots) {
		r.unknown.Add(1)
		return
	}
	c := id % r.members
	switch {
	case c/2 != m.Room.Index:
		r.misrouted.Add(1)
	case c%2 == m.Index:
		r.echoes.Add(1)
	default:
		s := &r.slots[id]
		if !s.recv.CompareAndSwap(0, at) {
			s.dups.Add(1)
		}
	}
}

func containsDestroy(frame []byte) bool { return bytes.Contains(frame, destroyEvent) }

// await waits until every answered message has reached the other member,
// or the grace period is over.
func (r *run) await(ctx context.Context) {
	deadline := time.Now().Add(r.cfg.Grace)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		missing := false
		for i := range r.played {
			s := &r.slots[i]
			if s.status == 200 && s.recv.Load() == 0 {
				missing = true
				break
			}
		}
		if !missing {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Result is what a run measured over its measured part (after warmup).
type Result struct {
	Rooms        int
	Rate         float64 // target, msgs/s
	Duration     time.Duration
	Size         int
	Setup        time.Duration
	Scheduled    int
	SentOK       int            // answered 200
	Errors       map[string]int // by status ("timeout" for no answer)
	Delivered    int            // reached the other member
	Lost         int            // answered 200, never reached the other member
	Duplicates   int            // reached the other member more than once
	Misrouted    int64          // reached another room
	Unknown      int64          // frames the generator did not send
	Echoes       int64          // own messages back (expected, not counted)
	SocketsEnded int64          // sockets the server closed during the run
	Achieved     float64        // answered 200 per second of the measured part
	Latency      Percentiles    // scheduled send → other member received
	Reply        Percentiles    // scheduled send → POST answered
	SenderLag    Percentiles    // scheduled send → POST began (generator delay)
}

// Percentiles of a duration sample.
type Percentiles struct {
	N                        int
	P50, P90, P99, P999, Max time.Duration
}

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return Percentiles{N: len(d), P50: at(.50), P90: at(.90), P99: at(.99), P999: at(.999), Max: d[len(d)-1]}
}

func (r *run) result() Result {
	res := Result{Rooms: r.cfg.Rooms, Rate: r.cfg.Rate, Duration: r.cfg.Duration, Size: r.cfg.Size,
		Errors: map[string]int{}, Misrouted: r.misrouted.Load(), Unknown: r.unknown.Load(), Echoes: r.echoes.Load()}
	from := r.t0 + int64(r.cfg.Warmup)
	var lat, rep, lag []time.Duration
	for i := range r.played {
		s := &r.slots[i]
		if s.sched < from {
			continue
		}
		res.Scheduled++
		recv := s.recv.Load()
		if s.status == 200 {
			res.SentOK++
			rep = append(rep, time.Duration(s.reply-s.sched))
			if recv == 0 {
				res.Lost++
			}
		} else if s.status == 0 {
			res.Errors["no answer"]++
		} else {
			res.Errors[strconv.Itoa(int(s.status))]++
		}
		lag = append(lag, time.Duration(s.start-s.sched))
		if recv != 0 {
			res.Delivered++
			lat = append(lat, time.Duration(recv-s.sched))
		}
		res.Duplicates += int(s.dups.Load())
	}
	res.Achieved = float64(res.SentOK) / r.cfg.Duration.Seconds()
	if res.Scheduled == 0 {
		res.Achieved = 0
	}
	res.Latency, res.Reply, res.SenderLag = percentiles(lat), percentiles(rep), percentiles(lag)
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

// Sustained says whether the run kept up: every message sent and
// delivered, none twice or astray, and p99 latency under limit.
func (r Result) Sustained(limit time.Duration) bool {
	return r.Scheduled > 0 && r.ErrorCount() == 0 && r.Lost == 0 && r.Duplicates == 0 && r.Misrouted == 0 &&
		r.Delivered == r.Scheduled && r.Latency.P99 < limit
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) }

// String is a human summary of the run.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rooms=%d target=%.0f/s achieved=%.0f/s size=%dB measured=%v\n", r.Rooms, r.Rate, r.Achieved, r.Size, r.Duration)
	fmt.Fprintf(&b, "  latency ms (send→other member): p50=%s p90=%s p99=%s p99.9=%s max=%s (n=%d)\n",
		ms(r.Latency.P50), ms(r.Latency.P90), ms(r.Latency.P99), ms(r.Latency.P999), ms(r.Latency.Max), r.Latency.N)
	fmt.Fprintf(&b, "  POST reply ms: p50=%s p99=%s max=%s; sender lag ms: p99=%s max=%s\n",
		ms(r.Reply.P50), ms(r.Reply.P99), ms(r.Reply.Max), ms(r.SenderLag.P99), ms(r.SenderLag.Max))
	fmt.Fprintf(&b, "  scheduled=%d sent-ok=%d delivered=%d lost=%d duplicates=%d misrouted=%d errors=%v sockets-ended=%d",
		r.Scheduled, r.SentOK, r.Delivered, r.Lost, r.Duplicates, r.Misrouted, r.Errors, r.SocketsEnded)
	return b.String()
}
