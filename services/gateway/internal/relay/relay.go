// Package relay fans a room's events out to the WebSocket clients this
// gateway holds for it. It subscribes to a room's feed while it has at least
// one client there, and never lets a slow client hold up the others.
package relay

import (
	"errors"
	"sync"
	"sync/atomic"
)

// Subscriber opens the event feed of one room. Once Subscribe returns, every
// later event of the room reaches Hub.Deliver.
type Subscriber interface {
	Subscribe(roomID string) (unsubscribe func(), err error)
}

// Frame is one text frame for a client; Last marks the room's final event,
// after which the client is closed.
type Frame struct {
	Data []byte
	Last bool
}

// Close reasons a client is ended with.
const (
	ReasonSlow      = "slow consumer"
	ReasonGoingAway = "server shutting down"
)

// Client is one WebSocket's queue of frames. The queue is bounded: a client
// that falls QueueSize frames behind is kicked (it reconnects and catches up
// from the API), so a slow reader never slows anyone else down.
//
// The queue holds pointers (one Frame is shared by every client of the room)
// so that an idle client costs a few hundred bytes; with OnWake, no goroutine
// needs to wait on it either.
type Client struct {
	frames chan *Frame
	done   chan struct{}
	once   sync.Once
	reason atomic.Value // string
	wake   func()
}

// NewClient returns a client with room for queueSize pending frames.
func NewClient(queueSize int) *Client {
	return &Client{frames: make(chan *Frame, queueSize), done: make(chan struct{})}
}

// OnWake sets a function called after each frame is queued and when the
// client is kicked, so that a writer can be started on demand instead of
// one waiting per client. Set it before the client joins a hub; it must not
// block.
func (c *Client) OnWake(wake func()) { c.wake = wake }

// Frames yields the frames to write, in order.
func (c *Client) Frames() <-chan *Frame { return c.frames }

// Done is closed when the client must be disconnected; Reason says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Reason is why Done was closed.
func (c *Client) Reason() string {
	r, _ := c.reason.Load().(string)
	return r
}

// Kick asks the client's writer to disconnect it; only the first reason is kept.
func (c *Client) Kick(reason string) {
	c.once.Do(func() {
		c.reason.Store(reason)
		close(c.done)
		if c.wake != nil {
			c.wake()
		}
	})
}

func (c *Client) offer(f *Frame) bool {
	select {
	case c.frames <- f:
		if c.wake != nil {
			c.wake()
		}
		return true
	default:
		return false
	}
}

type room struct {
	clients map[*Client]struct{}
	ready   chan struct{} // closed once the subscription is settled
	err     error
	unsub   func()
}

// Stats are the hub's counters, read by metrics.
type Stats struct {
	Relayed atomic.Int64 // frames queued to clients
	Dropped atomic.Int64 // clients kicked as slow consumers
}

// MaxClientsPerRoom bounds one room's sockets on one gateway: two members
// with a few tabs each, not a member opening sockets without end.
const MaxClientsPerRoom = 16

// ErrCrowded is a join beyond MaxClientsPerRoom.
var ErrCrowded = errors.New("too many connections to this room")

// Hub maps rooms to their local clients.
type Hub struct {
	sub   Subscriber
	mu    sync.RWMutex
	rooms map[string]*room
	conns atomic.Int64
	Stats Stats
}

// NewHub returns a hub that opens room feeds through sub.
func NewHub(sub Subscriber) *Hub {
	return &Hub{sub: sub, rooms: make(map[string]*room)}
}

// Join adds c to the room, subscribing to the room's feed if c is the first
// local client. When Join returns nil, c receives every later event.
func (h *Hub) Join(roomID string, c *Client) error {
	h.mu.Lock()
	r, ok := h.rooms[roomID]
	if !ok {
		r = &room{clients: make(map[*Client]struct{}), ready: make(chan struct{})}
		h.rooms[roomID] = r
	}
	if len(r.clients) >= MaxClientsPerRoom {
		h.mu.Unlock()
		return ErrCrowded
	}
	r.clients[c] = struct{}{}
	h.mu.Unlock()
	h.conns.Add(1)

	if !ok {
		// Subscribe outside the lock: it is a round trip to NATS.
		r.unsub, r.err = h.sub.Subscribe(roomID)
		if r.err != nil {
			h.mu.Lock()
			if h.rooms[roomID] == r {
				delete(h.rooms, roomID)
			}
			h.mu.Unlock()
		}
		close(r.ready)
	}
	<-r.ready
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
	if _, in := r.clients[c]; !in {
		h.mu.Unlock()
		return
	}
	delete(r.clients, c)
	h.conns.Add(-1)
	empty := len(r.clients) == 0
	if empty {
		delete(h.rooms, roomID)
	}
	h.mu.Unlock()
	if empty {
		<-r.ready
		if r.unsub != nil {
			r.unsub()
		}
	}
}

// Deliver queues an event of the room for each of its local clients,
// kicking any whose queue is full.
func (h *Hub) Deliver(roomID string, data []byte, last bool) {
	f := &Frame{Data: data, Last: last}
	h.mu.RLock()
	defer h.mu.RUnlock()
	r, ok := h.rooms[roomID]
	if !ok {
		return
	}
	for c := range r.clients {
		if c.offer(f) {
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
		for c := range r.clients {
			c.Kick(reason)
		}
	}
}
