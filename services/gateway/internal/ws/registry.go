package ws

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"
)

// Settings are the timers and limits of every socket. The defaults suit
// browsers; tests shorten the timers to run past several of each.
type Settings struct {
	// PingInterval is how often each socket is pinged.
	PingInterval time.Duration
	// PongWait: a socket from which nothing arrived for this long is closed.
	PongWait time.Duration
	// WriteWait: a write the peer does not take within it drops the socket.
	WriteWait time.Duration
	// ReadLimit is the largest message (all fragments) a peer may send.
	ReadLimit int64
}

// DefaultSettings are the production values.
var DefaultSettings = Settings{
	PingInterval: 25 * time.Second,
	PongWait:     60 * time.Second,
	WriteWait:    5 * time.Second,
	ReadLimit:    16 << 10,
}

// Validate checks that the timers can work together: a ping must be able
// to come back before the peer is given up on.
func (s Settings) Validate() error {
	switch {
	case s.PingInterval <= 0 || s.PongWait <= 0 || s.WriteWait <= 0:
		return fmt.Errorf("ws: ping interval, pong wait and write wait must be positive")
	case s.PongWait <= s.PingInterval:
		return fmt.Errorf("ws: pong wait (%s) must be longer than the ping interval (%s)", s.PongWait, s.PingInterval)
	case s.ReadLimit < 125:
		return fmt.Errorf("ws: read limit %d is below a control frame's 125 bytes", s.ReadLimit)
	}
	return nil
}

// Registry tracks the live sockets: shutdown waits for them and one pinger
// keeps them all alive.
type Registry struct {
	set  Settings
	mu   sync.Mutex
	all  map[*Socket]struct{}
	zero chan struct{}
}

// NewRegistry returns a registry whose sockets use set.
func NewRegistry(set Settings) *Registry {
	return &Registry{set: set, all: map[*Socket]struct{}{}}
}

// Start attaches the upgraded connection to k, registers it and starts its
// first reader turn. A connection without a file descriptor (never the case for TCP)
// is an error: the non-blocking write path needs one.
func (r *Registry) Start(k *Socket, conn net.Conn) error {
	if err := k.start(conn, &r.set); err != nil {
		return err
	}
	r.mu.Lock()
	r.all[k] = struct{}{}
	r.mu.Unlock()
	k.done = r.done
	go k.turn(false)
	return nil
}

func (r *Registry) done(k *Socket) {
	r.mu.Lock()
	delete(r.all, k)
	if len(r.all) == 0 && r.zero != nil {
		close(r.zero)
		r.zero = nil
	}
	r.mu.Unlock()
}

// Len is the number of live sockets.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.all)
}

// Wait returns when no socket is left, or when ctx ends.
func (r *Registry) Wait(ctx context.Context) error {
	r.mu.Lock()
	if len(r.all) == 0 {
		r.mu.Unlock()
		return nil
	}
	if r.zero == nil {
		r.zero = make(chan struct{})
	}
	zero := r.zero
	r.mu.Unlock()
	select {
	case <-zero:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ping asks each socket's writer for a ping when one is due, and closes
// the sockets whose peer was silent for PongWait, until ctx ends. One
// goroutine and no timer per socket; each socket is pinged every
// PingInterval from its own start, so pings are spread over time rather
// than sent to every socket at once.
func (r *Registry) Ping(ctx context.Context) {
	t := time.NewTicker(min(time.Second, r.set.PingInterval/4))
	defer t.Stop()
	var due, silent []*Socket
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			due, silent = due[:0], silent[:0]
			r.mu.Lock()
			for k := range r.all {
				switch {
				case k.silent(now):
					silent = append(silent, k)
				case k.pingDue(now):
					due = append(due, k)
				}
			}
			r.mu.Unlock()
			for _, k := range due {
				k.Wake()
			}
			// A peer that answers nothing is gone: its reader ends with the
			// connection.
			for _, k := range silent {
				k.fail()
			}
		}
	}
}
