package httpapi

import (
	"errors"
	"net"
	"strings"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"wisp/services/gateway/internal/realtime"
	"wisp/services/gateway/internal/relay"
	"wisp/services/gateway/internal/ws"
)

const (
	// queueSize frames may wait for a socket; a client that falls further
	// behind is closed (1013) and catches up from the API.
	queueSize = 64
	// handshakeTimeout bounds the upgrade; an upgrade that has not become a
	// socket by then gives its place in the room back.
	handshakeTimeout = 5 * time.Second

	localSocket = "wisp.socket"
)

// Realtime is what the WebSocket side of the gateway is built from.
type Realtime struct {
	Hub      *relay.Hub
	Presence Presence
	Signals  realtime.Signals
	// Socket holds the sockets' timers and limits.
	Socket ws.Settings
}

// Presence tracks which members of a room hold sockets (package presence).
type Presence interface {
	Opened(roomID, member string, first func(frame []byte))
	Closed(roomID, member string)
}

// pendingSocket is an authorized upgrade on its way to becoming a socket.
type pendingSocket struct {
	sock   *ws.Socket
	client *relay.Client
	roomID string
}

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
	auth, err := s.backend.Authorize(c.UserContext(), roomID, token)
	if err != nil {
		return err
	}
	// Fiber's strings point into the request's buffers, which are reused as
	// soon as the connection is taken over.
	roomID, token = strings.Clone(roomID), strings.Clone(token)
	client := relay.NewClient(auth.Member, token, queueSize)
	session := realtime.NewSession(&s.session, client, roomID, token, auth.Member)
	p := &pendingSocket{client: client, roomID: roomID}
	p.sock = ws.NewSocket(client, ws.Handler{
		OnText: session.OnText,
		OnClose: func() {
			s.rt.Hub.Leave(roomID, client)
			s.rt.Presence.Closed(roomID, auth.Member)
		},
	})
	client.OnWake(p.sock.Wake)
	st := relay.State{LastSeq: auth.LastSeq}
	if auth.ExpiresAt > 0 {
		st.Deadline = time.UnixMilli(auth.ExpiresAt)
	}
	if err := s.rt.Hub.Join(roomID, client, st); err != nil {
		if errors.Is(err, relay.ErrCrowded) {
			return fiber.NewError(fiber.StatusTooManyRequests, err.Error())
		}
		s.log.Warn("room feed", "err", err)
		return fiber.NewError(fiber.StatusServiceUnavailable, "realtime unavailable, try again")
	}
	c.Locals(localSocket, p)
	if err := c.Next(); err != nil {
		s.rt.Hub.Leave(roomID, client)
		return err
	}
	// A 101 that could not be written never reaches the socket's start:
	// don't keep that client in the room.
	time.AfterFunc(handshakeTimeout, func() {
		if !p.sock.Started() {
			s.rt.Hub.Leave(roomID, client)
		}
	})
	return nil
}

// realtimeSocket completes the handshake with gofiber/contrib/websocket
// and hands the TCP connection to a ws.Socket. The handler returns at
// once: with KeepHijackedConns the server keeps the connection open but
// releases the request context, its header buffers, its 4 KB read buffer
// and the add-on's per-connection maps, so an idle socket costs its file
// descriptor, one goroutine blocked in read and a few hundred bytes.
func (s *Server) realtimeSocket() fiber.Handler {
	return websocket.New(func(conn *websocket.Conn) {
		p, _ := conn.Locals(localSocket).(*pendingSocket)
		// Presence first: its frame is the socket's first, and the socket's
		// end (which can come at once) must find it counted.
		s.rt.Presence.Opened(p.roomID, p.client.Member(), func(frame []byte) { p.client.Send(frame) })
		nc, err := rawConn(conn.NetConn())
		if err == nil {
			err = s.sockets.Start(p.sock, nc)
		}
		if err != nil {
			// Never fall back to fasthttp's buffered wrapper: it takes its
			// buffer back when this handler returns.
			s.log.Error("websocket: no raw TCP connection to take over", "err", err)
			_ = conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseInternalServerErr, "internal error"), time.Now().Add(time.Second))
			_ = conn.NetConn().Close()
			s.rt.Hub.Leave(p.roomID, p.client)
			s.rt.Presence.Closed(p.roomID, p.client.Member())
		}
	}, websocket.Config{
		HandshakeTimeout: handshakeTimeout,
		// The add-on's own reader and writer are never used.
		ReadBufferSize:  64,
		WriteBufferSize: 64,
	})
}

// errNoUnsafeConn: fasthttp no longer exposes the TCP connection under its
// hijacked wrapper (a dependency upgrade changed it).
var errNoUnsafeConn = errors.New("hijacked connection has no UnsafeConn")

// rawConn is the TCP connection under fasthttp's hijacked wrapper, which
// reads through a pooled buffer it takes back when the handler returns. A
// client that sent frames before the 101 (RFC 6455 forbids it) loses them
// and fails framing; nobody else is affected.
func rawConn(nc net.Conn) (net.Conn, error) {
	u, ok := nc.(interface{ UnsafeConn() net.Conn })
	if !ok {
		return nil, errNoUnsafeConn
	}
	return u.UnsafeConn(), nil
}
