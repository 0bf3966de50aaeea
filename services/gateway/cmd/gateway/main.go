// Command gateway serves wisp's web UI, HTTP API and WebSocket relay,
// authenticating room cookies and talking to the other services over NATS.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"wisp/platform/service"
	"wisp/services/gateway/internal/httpapi"
	"wisp/services/gateway/internal/live"
	"wisp/services/gateway/internal/natsclient"
	"wisp/services/gateway/internal/ratelimit"
	"wisp/services/gateway/internal/relay"
	"wisp/services/gateway/internal/ws"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

type config struct {
	service.Config
	HTTPAddr       string
	AllowedOrigins []string
	RateLimits     bool
	TrustedProxies []string
	RequestTimeout time.Duration
	Socket         ws.Settings
	// PresenceInterval is how often presence is refreshed between gateways.
	PresenceInterval time.Duration
	// GapWait is how long a gap in a room's messages stays open before the
	// missing ones are read back from the room's history.
	GapWait time.Duration
	// LimitsRedisURL, when set, is where every replica shares its rate limits.
	LimitsRedisURL string
}

func loadConfig(getenv func(string) string) (config, error) {
	env := service.NewEnv(getenv)
	c := config{
		Config:         service.LoadConfig("gateway", env, false),
		HTTPAddr:       env.String("HTTP_ADDR", ":3000"),
		RequestTimeout: env.Duration("REQUEST_TIMEOUT", 5*time.Second),
		Socket: ws.Settings{
			PingInterval: env.Duration("WS_PING_INTERVAL", ws.DefaultSettings.PingInterval),
			PongWait:     env.Duration("WS_PONG_WAIT", ws.DefaultSettings.PongWait),
			WriteWait:    env.Duration("WS_WRITE_WAIT", ws.DefaultSettings.WriteWait),
			ReadLimit:    ws.DefaultSettings.ReadLimit,
		},
		PresenceInterval: env.Duration("PRESENCE_INTERVAL", 20*time.Second),
		GapWait:          env.Duration("GAP_WAIT", relay.DefaultGapWait),
	}
	if env.String("REDIS_URL", "") != "" {
		c.LimitsRedisURL = env.RedisURL("REDIS_URL", "")
	}
	if c.PresenceInterval <= 0 {
		env.Fail(fmt.Errorf("PRESENCE_INTERVAL must be positive"))
	}
	if c.GapWait <= 0 {
		env.Fail(fmt.Errorf("GAP_WAIT must be positive"))
	}
	if err := c.Socket.Validate(); err != nil {
		env.Fail(err)
	}
	origins, err := httpapi.ParseOrigins(env.String("ALLOWED_ORIGINS", ""))
	if err != nil {
		env.Fail(err)
	}
	c.AllowedOrigins = origins
	c.RateLimits = env.OnOff("RATE_LIMITS", true)
	for _, p := range strings.Split(env.String("TRUSTED_PROXIES", ""), ",") {
		if p = strings.TrimSpace(p); p != "" {
			if _, err := httpapi.ParseProxy(p); err != nil {
				env.Fail(fmt.Errorf("TRUSTED_PROXIES: %q is not an IP or CIDR", p))
			}
			c.TrustedProxies = append(c.TrustedProxies, p)
		}
	}
	return c, env.Err()
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	return service.Run(ctx, cfg.Config, stdout, func(ctx context.Context, d service.Deps) (service.Stop, error) {
		d.Log.Info("gateway config", "http_addr", cfg.HTTPAddr, "allowed_origins", cfg.AllowedOrigins,
			"rate_limits", cfg.RateLimits, "trusted_proxies", cfg.TrustedProxies,
			"ws_ping_interval", cfg.Socket.PingInterval, "ws_pong_wait", cfg.Socket.PongWait,
			"ws_write_wait", cfg.Socket.WriteWait, "presence_interval", cfg.PresenceInterval, "gap_wait", cfg.GapWait,
			"shared_rate_limits", cfg.LimitsRedisURL != "" && cfg.RateLimits)
		backend := natsclient.NewBackend(d.NATS, cfg.RequestTimeout)
		rt, err := live.Start(d.NATS, backend, live.Options{Socket: cfg.Socket, PresenceInterval: cfg.PresenceInterval, GapWait: cfg.GapWait}, d.Log)
		if err != nil {
			return nil, err
		}

		hcfg := httpapi.Config{AllowedOrigins: cfg.AllowedOrigins, RateLimits: cfg.RateLimits,
			TrustedProxies: cfg.TrustedProxies, RequestTimeout: cfg.RequestTimeout}
		closeLimits := func() {}
		if cfg.LimitsRedisURL != "" && cfg.RateLimits {
			rdb, err := service.OpenRedis(cfg.LimitsRedisURL)
			if err != nil {
				rt.Stop()
				return nil, fmt.Errorf("rate limits: %w", err)
			}
			hcfg.Limiter, closeLimits = ratelimit.NewRedis(rdb), func() { _ = rdb.Close() }
		}
		srv := httpapi.New(hcfg, backend, rt.Realtime, d.Log, httpapi.NewMetrics(d.Metrics, rt.Hub))
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			rt.Stop()
			closeLimits()
			return nil, fmt.Errorf("listen: %w", err)
		}
		listenErr := make(chan error, 1)
		go func() { listenErr <- srv.Serve(ln) }()
		d.Log.Info("http listening", "addr", ln.Addr().String())
		return func(ctx context.Context) error {
			err := srv.Shutdown(ctx)
			d.Log.Info("http and websockets closed")
			rt.Stop()
			closeLimits()
			return errors.Join(err, <-listenErr)
		}, nil
	})
}
