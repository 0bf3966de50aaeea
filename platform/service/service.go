// Package service runs what every wisp service shares: config from the
// environment, structured logs, NATS and Redis connections, the ops endpoints and
// an ordered, bounded shutdown. Each service supplies only its own parts.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"wisp/platform/ops"
	"wisp/platform/republish"
)

// Deps are the connections and registries a service's parts are built on.
type Deps struct {
	Log  *slog.Logger
	NATS *nats.Conn
	// Redis is a single-node client or, for a REDIS_URL in the cluster form,
	// a Redis Cluster client; nil unless Config.RedisURL is set.
	Redis   redis.UniversalClient
	Metrics *prometheus.Registry
	// Events publishes the service's events on NATS and, after a reconnect,
	// each subject's latest one again: the lost connection may have lost it.
	Events *republish.Publisher
	// Guard pauses what is added to it while Redis fails its probe; with no
	// Redis it never pauses anything.
	Guard *Guard
}

// Stop stops what a service started: it must stop taking new work and
// finish what is in flight before ctx ends.
type Stop func(ctx context.Context) error

// Start builds and starts a service's parts on deps.
type Start func(ctx context.Context, d Deps) (Stop, error)

// Run connects, starts the service (and its Guard), waits for ctx to end,
// then shuts down in order: readiness off, the guard, the service's own
// Stop (stop accepting, finish in flight), NATS drain, Redis close, ops
// listener. The whole shutdown is
// bounded by cfg.ShutdownTimeout.
func Run(ctx context.Context, cfg Config, stdout io.Writer, start Start, checks ...ops.Check) error {
	log := NewLogger(stdout, cfg).With("service", cfg.Name)
	log.Info("config", "nats_url", Redact(cfg.NATSURL), "redis_url", Redact(cfg.RedisURL),
		"ops_addr", cfg.OpsAddr, "shutdown_timeout", cfg.ShutdownTimeout.String(), "log_format", logFormat(stdout, cfg.LogFormat))

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
		checks = append(checks, ops.Check{Name: "redis", Run: func(ctx context.Context) error { return PingRedis(ctx, rdb) }})
	}
	var probe func(context.Context) error
	if d.Redis != nil {
		probe = func(ctx context.Context) error { return PingRedis(ctx, d.Redis) }
	}
	guard, err := NewGuard(probe, cfg.ProbeInterval, cfg.ProbeTimeout, log, d.Metrics)
	if err != nil {
		return err
	}
	d.Guard = guard
	nc, err := ConnectNATS(cfg.NATSURL, cfg.Name, log, errorsTotal.WithLabelValues("nats"))
	if err != nil {
		return err
	}
	defer nc.Close()
	d.NATS = nc
	d.Events = republish.New(nc, republishWindow, republishMaxBytes, d.Metrics)
	checks = append(checks, ops.Check{Name: "nats", Run: func(ctx context.Context) error {
		if !nc.IsConnected() {
			return ops.ErrNotConnected
		}
		// A round trip: a connection that looks up but does not answer
		// (a stalled server, a half-open socket) is not ready either.
		ctx, cancel := context.WithTimeout(ctx, cfg.ProbeTimeout)
		defer cancel()
		return nc.FlushWithContext(ctx)
	}})

	opsSrv := ops.New(cfg.OpsAddr, d.Metrics, cfg.Profiling, checks...)
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
	gctx, stopGuard := context.WithCancel(context.Background())
	guarding := make(chan struct{})
	go func() { defer close(guarding); guard.Run(gctx) }()
	opsSrv.Started()
	log.Info("started")
	<-ctx.Done()

	log.Info("shutting down")
	stopGuard() // it must not resume what stop is about to stop
	<-guarding
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

// NewLogger returns a logger writing to w at cfg.LogLevel in cfg.LogFormat;
// with no format set, text when w is a terminal and JSON otherwise.
func NewLogger(w io.Writer, cfg Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if logFormat(w, cfg.LogFormat) == LogText {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func logFormat(w io.Writer, format string) string {
	if format != "" {
		return format
	}
	if IsTerminal(w) {
		return LogText
	}
	return LogJSON
}

// IsTerminal reports whether w is a character device such as a terminal. A
// pipe, a file or a buffer is not; /dev/null counts, which is harmless since
// nobody reads it.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
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

const (
	natsPingInterval = 5 * time.Second
	natsMaxPingsOut  = 3
	// natsDeadUnnoticed bounds how long a connection to a dead server goes
	// unnoticed after its last answered ping: the pings that go unanswered
	// until nats.go gives it up.
	natsDeadUnnoticed = natsPingInterval * (natsMaxPingsOut + 1)
	// republishWindow is how far back events are published again after a
	// disconnect: natsDeadUnnoticed, and one more interval for what the
	// server took just before its last answer but had not passed on, and
	// for a ping timer or disconnect handler that runs late.
	republishWindow = natsDeadUnnoticed + natsPingInterval
	// republishMaxBytes bounds what is kept for that: the latest events of
	// about 60,000 rooms, of a few hundred bytes each.
	republishMaxBytes = 32 << 20
)

// ConnectNATS connects with reconnects forever: a NATS restart is survived
// and a service may start before NATS does.
func ConnectNATS(url, name string, log *slog.Logger, errs prometheus.Counter) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.PingInterval(natsPingInterval),
		nats.MaxPingsOutstanding(natsMaxPingsOut),
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
// Redis fails requests quickly instead of hanging them. A URL with addr
// parameters is go-redis's cluster form
// (redis://host1:port?addr=host2:port&addr=host3:port, parsed by
// redis.ParseClusterURL): the result is then a Redis Cluster client, which
// follows the cluster's slots, redirections and failovers by itself.
func OpenRedis(url string) (redis.UniversalClient, error) {
	if IsClusterURL(url) {
		opt, err := redis.ParseClusterURL(url)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL (cluster form): %w", err)
		}
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = redisIOTimeout, redisIOTimeout, redisIOTimeout
		opt.PoolTimeout = redisPoolTimeout
		opt.ContextTimeoutEnabled = true
		return redis.NewClusterClient(opt), nil
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = redisIOTimeout, redisIOTimeout, redisIOTimeout
	opt.PoolTimeout = redisPoolTimeout
	// A caller's deadline bounds the network wait too, not only the 2 s
	// above: a probe or a request with less time left gives up in time.
	opt.ContextTimeoutEnabled = true
	return redis.NewClient(opt), nil
}

const (
	redisIOTimeout   = 2 * time.Second
	redisPoolTimeout = 3 * time.Second
)

// IsClusterURL reports whether a REDIS_URL is in the cluster form: it
// names further seed nodes with addr parameters. (A cluster with one seed
// names it twice: redis://host:port?addr=host:port.)
func IsClusterURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Query().Has("addr")
}

// PingRedis is the Redis probe of the guard and of readiness. On a Redis
// Cluster it passes while any master answers: a failing master (until its
// replica takes over) fails only the requests for its slots, and pausing
// every replica of every service for it would fail them all.
func PingRedis(ctx context.Context, rdb redis.UniversalClient) error {
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return rdb.Ping(ctx).Err()
	}
	var alive atomic.Int32
	var last atomic.Pointer[error]
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		if err := c.Ping(ctx).Err(); err != nil {
			last.Store(&err)
			return nil
		}
		alive.Add(1)
		return nil
	})
	switch {
	case alive.Load() > 0:
		return nil
	case err != nil:
		return err
	case last.Load() != nil:
		return *last.Load()
	}
	return errors.New("redis cluster: no master known")
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
