package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// Room is one chat room with its two members.
type Room struct {
	ID      string
	Index   int
	Members [2]*Member
}

// Member is one person in a room: a browser of their own with the room's
// cookie, its own keep-alive HTTP connection (unless the gateway's members
// share a pool) and, once connected, the room's WebSocket, all from one
// source address.
type Member struct {
	Room   *Room
	Index  int // 0 created the room, 1 joined it
	Cookie string
	gw     *Gateway
	http   *Client
	local  net.IP // source address of the member's connections; nil: the kernel's choice
	conn   *websocket.Conn
	// DestroyedAt is when chat.destroy reached the member (UnixNano), 0 if
	// it has not.
	DestroyedAt atomic.Int64

	queue   *sendQueue // due messages, during a run
	lastSeq int64      // highest seq of a chat.message on the socket; only its reader touches it
}

// HTTP is the member's HTTP client.
func (m *Member) HTTP() *Client { return m.http }

// CloseHTTP closes the members' idle keep-alive connections (e.g. to
// measure the sockets alone, or when a run ends).
func CloseHTTP(rooms []*Room) {
	for _, r := range rooms {
		if r == nil { // a setup that failed part-way
			continue
		}
		for _, m := range r.Members {
			if m != nil && m.http != nil {
				m.http.CloseIdle()
			}
		}
	}
}

// FrameHandler sees each frame a member's socket receives; frame is only
// valid during the call.
type FrameHandler func(m *Member, frame []byte)

// CreateRooms creates n rooms and admits two members to each through the
// room page, each getting its own cookie, each over its own connection
// (the first member creates the room over its connection too). Member i of
// room r talks to gateway (r+i) mod len(gws), so with two gateways every
// message crosses from one to the other.
func CreateRooms(ctx context.Context, gws []*Gateway, n, concurrency int) ([]*Room, error) {
	rooms := make([]*Room, n)
	err := parallel(ctx, n, concurrency, func(i int) error {
		r := &Room{Index: i}
		for k := range r.Members {
			gw := gws[(i+k)%len(gws)]
			m := &Member{Room: r, Index: k, gw: gw, local: gw.source()}
			m.http = gw.clientFrom(m.local) // the socket will come from the same address
			r.Members[k] = m
		}
		rooms[i] = r
		id, err := r.Members[0].http.CreateRoom()
		if err != nil {
			return fmt.Errorf("create room: %w", err)
		}
		r.ID = id
		for _, m := range r.Members {
			if m.Cookie, err = m.http.Join(id); err != nil {
				return fmt.Errorf("join room: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		CloseHTTP(rooms)
	}
	return rooms, err
}

// Sockets are the open WebSockets of a set of rooms.
type Sockets struct {
	members []*Member
	readers sync.WaitGroup
	closing atomic.Bool
	closed  atomic.Int64 // sockets that ended before Close

	mu    sync.Mutex
	endBy map[string]int // why they ended: "close 1013", "read: …"
}

// Connect opens both members' sockets in every room and hands every frame
// they receive to h.
func Connect(ctx context.Context, rooms []*Room, concurrency int, h FrameHandler) (*Sockets, error) {
	s := &Sockets{endBy: map[string]int{}}
	var mu sync.Mutex
	err := parallel(ctx, len(rooms)*2, concurrency, func(i int) error {
		m := rooms[i/2].Members[i%2]
		conn, err := m.gw.Dial(ctx, m.Room.ID, m.Cookie, m.local)
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		m.conn = conn
		mu.Lock()
		s.members = append(s.members, m)
		mu.Unlock()
		s.readers.Add(1)
		go s.read(m, h)
		return nil
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Sockets) read(m *Member, h FrameHandler) {
	defer s.readers.Done()
	buf := make([]byte, 0, 512)
	for {
		_, r, err := m.conn.NextReader()
		if err != nil {
			s.ended(err)
			return
		}
		buf = buf[:0]
		for {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			n, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				s.ended(err)
				return
			}
		}
		h(m, buf)
	}
}

// ended counts a socket that ended before Close, by reason.
func (s *Sockets) ended(err error) {
	if s.closing.Load() {
		return
	}
	s.closed.Add(1)
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:] // without the addresses of "read tcp a->b: "
	}
	why := "read: " + msg
	if ce, ok := errors.AsType[*websocket.CloseError](err); ok {
		why = fmt.Sprintf("close %d", ce.Code)
	}
	s.mu.Lock()
	s.endBy[why]++
	s.mu.Unlock()
}

// Ended counts the sockets the server closed (or that failed) so far.
func (s *Sockets) Ended() int64 { return s.closed.Load() }

// EndedBy counts the sockets that ended so far by why: "close <code>" for
// a close frame from the server, "read: <error>" otherwise.
func (s *Sockets) EndedBy() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.endBy))
	for k, v := range s.endBy {
		out[k] = v
	}
	return out
}

// Len is the number of open sockets.
func (s *Sockets) Len() int { return len(s.members) }

// Close closes every socket and waits for the readers to stop.
func (s *Sockets) Close() {
	s.closing.Store(true)
	for _, m := range s.members {
		_ = m.conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		_ = m.conn.Close()
	}
	s.readers.Wait()
}

// parallel runs fn(0..n-1) on at most concurrency goroutines and returns
// the first error.
func parallel(ctx context.Context, n, concurrency int, fn func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(concurrency, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}
