// Package chaos runs steady traffic against a whole wisp system and breaks
// its parts one at a time (kill -9 and restart of NATS, Redis and each
// service, a stalled Redis), then accounts for every acknowledged message
// and every room end as the members saw them. The members behave like the
// web UI: one socket each, sends with a clientId resent until acked, a
// reconnect to any gateway when the socket drops, and a gap-fill from the
// history after a reconnect or when a seq is skipped — never a final
// gap-fill the UI would not make.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"wisp/contract"
	"wisp/stack"
	"wisp/stack/client"
)

// Options shape the load.
type Options struct {
	// Rooms are kept alive at once, each with one member on each of two
	// gateways; a room that ends is replaced by a new one.
	Rooms int
	// SendEvery is how often each member sends.
	SendEvery time.Duration
	// RoomTTL is the system's ROOM_TTL: how long a room lives unless a member
	// destroys it first.
	RoomTTL time.Duration
	// DestroyShare of the rooms are destroyed by a member half-way through.
	DestroyShare float64
}

// Tunables of the members' behaviour, the web UI's in spirit.
const (
	resendAfter   = 2 * time.Second        // an unanswered send is sent again (same clientId)
	retryAfter    = 500 * time.Millisecond // after a 429 or 5xx, or a failed dial
	quietBefore   = 1500 * time.Millisecond
	giveUpAfter   = 20 * time.Second // past the deadline, a member still not told stops trying
	firstSourceIP = 2                // members connect from 127.0.<2+n/250>.<1+n%250>
)

// Load is the traffic: rooms of two members each.
type Load struct {
	sys *stack.System
	opt Options
	ctx context.Context

	cancel   context.CancelFunc
	draining atomic.Bool
	workers  sync.WaitGroup
	sources  atomic.Int64

	mu    sync.Mutex
	rooms []*roomRun
}

// roomRun is one room from its creation to its end.
type roomRun struct {
	id        string
	created   time.Time
	deadline  time.Time
	members   [2]*member
	mu        sync.Mutex
	endedAt   time.Time // when the room ended, as far as the load knows
	endReason string
}

func (r *roomRun) end(at time.Time, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.endedAt.IsZero() || at.Before(r.endedAt) {
		r.endedAt, r.endReason = at, reason
	}
}

func (r *roomRun) ended() (time.Time, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.endedAt, r.endReason
}

// Start begins the load on sys and returns once every room's members are
// connected.
func Start(sys *stack.System, opt Options) (*Load, error) {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{sys: sys, opt: opt, ctx: ctx, cancel: cancel}
	ready := make(chan error, opt.Rooms)
	for i := range opt.Rooms {
		l.workers.Go(func() { l.slot(i, ready) })
	}
	for range opt.Rooms {
		if err := <-ready; err != nil {
			l.Stop(5 * time.Second)
			return nil, err
		}
	}
	return l, nil
}

// slot keeps one room alive: when it ends, the next one starts.
func (l *Load) slot(i int, ready chan<- error) {
	first := true
	for !l.draining.Load() && l.ctx.Err() == nil {
		r, err := l.open(i)
		if first {
			ready <- err
			first = false
		}
		if err != nil {
			return
		}
		var wg sync.WaitGroup
		for _, m := range r.members {
			wg.Go(func() { m.run(l.ctx) })
		}
		if rand.Float64() < l.opt.DestroyShare { //nolint:gosec // which rooms a member destroys: load shape, not a secret
			wg.Go(func() { l.destroyLater(r, r.members[i%2]) })
		}
		wg.Wait()
	}
}

// open creates a room through a live gateway and admits one member through
// each of two gateways, retrying through outages.
func (l *Load) open(i int) (*roomRun, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := l.tryOpen(i)
		if err == nil || l.ctx.Err() != nil {
			return r, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("open a room: %w", err)
		}
		time.Sleep(retryAfter)
	}
}

func (l *Load) tryOpen(i int) (*roomRun, error) {
	gws := l.sys.Gateways()
	if len(gws) == 0 {
		return nil, errors.New("no gateway")
	}
	a, b := gws[i%len(gws)], gws[(i+1)%len(gws)]
	creator := l.person(a)
	id, err := creator.Create(l.ctx)
	if err != nil {
		return nil, err
	}
	r := &roomRun{id: id, created: time.Now(), deadline: time.Now().Add(l.opt.RoomTTL)}
	for k, gw := range []string{a, b} {
		p := creator
		if k == 1 {
			p = l.person(gw)
		}
		if err := p.Join(l.ctx, id); err != nil {
			return nil, err
		}
		r.members[k] = &member{load: l, room: r, p: p, name: fmt.Sprintf("%s/%c", id[:6], 'a'+k),
			seen: map[int64]string{}, pending: map[string]*send{}, acked: map[string]*send{}}
	}
	r.members[0].other, r.members[1].other = r.members[1], r.members[0]
	l.mu.Lock()
	l.rooms = append(l.rooms, r)
	l.mu.Unlock()
	return r, nil
}

// person is a new browser with a client address of its own.
func (l *Load) person(gw string) *client.Person {
	n := l.sources.Add(1)
	return client.NewFrom(gw, net.IPv4(127, byte(firstSourceIP+n/250), byte(1+n%250), 1))
}

// destroyLater has m destroy the room half-way through its life.
func (l *Load) destroyLater(r *roomRun, m *member) {
	select {
	case <-time.After(time.Until(r.created.Add(l.opt.RoomTTL / 2))):
	case <-l.ctx.Done():
		return
	}
	l.destroy(r, m)
}

// destroy has m end the room, retrying through outages; a room already
// gone needs no destroy.
func (l *Load) destroy(r *roomRun, m *member) {
	for l.ctx.Err() == nil && time.Now().Before(r.deadline) {
		err := m.at().Destroy(l.ctx, r.id)
		var se *client.StatusError
		switch {
		case err == nil:
			r.end(time.Now(), contract.ReasonDestroyed)
			return
		case errors.As(err, &se) && (se.Status == 401 || se.Status == 404):
			return
		}
		time.Sleep(retryAfter)
	}
}

// Wiped records that every live room ended at once (Redis lost its data).
func (l *Load) Wiped(at time.Time) {
	for _, r := range l.snapshot() {
		if e, _ := r.ended(); e.IsZero() && r.deadline.After(at) {
			r.end(at, "lost with redis")
		}
	}
}

func (l *Load) snapshot() []*roomRun {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*roomRun(nil), l.rooms...)
}

// Stop ends the load: no new sends or rooms, a moment for what is in
// flight, then every live room is destroyed and its members must hear of
// it; after within, members still waiting give up.
func (l *Load) Stop(within time.Duration) {
	l.draining.Store(true)
	time.Sleep(2 * resendAfter)
	var wg sync.WaitGroup
	for _, r := range l.snapshot() {
		if e, _ := r.ended(); e.IsZero() && r.deadline.After(time.Now()) {
			wg.Go(func() { l.destroy(r, r.members[0]) })
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); l.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(within):
	}
	l.cancel()
	l.workers.Wait()
}

// member is one browser in one room.
type member struct {
	load  *Load
	room  *roomRun
	other *member
	name  string
	p     *client.Person

	mu          sync.Mutex
	seen        map[int64]string // seq -> text, from the socket and gap-fills
	lastSeq     int64
	pending     map[string]*send // by clientId, not yet acked
	acked       map[string]*send
	online      bool      // a socket is open
	dropped     time.Time // when its last socket dropped
	told        string    // how the member learnt of the room's end: "destroy" (the event) or "refused" (the room was gone on reconnect)
	toldAt      time.Time
	toldOffline bool // told on a reconnect, its socket having dropped
	reconnects  int
	sent        int
}

// send is one message a member sent, by its clientId (also its text).
type send struct {
	id           string
	first, acked time.Time
	last         time.Time
	seq          int64
}

// at is the member's person on a live gateway: its own while that one
// lives, another otherwise.
func (m *member) at() *client.Person {
	gws := m.load.sys.Gateways()
	for _, gw := range gws {
		if gw == m.p.Base {
			return m.p
		}
	}
	if len(gws) == 0 {
		return m.p
	}
	return m.p.At(gws[rand.IntN(len(gws))]) //nolint:gosec // spreading reconnects, not a secret
}

// run connects, and reconnects, until the member is told of the room's end
// (or gives up).
func (m *member) run(ctx context.Context) {
	for ctx.Err() == nil {
		ws, gone := m.connect(ctx)
		if ws == nil {
			if gone {
				m.tell("refused")
			}
			return
		}
		m.mu.Lock()
		m.online = true
		m.mu.Unlock()
		told := m.serve(ctx, ws)
		m.mu.Lock()
		m.online = false
		if !told {
			m.reconnects++
			m.dropped = time.Now()
		}
		m.mu.Unlock()
		if told {
			return
		}
	}
}

// connect opens the socket on a live gateway, its own first; gone says
// the room is no more (the gateway refused it).
func (m *member) connect(ctx context.Context) (ws *client.Socket, gone bool) {
	for ctx.Err() == nil && time.Now().Before(m.room.deadline.Add(giveUpAfter)) {
		ws, err := m.at().Dial(ctx, m.room.id)
		var se *client.StatusError
		switch {
		case err == nil:
			return ws, false
		case errors.As(err, &se) && (se.Status == 401 || se.Status == 403 || se.Status == 404):
			return nil, true
		}
		time.Sleep(retryAfter)
	}
	return nil, false
}

type frameOrErr struct {
	f   client.Frame
	err error
}

// serve runs one socket until it drops (false) or the member is told of
// the end (true).
func (m *member) serve(ctx context.Context, ws *client.Socket) bool {
	defer ws.Close()
	frames := make(chan frameOrErr, 256)
	go func() {
		for {
			f, err := ws.Next(time.Minute)
			frames <- frameOrErr{f, err}
			if err != nil {
				return
			}
		}
	}()
	// After every (re)connect, what was missed meanwhile, and the sends
	// still unanswered, again with their clientIds.
	if m.gapFill(ctx) {
		return true
	}
	m.resend(ws, 0)
	tick := time.NewTicker(m.load.opt.SendEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return true
		case fe := <-frames:
			if fe.err != nil {
				return false
			}
			if m.handle(ctx, fe.f) {
				return true
			}
		case <-tick.C:
			m.resend(ws, resendAfter) // until acked or the room ends, as the UI does
			if m.quiet() {
				continue
			}
			id := contract.RandomID(16)
			now := time.Now()
			m.mu.Lock()
			m.pending[id] = &send{id: id, first: now, last: now}
			m.sent++
			m.mu.Unlock()
			if ws.SendFrame(id, "m", id) != nil {
				return false
			}
		}
	}
}

// quiet is true when a member would not send: the load is winding down,
// the room ends soon, or it ended.
func (m *member) quiet() bool {
	if m.load.draining.Load() || time.Until(m.room.deadline) < quietBefore {
		return true
	}
	e, _ := m.room.ended()
	return !e.IsZero()
}

// resend sends again every pending send last sent more than after ago.
func (m *member) resend(ws *client.Socket, after time.Duration) {
	m.mu.Lock()
	var due []string
	for id, s := range m.pending {
		if time.Since(s.last) >= after {
			s.last = time.Now()
			due = append(due, id)
		}
	}
	m.mu.Unlock()
	for _, id := range due {
		if ws.SendFrame(id, "m", id) != nil {
			return
		}
	}
}

// handle takes one frame; true when it tells of the room's end.
func (m *member) handle(ctx context.Context, f client.Frame) bool {
	switch f.Event {
	case contract.EventMessage:
		msg, err := f.Message()
		if err != nil {
			return false
		}
		m.mu.Lock()
		gap := msg.Seq > m.lastSeq+1
		m.mu.Unlock()
		if gap && m.gapFill(ctx) {
			return true
		}
		m.saw(msg)
	case "ack":
		a, err := f.Ack()
		if err != nil {
			return false
		}
		m.mu.Lock()
		if s, ok := m.pending[a.ClientID]; ok {
			delete(m.pending, a.ClientID)
			s.acked, s.seq = time.Now(), a.Message.Seq
			m.acked[a.ClientID] = s
		}
		m.mu.Unlock()
	case "error":
		a, _ := f.Ack()
		m.mu.Lock()
		if s, ok := m.pending[a.ClientID]; ok && a.Status != 401 && a.Status != 404 {
			// Retried sooner than an unanswered send, as the UI's automatic
			// resend does.
			s.last = time.Now().Add(retryAfter - resendAfter)
		}
		m.mu.Unlock()
	case contract.EventDestroy:
		m.tell("destroy")
		return true
	}
	return false
}

func (m *member) saw(msg contract.Message) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen[msg.Seq] = msg.Text
	m.lastSeq = max(m.lastSeq, msg.Seq)
}

// gapFill reads the history after the newest seq seen, page by page; true
// when the room turns out to be gone.
func (m *member) gapFill(ctx context.Context) bool {
	for ctx.Err() == nil {
		m.mu.Lock()
		after := m.lastSeq
		m.mu.Unlock()
		page, err := m.at().Page(ctx, m.room.id, after)
		var se *client.StatusError
		switch {
		case errors.As(err, &se) && (se.Status == 401 || se.Status == 404):
			m.tell("refused")
			return true
		case err != nil:
			time.Sleep(retryAfter) // the UI retries a failed load
			continue
		}
		for _, msg := range page.Messages {
			m.saw(msg)
		}
		if !page.More || len(page.Messages) == 0 {
			return false
		}
	}
	return false
}

func (m *member) tell(how string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.told == "" {
		m.told, m.toldAt, m.toldOffline = how, time.Now(), !m.online
	}
}
