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
	"wisp/services/gateway/internal/natsapi"
	"wisp/services/gateway/internal/relay"
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
}

func loadConfig(getenv func(string) string) (config, error) {
	env := service.NewEnv(getenv)
	c := config{
		Config:         service.LoadConfig("gateway", env, false),
		HTTPAddr:       env.String("HTTP_ADDR", ":3000"),
		RequestTimeout: env.Duration("REQUEST_TIMEOUT", 5*time.Second),
	}
	origins, err := httpapi.ParseOrigins(env.String("ALLOWED_ORIGINS", ""))
	if err != nil {
		env.Fail(err)
	}
	c.AllowedOrigins = origins
	switch v := env.String("RATE_LIMITS", "on"); v {
	case "on":
		c.RateLimits = true
	case "off":
	default:
		env.Fail(fmt.Errorf("RATE_LIMITS=%q: want on or off", v))
	}
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
			"rate_limits", cfg.RateLimits, "trusted_proxies", cfg.TrustedProxies)
		feeds := natsapi.NewFeeds(d.NATS)
		hub := relay.NewHub(feeds)
		feedCtx, stopFeeds := context.WithCancel(context.Background())
		go feeds.Run(feedCtx, hub.Deliver)

		srv := httpapi.New(httpapi.Config{AllowedOrigins: cfg.AllowedOrigins, RateLimits: cfg.RateLimits, TrustedProxies: cfg.TrustedProxies},
			natsapi.NewBackend(d.NATS, cfg.RequestTimeout), hub, d.Log, httpapi.NewMetrics(d.Metrics, hub))
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			stopFeeds()
			return nil, fmt.Errorf("listen: %w", err)
		}
		listenErr := make(chan error, 1)
		go func() { listenErr <- srv.Serve(ln) }()
		d.Log.Info("http listening", "addr", ln.Addr().String())
		return func(ctx context.Context) error {
			err := srv.Shutdown(ctx)
			d.Log.Info("http and websockets closed")
			stopFeeds()
			return errors.Join(err, <-listenErr)
		}, nil
	})
}
