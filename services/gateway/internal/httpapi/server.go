// Package httpapi is the gateway's HTTP face: the pages, the JSON API of
// the public contract, cookie auth and the WebSocket relay, on Fiber.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/gofiber/fiber/v2"

	"wisp/contract"
	"wisp/services/gateway/internal/ratelimit"
	"wisp/services/gateway/internal/realtime"
	"wisp/services/gateway/internal/relay"
	"wisp/services/gateway/internal/web"
	"wisp/services/gateway/internal/ws"
)

// Backend is what the gateway asks of the rooms and messages services.
type Backend interface {
	CreateRoom(ctx context.Context, req contract.CreateRoomRequest) (contract.CreateRoomReply, error)
	Join(ctx context.Context, roomID, token string) (contract.JoinReply, error)
	Authorize(ctx context.Context, roomID, token string) (contract.AuthorizeReply, error)
	TTL(ctx context.Context, roomID, token string) ([]byte, error)
	Destroy(ctx context.Context, roomID, token string) error
	Send(ctx context.Context, req contract.SendRequest) ([]byte, error)
	List(ctx context.Context, roomID, token string, after int64) (contract.ListReply, error)
}

// Config is the gateway's HTTP behaviour.
type Config struct {
	// AllowedOrigins are origins allowed besides the site's own.
	AllowedOrigins []string
	// RateLimits turns the per-client request limits on.
	RateLimits bool
	// TrustedProxies may set X-Forwarded-For/-Proto (IPs or CIDRs).
	TrustedProxies []string
	// RequestTimeout bounds a socket's call to the services.
	RequestTimeout time.Duration
	// Limiter counts requests for the rate limits; nil counts in memory.
	Limiter ratelimit.Limiter
}

// Limits of the HTTP layer.
const (
	bodyLimit   = 16 << 10
	readTimeout = 10 * time.Second
	idleTimeout = 30 * time.Second
)

// Server is the gateway's Fiber app and its WebSocket clients.
type Server struct {
	app     *fiber.App
	backend Backend
	rt      Realtime
	session realtime.Config
	log     *slog.Logger
	cfg     Config
	proxies []netip.Prefix
	metrics *Metrics
	sockets *ws.Registry
	limiter ratelimit.Limiter
	lists   *inflight

	stopPing context.CancelFunc
	pingCtx  context.Context
}

// New builds the app.
func New(cfg Config, backend Backend, rt Realtime, log *slog.Logger, metrics *Metrics) *Server {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	s := &Server{backend: backend, rt: rt, log: log, cfg: cfg, metrics: metrics, sockets: ws.NewRegistry(rt.Socket),
		proxies: parseProxies(cfg.TrustedProxies)}
	s.pingCtx, s.stopPing = context.WithCancel(context.Background())
	s.lists = newInflight(listsPerClient, listsInFlight)
	if s.limiter = cfg.Limiter; s.limiter == nil {
		s.limiter = ratelimit.NewMemory()
	}
	s.session = realtime.Config{Backend: backend, Signals: rt.Signals, Status: statusOf,
		RateLimits: cfg.RateLimits, Timeout: cfg.RequestTimeout, Sends: realtime.NewSends()}
	fc := fiber.Config{
		AppName:                 "wisp",
		DisableStartupMessage:   true,
		BodyLimit:               bodyLimit,
		ReadTimeout:             readTimeout,
		WriteTimeout:            readTimeout,
		IdleTimeout:             idleTimeout,
		ErrorHandler:            s.errorHandler,
		EnableTrustedProxyCheck: true,
		TrustedProxies:          cfg.TrustedProxies,
	}
	s.app = fiber.New(fc)
	// WebSockets take over their TCP connection and close it themselves, so
	// the request context (and its buffers) goes back to the pool at once
	// instead of living as long as the socket.
	s.app.Server().KeepHijackedConns = true
	s.routes()
	return s
}

// App exposes the Fiber app (tests use app.Test).
func (s *Server) App() *fiber.App { return s.app }

func (s *Server) routes() {
	app := s.app
	app.Use(s.metrics.middleware, securityHeaders)

	app.Get("/", s.homePage)
	app.Head("/room/:roomId", s.roomHead)
	app.Get("/room/:roomId", s.limit("join", 60, time.Minute), s.joinRoom)
	app.Get("/room", redirectHome)
	app.Get("/room/*", redirectHome)
	app.Get(web.AssetPrefix+"*", asset)

	api := app.Group("/api", apiHeaders, s.sameOrigin, jsonBodies)
	api.Post("/room/create", s.limit("create", 20, time.Minute), s.createRoom)
	api.Get("/room/ttl", s.limit("api", 600, time.Minute), s.roomTTL)
	api.Delete("/room", s.limit("api", 600, time.Minute), s.destroyRoom)
	api.Post("/room/leave", s.limit("api", 600, time.Minute), s.leaveRoom)
	api.Post("/messages", s.limit("send", 600, time.Minute), s.sendMessage)
	api.Get("/messages", s.limit("api", 600, time.Minute), s.lists.bound(s.clientIP), s.listMessages)
	api.Get("/realtime", s.limit("realtime", 120, time.Minute), s.realtimeGate, s.realtimeSocket())

	app.Use(func(c *fiber.Ctx) error { return fiber.NewError(fiber.StatusNotFound, "not found") })
}

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.RateLimits {
		ln = newConnLimit(ln, MaxConnsPerIP, s.trusted)
	}
	go s.sockets.Ping(s.pingCtx)
	return s.app.Listener(ln)
}

// Shutdown stops accepting, sends every WebSocket a going-away close frame,
// and waits for in-flight requests, all within ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	httpDone := make(chan error, 1)
	go func() { httpDone <- s.app.ShutdownWithContext(ctx) }()
	s.rt.Hub.KickAll(relay.ReasonGoingAway)
	wsErr := s.sockets.Wait(ctx)
	s.stopPing()
	return errors.Join(<-httpDone, wsErr)
}

// errorHandler is the one place errors become HTTP responses: JSON
// {"error": …} with the contract's status; only unknown errors are logged.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	status, msg := statusOf(err)
	if status >= 500 && status != fiber.StatusServiceUnavailable {
		s.log.Error("request failed", "method", c.Method(), "route", c.Route().Path, "err", err)
	}
	if (status == fiber.StatusServiceUnavailable || status == fiber.StatusTooManyRequests) && len(c.Response().Header.Peek(fiber.HeaderRetryAfter)) == 0 {
		c.Set(fiber.HeaderRetryAfter, "1")
	}
	return c.Status(status).JSON(fiber.Map{"error": msg})
}

func statusOf(err error) (int, string) {
	var fe *fiber.Error
	if errors.As(err, &fe) {
		return fe.Code, fe.Message
	}
	var ce *contract.Error
	if errors.As(err, &ce) {
		switch ce.Code {
		case contract.CodeUnauthorized, contract.CodeNotFound:
			// An unknown token and a room that is gone look alike on purpose.
			return fiber.StatusUnauthorized, "Unauthorized"
		case contract.CodeBadRequest:
			return fiber.StatusBadRequest, ce.Description
		case contract.CodeConflict:
			return fiber.StatusConflict, ce.Description
		case contract.CodeTooMany:
			return fiber.StatusTooManyRequests, ce.Description
		case contract.CodeUnavailable:
			return fiber.StatusServiceUnavailable, "service unavailable, try again"
		}
	}
	return fiber.StatusInternalServerError, "internal error"
}

var errUnauthorized = fiber.NewError(fiber.StatusUnauthorized, "Unauthorized")
