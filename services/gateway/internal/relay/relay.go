// Package relay fans a room's events out to the WebSocket clients this
// gateway holds for it. It subscribes to a room's feed while it has at least
// one client there, and never lets a slow client hold up the others.
package relay

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"wisp/contract"
	"wisp/services/gateway/internal/ws"
)

// Subscriber opens the event feed of one room. Once Subscribe returns, every
// later event of the room reaches Hub.Deliver.
type Subscriber interface {
	Subscribe(roomID string) (unsubscribe func(), err error)
}

// Close reasons a client is ended with.
const (
	ReasonSlow      = "slow consumer"
	ReasonGoingAway = "server shutting down"
	ReasonPeerGone  = "peer closed"
)

// closeCodes tells the socket how to close for each reason: a slow client
// is asked to come back later (and gap-fill), a shutdown to reconnect.
var closeCodes = map[string]ws.StatusCode{
	ReasonSlow:      ws.StatusTryLater,
	ReasonGoingAway: ws.StatusGoingAway,
}

// Client is one WebSocket's queue of frames. The queue is bounded: a client
// that falls max frames behind is kicked (it reconnects and catches up
// from the API), so a slow reader never slows anyone else down.
//
// The queue holds pointers (one Frame is shared by every client of the room)
// and grows only while frames wait, so that an idle client costs its
// struct and nothing more; with OnWake, no goroutine needs to wait on it
// either. A Client is the ws.Outbox of its socket.
type Client struct {
	member string
	token  string // the member's secret, for catching the room up
	wake   func()
	max    int

	mu     sync.Mutex
	queue  []*ws.Frame // frames to write, oldest first, from head
	head   int
	kicked atomic.Bool
	reason string // why it was kicked, under mu
	// resent holds seqs a catch-up queued before their live events came,
	// under mu: those events are then dropped rather than sent twice.
	resent []int64
	// holds counts the client's own sends awaiting their answer, and
	// awaited is the seq of an answered one whose event has not come yet
	// (under mu). Meanwhile frames queue without waking the writer, so a
	// sent message's event and its answer (which come moments apart, in
	// either order) go out in one write instead of two. late wakes the
	// writer if that takes longer than maxHold; armed says it is running.
	holds   int32
	armed   bool
	awaited int64
	late    *time.Timer
}

// maxHold bounds how long a frame waits behind the client's own send.
const maxHold = 2 * time.Millisecond

// NewClient returns a client of the room member with the given public
// marker and secret token, with room for queueSize pending frames.
func NewClient(member, token string, queueSize int) *Client {
	return &Client{member: member, token: token, max: queueSize}
}

// Member is the public marker of the member the client belongs to.
func (c *Client) Member() string { return c.member }

// OnWake sets a function called after each frame is queued and when the
// client is kicked, so that a writer can be started on demand instead of
// one waiting per client. Set it before the client joins a hub; it must not
// block.
func (c *Client) OnWake(wake func()) { c.wake = wake }

// Next takes the oldest queued frame.
func (c *Client) Next() (*ws.Frame, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.head == len(c.queue) {
		return nil, false
	}
	f := c.queue[c.head]
	c.queue[c.head] = nil
	c.head++
	if c.head == len(c.queue) {
		// Empty again: start over, and let a grown queue go.
		c.head, c.queue = 0, c.queue[:0]
		if cap(c.queue) > 8 {
			c.queue = nil
		}
	}
	return f, true
}

// Queued is how many frames wait.
func (c *Client) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue) - c.head
}

// Kicked reports whether the client must be disconnected; Reason says why.
func (c *Client) Kicked() bool { return c.kicked.Load() }

// Reason is why the client was kicked.
func (c *Client) Reason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// CloseStatus is the close code and reason for the socket once kicked.
func (c *Client) CloseStatus() (ws.StatusCode, string) {
	r := c.Reason()
	if code, ok := closeCodes[r]; ok {
		return code, r
	}
	return ws.StatusNormal, r
}

// Send queues a frame for this client alone (an error, its presence) and
// wakes the writer, held frames or not; a client too far behind to take it
// is kicked as slow.
func (c *Client) Send(data []byte) bool {
	c.mu.Lock()
	ok := c.enqueueLocked(&ws.Frame{Data: data})
	c.mu.Unlock()
	return c.settle(ok, false)
}

// Hold keeps the client's frames queued, unwritten, until Answer (or
// maxHold): call it when a send of the client's own goes out.
func (c *Client) Hold() {
	c.mu.Lock()
	c.holds++
	c.mu.Unlock()
}

// Answer queues the answer to a send and ends its Hold. seq is the stored
// message's (0 for an error): until its event is queued too, or maxHold
// passes, the answer waits for it, and the writer then takes both. A
// client too far behind is kicked as slow.
func (c *Client) Answer(data []byte, seq int64) bool {
	c.mu.Lock()
	ok := c.enqueueLocked(&ws.Frame{Data: data})
	if c.holds > 0 {
		c.holds--
	}
	if seq > 0 && !c.eventWaitsLocked(seq) {
		c.awaited = seq
	}
	held := c.heldLocked()
	c.mu.Unlock()
	return c.settle(ok, held)
}

// settle follows a frame queued for this client alone: it wakes the writer
// unless frames are held, and kicks the client if the queue had no room.
func (c *Client) settle(ok, held bool) bool {
	if !held {
		c.wakeUp()
	}
	if !ok {
		c.Kick(ReasonSlow)
	}
	return ok
}

// eventWaitsLocked reports whether the chat.message of seq waits in the queue.
func (c *Client) eventWaitsLocked(seq int64) bool {
	for _, f := range c.queue[c.head:] {
		if s, ok := contract.SeqOf(f.Data); ok && s == seq {
			return true
		}
	}
	return false
}

// heldLocked reports whether queued frames must wait, and makes sure the
// late timer will let them out; when nothing holds them any more it stops
// the timer (called with mu held).
func (c *Client) heldLocked() bool {
	if c.holds == 0 && c.awaited == 0 {
		if c.armed {
			c.armed = false
			c.late.Stop()
		}
		return false
	}
	if !c.armed {
		c.armed = true
		if c.late == nil {
			c.late = time.AfterFunc(maxHold, c.lateAnswer)
		} else {
			c.late.Reset(maxHold)
		}
	}
	return true
}

// lateAnswer lets held frames out, and stops waiting for an event that
// may never come (it was written earlier, or went to another socket).
func (c *Client) lateAnswer() {
	c.mu.Lock()
	c.armed, c.awaited = false, 0
	c.mu.Unlock()
	c.wakeUp()
}

func (c *Client) wakeUp() {
	if c.wake != nil {
		c.wake()
	}
}

// Kick asks the client's writer to disconnect it; only the first reason is kept.
func (c *Client) Kick(reason string) {
	c.mu.Lock()
	first := !c.kicked.Load()
	if first {
		c.reason = reason
		c.kicked.Store(true)
	}
	c.mu.Unlock()
	if first {
		c.wakeUp()
	}
}

// firstCopy reports whether a chat.message with this seq is new to the
// client, and notes what a catch-up sends: fresh (no live copy relayed
// yet) means its live event may still come. Notes older than maxAhead seqs
// are let go: their events are taken as lost.
func (c *Client) firstCopy(seq int64, catchUp, fresh bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := slices.Contains(c.resent, seq)
	c.resent = slices.DeleteFunc(c.resent, func(s int64) bool { return s == seq || s+maxAhead < seq })
	if catchUp && fresh && !seen {
		c.resent = append(c.resent, seq)
	}
	if len(c.resent) == 0 {
		c.resent = nil
	}
	return !seen
}

// offer queues f, a chat.message of seq (or 0: another frame), and wakes
// the writer unless the client's own send holds it.
func (c *Client) offer(f *ws.Frame, seq int64) bool {
	c.mu.Lock()
	ok := c.enqueueLocked(f)
	if ok && seq != 0 && seq == c.awaited {
		c.awaited = 0
	}
	held := ok && c.heldLocked()
	c.mu.Unlock()
	if ok && !held {
		c.wakeUp()
	}
	return ok
}

// enqueueLocked appends f unless max frames wait (called with mu held).
func (c *Client) enqueueLocked(f *ws.Frame) bool {
	if len(c.queue)-c.head >= c.max {
		return false
	}
	if c.head > 0 && len(c.queue) == cap(c.queue) {
		// Slide the waiting frames to the front rather than grow.
		n := copy(c.queue, c.queue[c.head:])
		clear(c.queue[n:])
		c.queue, c.head = c.queue[:n], 0
	}
	c.queue = append(c.queue, f)
	return true
}

type room struct {
	clients []*Client      // a few at most (MaxClientsPerRoom): a slice is smaller than a map
	ready   sync.WaitGroup // done once the subscription is settled
	err     error
	unsub   func()
	end     *time.Timer // ends the room's sockets at its deadline
	// deadline and seqs (what was relayed, from the newest message when the
	// room's first socket came) say where a catch-up starts; from is
	// seqs.through() as it was when events stopped arriving (-1: they did not).
	deadline time.Time
	seqs     relayed
	from     atomic.Int64
	// filling is set while a gap fill of the room is due or running.
	filling atomic.Bool
}

// State is what the gateway knows of a room when a socket joins it.
type State struct {
	Deadline time.Time // zero: none known
	LastSeq  int64     // the newest message's seq
}

// Stats are the hub's counters, read by metrics.
type Stats struct {
	Relayed    atomic.Int64 // frames queued to clients
	Dropped    atomic.Int64 // clients kicked as slow consumers
	GapsFilled atomic.Int64 // gaps in a room's messages read back from its history
}

// MaxClientsPerRoom bounds one room's sockets on one gateway: two members
// with a few tabs each, not a member opening sockets without end.
const MaxClientsPerRoom = 16

// ErrCrowded is a join beyond MaxClientsPerRoom.
var ErrCrowded = errors.New("too many connections to this room")

// Hub maps rooms to their local clients.
type Hub struct {
	sub Subscriber
	// hist and gapWait are FillGaps' (nil: gaps wait for a catch-up).
	hist    History
	gapWait time.Duration
	mu      sync.RWMutex
	rooms   map[string]*room
	conns   atomic.Int64
	Stats   Stats
}

// NewHub returns a hub that opens room feeds through sub.
func NewHub(sub Subscriber) *Hub {
	return &Hub{sub: sub, rooms: make(map[string]*room)}
}

// DefaultGapWait is how long a gap in a room's messages may stay open
// before FillGaps reads the missing ones back: the events of two messages
// replicas overtake each other by milliseconds, a lost one never comes.
const DefaultGapWait = 250 * time.Millisecond

// FillGaps makes the hub read a room's missing messages back from hist
// when a later one came and they did not within wait. Core NATS delivers at
// most once: an event a NATS node had not yet passed on to the others when
// it died is lost, and this gateway, still connected to its own node, has
// no outage to catch up after. Call it before the first Join.
func (h *Hub) FillGaps(hist History, wait time.Duration) {
	h.hist, h.gapWait = hist, wait
}

// DeadlineGrace is how long after a room's deadline its sockets are closed
// by the gateway itself, in case the room's chat.destroy never arrives.
const DeadlineGrace = 2 * time.Second

// expiredFrame is what the gateway sends when it ends a room at its deadline.
var expiredFrame = contract.DestroyEvent(contract.ReasonExpired)

// Join adds c to the room, subscribing to the room's feed if c is the first
// local client. When Join returns nil, c receives every later event. The
// room's clients are sent chat.destroy and closed DeadlineGrace after
// deadline (when not zero) even if the room's own chat.destroy is lost.
func (h *Hub) Join(roomID string, c *Client, st State) error {
	h.mu.Lock()
	r, ok := h.rooms[roomID]
	if !ok {
		r = &room{clients: make([]*Client, 0, 2), deadline: st.Deadline}
		r.ready.Add(1)
		r.from.Store(-1)
		r.seqs.skipTo(st.LastSeq)
		h.rooms[roomID] = r
		if !st.Deadline.IsZero() {
			r.end = time.AfterFunc(time.Until(st.Deadline)+DeadlineGrace, func() {
				h.Deliver(roomID, expiredFrame, true)
			})
		}
	}
	if len(r.clients) >= MaxClientsPerRoom {
		h.mu.Unlock()
		return ErrCrowded
	}
	r.clients = append(r.clients, c)
	h.mu.Unlock()
	h.conns.Add(1)

	if !ok {
		// Subscribe outside the lock: it is a round trip to NATS.
		r.unsub, r.err = h.sub.Subscribe(roomID)
		if r.err != nil {
			h.mu.Lock()
			if h.rooms[roomID] == r {
				delete(h.rooms, roomID)
				r.stop()
			}
			h.mu.Unlock()
		}
		r.ready.Done()
	}
	r.ready.Wait()
	if r.err != nil {
		h.conns.Add(-1)
		return r.err
	}
	return nil
}

// Leave removes c; the last client out unsubscribes the room.
func (h *Hub) Leave(roomID string, c *Client) {
	h.mu.Lock()
	r, ok := h.rooms[roomID]
	if !ok {
		h.mu.Unlock()
		return
	}
	i := slices.Index(r.clients, c)
	if i < 0 {
		h.mu.Unlock()
		return
	}
	r.clients = slices.Delete(r.clients, i, i+1)
	h.conns.Add(-1)
	empty := len(r.clients) == 0
	if empty {
		delete(h.rooms, roomID)
		r.stop()
	}
	h.mu.Unlock()
	if empty {
		r.ready.Wait()
		if r.unsub != nil {
			r.unsub()
		}
	}
}

// token is a member's secret to read the room's history with, if the room
// has a client (called with the hub's lock held).
func (r *room) token() (string, bool) {
	if len(r.clients) == 0 {
		return "", false
	}
	return r.clients[0].token, true
}

func (r *room) stop() {
	if r.end != nil {
		r.end.Stop()
	}
}

// Deliver queues an event of the room for each of its local clients,
// kicking any whose queue is full.
func (h *Hub) Deliver(roomID string, data []byte, last bool) {
	h.deliver(roomID, &ws.Frame{Data: data, Last: last}, "", "", false)
}

// Outage marks where each room stood when events stopped reaching this
// gateway (its NATS connection dropped): the next Resync starts there.
func (h *Hub) Outage() {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, r := range h.rooms {
		r.from.CompareAndSwap(-1, r.seqs.through())
	}
}

// DeliverExcept queues a signal of one member (typing, a read receipt, its
// presence) for the room's clients that belong to another member.
func (h *Hub) DeliverExcept(roomID string, data []byte, member string) {
	h.deliver(roomID, &ws.Frame{Data: data}, member, "", false)
}

// DeliverTo queues a frame for the room's clients of one member.
func (h *Hub) DeliverTo(roomID string, data []byte, member string) {
	h.deliver(roomID, &ws.Frame{Data: data}, "", member, false)
}

// deliver queues f for the room's clients, skipping except's and, when
// only is set, everyone else's. A message a catch-up already queued for a
// client is not queued again when its live event comes.
func (h *Hub) deliver(roomID string, f *ws.Frame, except, only string, catchUp bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	r, ok := h.rooms[roomID]
	if !ok {
		return
	}
	seq, isMessage := contract.SeqOf(f.Data)
	var fresh, gap bool
	if isMessage {
		fresh, gap = r.seqs.add(seq)
	}
	if fresh && gap && h.hist != nil && r.filling.CompareAndSwap(false, true) {
		time.AfterFunc(h.gapWait, func() { h.fillGap(roomID, r) })
	}
	for _, c := range r.clients {
		if except != "" && c.member == except || only != "" && c.member != only {
			continue
		}
		if isMessage && !c.firstCopy(seq, catchUp, fresh) {
			continue
		}
		if c.offer(f, seq) {
			h.Stats.Relayed.Add(1)
		} else {
			h.Stats.Dropped.Add(1)
			c.Kick(ReasonSlow)
		}
	}
}

// Connections is the number of clients joined to rooms.
func (h *Hub) Connections() int64 { return h.conns.Load() }

// Rooms is the number of rooms with local clients (one feed each).
func (h *Hub) Rooms() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.rooms)
}

// KickAll disconnects every client, e.g. at shutdown.
func (h *Hub) KickAll(reason string) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, r := range h.rooms {
		for _, c := range r.clients {
			c.Kick(reason)
		}
	}
}

// History is where a room's stored messages can be read back.
type History interface {
	List(ctx context.Context, roomID, token string, after int64) (contract.ListReply, error)
}

// resyncWorkers rooms are caught up at once.
const resyncWorkers = 16

// Resync catches every room's clients up with what they may have missed
// while events could not reach this gateway (NATS was away, or Redis lost
// its data): the messages after the newest one relayed before the Outage
// (or now, without one), and the room's end when it is gone. A message
// relayed live before the catch-up reaches clients twice (they tell
// repeats by id and seq); one whose live event comes after is sent once. A room that cannot be read now keeps its mark
// for the next resync, and counts in failed.
func (h *Hub) Resync(ctx context.Context, hist History) (caughtUp, ended, failed int) {
	type job struct {
		id    string
		r     *room
		token string
	}
	var jobs []job
	h.mu.RLock()
	for id, r := range h.rooms {
		if token, ok := r.token(); ok {
			jobs = append(jobs, job{id, r, token})
		}
	}
	h.mu.RUnlock()
	var mu sync.Mutex
	work := make(chan job)
	var wg sync.WaitGroup
	for range min(resyncWorkers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				n, gone, err := h.resyncRoom(ctx, hist, j.id, j.r, j.token)
				mu.Lock()
				caughtUp += n
				if gone {
					ended++
				}
				if err != nil {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()
	return caughtUp, ended, failed
}

func (h *Hub) resyncRoom(ctx context.Context, hist History, id string, r *room, token string) (delivered int, gone bool, err error) {
	// After an outage, from the unbroken run as it stood then: what was on
	// its way was lost. Without one, from the newest: what is on its way
	// still comes through the feed.
	after := r.from.Load()
	if after < 0 {
		after = r.seqs.newest()
	}
	delivered, gone, err = h.readBack(ctx, hist, id, r, token, after, false)
	if err == nil && !gone {
		r.from.Store(-1)
	}
	return delivered, gone, err
}

// fillGap reads back the room's messages after its unbroken run when a gap
// is still open; messages the room no longer stores are given up on.
func (h *Hub) fillGap(id string, r *room) {
	defer r.filling.Store(false)
	if !r.seqs.gap() {
		return // the overtaken event came
	}
	h.mu.RLock()
	token, ok := "", h.rooms[id] == r
	if ok {
		token, ok = r.token()
	}
	h.mu.RUnlock()
	if !ok {
		return // the room's sockets are gone
	}
	newest := r.seqs.newest()
	// Each read is bounded by the history's own request timeout, as a
	// catch-up's are.
	_, gone, err := h.readBack(context.Background(), h.hist, id, r, token, r.seqs.through(), true)
	if err != nil {
		return // still open: the next message tries again
	}
	if !gone {
		// Every stored message up to newest was read: one still missing was
		// trimmed, or never stored, and will not come.
		r.seqs.skipTo(newest)
	}
	h.Stats.GapsFilled.Add(1)
}

// readBack delivers the room's stored messages after seq after as a
// catch-up, page by page (with onlyMissing, those not relayed yet), or the
// room's end when it is gone.
func (h *Hub) readBack(ctx context.Context, hist History, id string, r *room, token string, after int64, onlyMissing bool) (delivered int, gone bool, err error) {
	for {
		page, err := hist.List(ctx, id, token, after)
		if ce := (*contract.Error)(nil); errors.As(err, &ce) && (ce.Code == contract.CodeUnauthorized || ce.Code == contract.CodeNotFound) {
			reason := contract.ReasonDestroyed
			if !r.deadline.IsZero() && !time.Now().Before(r.deadline) {
				reason = contract.ReasonExpired
			}
			h.Deliver(id, contract.DestroyEvent(reason), true)
			return delivered, true, nil
		}
		if err != nil {
			return delivered, false, err
		}
		for _, m := range page.Messages {
			if onlyMissing && r.seqs.has(m.Seq) {
				continue
			}
			h.deliver(id, &ws.Frame{Data: contract.MessageEvent(m)}, "", "", true)
			delivered++
		}
		if !page.More || len(page.Messages) == 0 {
			return delivered, false, nil
		}
		after = page.Messages[len(page.Messages)-1].Seq
	}
}
