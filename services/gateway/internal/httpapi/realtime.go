package httpapi

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"wisp/services/gateway/internal/relay"
)

// WebSocket limits. Clients send nothing but control frames, so the read
// limit is small; a writer stuck for writeWait (a reader that stopped
// reading) is dropped; pings find dead peers within pongWait.
const (
	readLimit  = 4 << 10
	writeWait  = 5 * time.Second
	pongWait   = 60 * time.Second
	pingPeriod = 25 * time.Second
	queueSize  = 64

	localClient = "wisp.client"
	localRoom   = "wisp.room"
	localSocket = "wisp.socket"
)

// realtimeGate authorizes the upgrade and joins the client to the room's
// feed before the 101 is sent, so the socket receives every event from the
// moment the upgrade completes.
func (s *Server) realtimeGate(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return fiber.NewError(fiber.StatusUpgradeRequired, "expected a WebSocket upgrade")
	}
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" || !s.originAllowed(c, origin) {
		return fiber.NewError(fiber.StatusForbidden, "origin not allowed")
	}
	roomID, token, err := member(c)
	if err != nil {
		return err
	}
	if _, err := s.backend.Authorize(c.UserContext(), roomID, token); err != nil {
		return err
	}
	// Fiber's strings point into the request's buffers, which are reused as
	// soon as the connection is taken over; the hub keeps the room id for as
	// long as the room has sockets.
	roomID = strings.Clone(roomID)
	client := relay.NewClient(queueSize)
	sock := newSocket(s, client, roomID)
	client.OnWake(sock.wake)
	if err := s.hub.Join(roomID, client); err != nil {
		if errors.Is(err, relay.ErrCrowded) {
			return fiber.NewError(fiber.StatusTooManyRequests, err.Error())
		}
		s.log.Warn("room feed", "err", err)
		return fiber.NewError(fiber.StatusServiceUnavailable, "realtime unavailable, try again")
	}
	c.Locals(localClient, client)
	c.Locals(localRoom, roomID)
	c.Locals(localSocket, sock)
	if err := c.Next(); err != nil {
		s.hub.Leave(roomID, client)
		return err
	}
	// A 101 that could not be written never reaches the socket's start:
	// don't keep that client in the room.
	time.AfterFunc(handshakeGrace, func() {
		if !sock.started.Load() {
			s.hub.Leave(roomID, client)
		}
	})
	return nil
}

// handshakeGrace is how long an accepted upgrade may take to become a
// socket before its room membership is dropped.
const handshakeGrace = 15 * time.Second

// realtimeSocket completes the handshake with gofiber/contrib/websocket
// and hands the connection to a socket. The handler returns at once: with
// KeepHijackedConns the server keeps the connection open but releases the
// request context, its header buffers, its 4 KB read buffer and the
// add-on's per-connection maps, so an idle socket costs its file
// descriptor, one goroutine blocked in read and a few hundred bytes.
func (s *Server) realtimeSocket() fiber.Handler {
	return websocket.New(func(conn *websocket.Conn) {
		sock, _ := conn.Locals(localSocket).(*socket)
		nc := conn.NetConn()
		// Read and write the TCP connection itself: fasthttp's wrapper reads
		// through a pooled buffer that it takes back when this returns. A
		// client that sent frames before the 101 (RFC 6455 forbids it) loses
		// them and fails framing; nobody else is affected.
		if u, ok := nc.(interface{ UnsafeConn() net.Conn }); ok {
			nc = u.UnsafeConn()
		}
		s.sockets.add(sock)
		sock.start(nc)
		go sock.serve()
	}, websocket.Config{
		HandshakeTimeout: 5 * time.Second,
		// The add-on's own reader and writer are never used.
		ReadBufferSize:  64,
		WriteBufferSize: 64,
	})
}

// sockets tracks the live WebSockets: shutdown waits for them and one
// pinger keeps them all alive.
type sockets struct {
	mu   sync.Mutex
	all  map[*socket]struct{}
	zero chan struct{}
}

func newSockets() *sockets { return &sockets{all: map[*socket]struct{}{}} }

func (s *sockets) add(k *socket) {
	s.mu.Lock()
	s.all[k] = struct{}{}
	s.mu.Unlock()
}

func (s *sockets) done(k *socket) {
	s.mu.Lock()
	delete(s.all, k)
	if len(s.all) == 0 && s.zero != nil {
		close(s.zero)
		s.zero = nil
	}
	s.mu.Unlock()
}

func (s *sockets) wait(ctx context.Context) error {
	s.mu.Lock()
	if len(s.all) == 0 {
		s.mu.Unlock()
		return nil
	}
	if s.zero == nil {
		s.zero = make(chan struct{})
	}
	zero := s.zero
	s.mu.Unlock()
	select {
	case <-zero:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pingTick is how often the pinger looks for sockets due a ping; each
// socket is pinged every pingPeriod from its own start, so pings are spread
// over time rather than sent to every socket at once.
const pingTick = time.Second

// pinger asks each socket's writer for a ping when one is due, until stop
// is closed. One goroutine and no timer per socket.
func (s *sockets) pinger(stop <-chan struct{}) {
	t := time.NewTicker(pingTick)
	defer t.Stop()
	var due []*socket
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			due = due[:0]
			s.mu.Lock()
			for k := range s.all {
				if k.pingDue(now) {
					due = append(due, k)
				}
			}
			s.mu.Unlock()
			for _, k := range due {
				k.wake()
			}
		}
	}
}
