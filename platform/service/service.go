// Package service runs what every wisp service shares: config from the
// environment, JSON logs, NATS and Redis connections, the ops endpoints and
// an ordered, bounded shutdown. Each service supplies only its own parts.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"wisp/platform/ops"
)

// Deps are the connections and registries a service's parts are built on.
type Deps struct {
	Log     *slog.Logger
	NATS    *nats.Conn
	Redis   *redis.Client // nil unless Config.RedisURL is set
	Metrics *prometheus.Registry
}

// Stop stops what a service started: it must stop taking new work and
// finish what is in flight before ctx ends.
type Stop func(ctx context.Context) error

// Start builds and starts a service's parts on deps.
type Start func(ctx context.Context, d Deps) (Stop, error)

// Run connects, starts the service, waits for ctx to end, then shuts down
// in order: readiness off, the service's own Stop (stop accepting, finish
// in flight), NATS drain, Redis close, ops listener. The whole shutdown is
// bounded by cfg.ShutdownTimeout.
func Run(ctx context.Context, cfg Config, stdout io.Writer, start Start, checks ...ops.Check) error {
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel})).With("service", cfg.Name)
	log.Info("config", "nats_url", Redact(cfg.NATSURL), "redis_url", Redact(cfg.RedisURL),
		"ops_addr", cfg.OpsAddr, "shutdown_timeout", cfg.ShutdownTimeout.String())

	d := Deps{Log: log, Metrics: ops.NewRegistry()}
	errorsTotal := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wisp_dependency_errors_total", Help: "Errors and disconnects seen on Redis and NATS connections.",
	}, []string{"dependency"})
	d.Metrics.MustRegister(errorsTotal)

	if cfg.RedisURL != "" {
		rdb, err := OpenRedis(cfg.RedisURL)
		if err != nil {
			return err
		}
		defer rdb.Close()
		rdb.AddHook(errorHook{errorsTotal.WithLabelValues("redis")})
		d.Redis = rdb
		checks = append(checks, ops.Check{Name: "redis", Run: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }})
	}
	nc, err := ConnectNATS(cfg.NATSURL, cfg.Name, log, errorsTotal.WithLabelValues("nats"))
	if err != nil {
		return err
	}
	defer nc.Close()
	d.NATS = nc
	checks = append(checks, ops.Check{Name: "nats", Run: func(context.Context) error {
		if !nc.IsConnected() {
			return ops.ErrNotConnected
		}
		return nil
	}})

	opsSrv := ops.New(cfg.OpsAddr, d.Metrics, checks...)
	addr, err := opsSrv.Start()
	if err != nil {
		return fmt.Errorf("ops listener: %w", err)
	}
	log.Info("ops listening", "addr", addr.String())

	stop, err := start(ctx, d)
	if err != nil {
		_ = opsSrv.Shutdown(context.Background())
		return err
	}
	opsSrv.Started()
	log.Info("started")
	<-ctx.Done()

	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	opsSrv.Drain()
	var errs []error
	if err := stop(sctx); err != nil {
		errs = append(errs, fmt.Errorf("stop: %w", err))
	}
	if err := drainNATS(sctx, nc); err != nil {
		errs = append(errs, err)
	}
	log.Info("nats drained")
	if d.Redis != nil {
		_ = d.Redis.Close()
		log.Info("redis closed")
	}
	_ = opsSrv.Shutdown(sctx)
	if err := errors.Join(errs...); err != nil {
		log.Error("shutdown", "err", err)
		return err
	}
	log.Info("stopped")
	return nil
}

// drainNATS lets in-flight handlers and published messages finish, then
// closes the connection, giving up when ctx ends.
func drainNATS(ctx context.Context, nc *nats.Conn) error {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) {
			return nil
		}
		if errors.Is(err, nats.ErrConnectionReconnecting) {
			// NATS is away: nothing can be flushed to it, so there is
			// nothing to wait for. Not a failed shutdown.
			nc.Close()
			return nil
		}
		return fmt.Errorf("nats drain: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		nc.Close()
		return fmt.Errorf("nats drain: %w", ctx.Err())
	}
}

// ConnectNATS connects with reconnects forever: a NATS restart is survived
// and a service may start before NATS does.
func ConnectNATS(url, name string, log *slog.Logger, errs prometheus.Counter) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.PingInterval(5*time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			errs.Inc()
			log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			errs.Inc()
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			log.Warn("nats error", "subject", subj, "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("nats connect: %w", err)
	}
	return nc, nil
}

// OpenRedis returns a client for url with timeouts short enough that a dead
// Redis fails requests quickly instead of hanging them.
func OpenRedis(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 2 * time.Second
	opt.WriteTimeout = 2 * time.Second
	opt.PoolTimeout = 3 * time.Second
	return redis.NewClient(opt), nil
}

// errorHook counts failed Redis commands; redis.Nil (no such key) and
// script error replies the stores classify are answers, not failures.
type errorHook struct{ errs prometheus.Counter }

func (h errorHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			h.errs.Inc()
		}
		return c, err
	}
}

func (h errorHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.count(err)
		return err
	}
}

func (h errorHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.count(err)
		return err
	}
}

func (h errorHook) count(err error) {
	var reply redis.Error
	if err != nil && !errors.Is(err, redis.Nil) && !errors.As(err, &reply) {
		h.errs.Inc()
	}
}
