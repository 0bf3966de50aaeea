// Package republish publishes events on NATS once more after a reconnect
// when they may have died with the old connection. Core NATS delivers at
// most once: bytes written to a server that then dies, or that the server
// took but had not yet passed on to the other nodes of its cluster, are
// lost for every subscriber elsewhere, and nothing tells the publisher.
// The latest event of each subject published in the last window before a
// disconnect is therefore published again, marked with
// contract.HeaderRepeat, once the client is back. Only the latest: a
// subscriber that gets it learns of the earlier ones by their sequence
// (the gateway reads a room's missing messages back), and a reconnect
// repeats one event per room, not a window's worth of traffic.
// Subscribers must treat events as idempotent (a chat.message by its seq,
// a chat.destroy because a room ends only once).
package republish

import (
	"container/list"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"wisp/contract"
)

// Events is what publishes events: a *Publisher, or a bare *nats.Conn
// where nothing needs repeating (tests).
type Events interface {
	Publish(subj string, data []byte) error
}

var _ Events = (*Publisher)(nil)

// entryOverhead approximates what an entry costs beyond its bytes: the
// entry, its list element and its map slot.
const entryOverhead = 144

// Publisher publishes on a connection and keeps the latest event of each
// subject published in the last window, to publish it again after a
// disconnect.
type Publisher struct {
	nc       *nats.Conn
	window   time.Duration
	maxBytes int
	now      func() time.Time

	mu     sync.Mutex
	latest map[string]*list.Element // subject → its *entry in order
	order  list.List                // oldest publish first
	bytes  int
	lostAt time.Time // zero while connected

	repeated  prometheus.Counter
	forgotten prometheus.Counter
}

type entry struct {
	at   time.Time
	subj string
	data []byte
}

func (e *entry) size() int { return len(e.subj) + len(e.data) + entryOverhead }

// New wraps nc, keeping events for window (how long a dead connection can
// go unnoticed) and at most maxBytes of them, and chains its own handlers
// before nc's disconnect and reconnect handlers. Its counters are
// registered on reg.
func New(nc *nats.Conn, window time.Duration, maxBytes int, reg prometheus.Registerer) *Publisher {
	p := &Publisher{
		nc: nc, window: window, maxBytes: maxBytes, now: time.Now,
		latest: map[string]*list.Element{},
		repeated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wisp_nats_events_repeated_total",
			Help: "Events published again after a NATS reconnect, since the old connection may have lost them.",
		}),
		forgotten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wisp_nats_events_forgotten_total",
			Help: "Events dropped before the end of the repeat window, for lack of room; a reconnect cannot repeat them.",
		}),
	}
	reg.MustRegister(p.repeated, p.forgotten)
	onLost, onBack := nc.DisconnectErrHandler(), nc.ReconnectHandler()
	nc.SetDisconnectErrHandler(func(c *nats.Conn, err error) {
		p.disconnected()
		if onLost != nil {
			onLost(c, err)
		}
	})
	nc.SetReconnectHandler(func(c *nats.Conn) {
		p.reconnected()
		if onBack != nil {
			onBack(c)
		}
	})
	return p
}

// Publish publishes data on subj and keeps both for the window, in place
// of the subject's earlier event; data must not be changed afterwards.
func (p *Publisher) Publish(subj string, data []byte) error {
	now := p.now()
	p.mu.Lock()
	p.forget(now)
	if el, ok := p.latest[subj]; ok {
		e := el.Value.(*entry)
		p.bytes -= e.size()
		e.at, e.data = now, data
		p.bytes += e.size()
		p.order.MoveToBack(el)
	} else {
		e := &entry{at: now, subj: subj, data: data}
		p.latest[subj] = p.order.PushBack(e)
		p.bytes += e.size()
	}
	for p.bytes > p.maxBytes && p.order.Len() > 1 {
		p.drop(p.order.Front())
		p.forgotten.Inc()
	}
	p.mu.Unlock()
	return p.nc.Publish(subj, data)
}

// forget drops what is older than the window at now.
func (p *Publisher) forget(now time.Time) {
	for el := p.order.Front(); el != nil && now.Sub(el.Value.(*entry).at) > p.window; el = p.order.Front() {
		p.drop(el)
	}
}

func (p *Publisher) drop(el *list.Element) {
	e := p.order.Remove(el).(*entry)
	delete(p.latest, e.subj)
	p.bytes -= e.size()
}

func (p *Publisher) disconnected() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lostAt.IsZero() {
		p.lostAt = p.now()
	}
}

// reconnected publishes again each subject's latest event from the window
// before the disconnect. What came later went to the client's reconnect
// buffer, which nats.go has already sent on the new connection, so the
// repeats arrive after it; a subject whose latest event came later is
// not repeated, since that event follows its earlier ones anyway.
func (p *Publisher) reconnected() {
	p.mu.Lock()
	lostAt := p.lostAt
	if lostAt.IsZero() {
		p.mu.Unlock()
		return
	}
	p.lostAt = time.Time{}
	var again []entry
	for el := p.order.Front(); el != nil; el = el.Next() {
		e := el.Value.(*entry)
		if e.at.After(lostAt) {
			break
		}
		if lostAt.Sub(e.at) <= p.window {
			again = append(again, *e)
		}
	}
	p.mu.Unlock()
	h := nats.Header{contract.HeaderRepeat: []string{"1"}}
	for _, e := range again {
		if err := p.nc.PublishMsg(&nats.Msg{Subject: e.subj, Data: e.data, Header: h}); err != nil {
			return // disconnected again: that disconnect repeats them
		}
		p.repeated.Inc()
	}
}
