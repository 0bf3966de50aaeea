package httpapi

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	fastws "github.com/fasthttp/websocket"
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
	client := relay.NewClient(queueSize)
	if err := s.hub.Join(roomID, client); err != nil {
		if errors.Is(err, relay.ErrCrowded) {
			return fiber.NewError(fiber.StatusTooManyRequests, err.Error())
		}
		s.log.Warn("room feed", "err", err)
		return fiber.NewError(fiber.StatusServiceUnavailable, "realtime unavailable, try again")
	}
	c.Locals(localClient, client)
	c.Locals(localRoom, roomID)
	if err := c.Next(); err != nil {
		s.hub.Leave(roomID, client)
		return err
	}
	return nil
}

var writeBufferPool = &sync.Pool{}

func (s *Server) realtimeSocket() fiber.Handler {
	return websocket.New(func(conn *websocket.Conn) {
		client, _ := conn.Locals(localClient).(*relay.Client)
		roomID, _ := conn.Locals(localRoom).(string)
		s.sockets.add()
		defer s.sockets.done()
		defer s.hub.Leave(roomID, client)
		serveSocket(conn.Conn, client)
	}, websocket.Config{
		HandshakeTimeout: 5 * time.Second,
		ReadBufferSize:   256,
		WriteBufferSize:  1024,
		// Idle sockets hold no write buffer; one is taken from the pool per write.
		WriteBufferPool: writeBufferPool,
	})
}

// serveSocket reads (and discards) until the peer goes, while a writer
// goroutine drains the client's queue and keeps the peer alive with pings.
func serveSocket(conn *fastws.Conn, c *relay.Client) {
	conn.SetReadLimit(readLimit)
	_ = conn.SetReadDeadline(time.Now().Add(pongWait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(pongWait)) })

	written := make(chan struct{})
	go func() {
		defer close(written)
		writeLoop(conn, c)
	}()
	for {
		_, r, err := conn.NextReader()
		if err != nil {
			break
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			break
		}
	}
	c.Kick("peer closed")
	<-written
}

func writeLoop(conn *fastws.Conn, c *relay.Client) {
	ping := time.NewTicker(pingPeriod)
	defer ping.Stop()
	for {
		select {
		case f := <-c.Frames():
			_ = conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := conn.WriteMessage(fastws.TextMessage, f.Data); err != nil {
				_ = conn.Close()
				return
			}
			if f.Last {
				closeSocket(conn, fastws.CloseNormalClosure, "room ended")
				return
			}
		case <-ping.C:
			if err := conn.WriteControl(fastws.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				_ = conn.Close()
				return
			}
		case <-c.Done():
			code := fastws.CloseGoingAway
			if c.Reason() == relay.ReasonSlow {
				code = fastws.CloseTryAgainLater
			}
			closeSocket(conn, code, c.Reason())
			return
		}
	}
}

// closeSocket sends a close frame and gives the peer a moment to answer
// before the reader gives up.
func closeSocket(conn *fastws.Conn, code int, reason string) {
	_ = conn.WriteControl(fastws.CloseMessage, fastws.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
}

// sockets counts live WebSocket handlers so shutdown can wait for them.
type sockets struct {
	mu   sync.Mutex
	n    int
	zero chan struct{}
}

func newSockets() *sockets { return &sockets{} }

func (s *sockets) add() {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
}

func (s *sockets) done() {
	s.mu.Lock()
	s.n--
	if s.n == 0 && s.zero != nil {
		close(s.zero)
		s.zero = nil
	}
	s.mu.Unlock()
}

func (s *sockets) wait(ctx context.Context) error {
	s.mu.Lock()
	if s.n == 0 {
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
