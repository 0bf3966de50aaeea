// Command expiry ends rooms when their time is up: it finds due rooms in
// Redis, by sweeping the deadline set and by keyspace "expired" events, and
// publishes each room's chat.destroy on NATS exactly once across replicas.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"wisp/platform/ops"
	"wisp/platform/service"
	"wisp/services/expiry/internal/expiry"
	"wisp/services/expiry/internal/natsapi"
	"wisp/services/expiry/internal/redisstore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "expiry:", err)
		os.Exit(1)
	}
}

type config struct {
	service.Config
	// SweepInterval bounds how late a room is announced when Redis has not
	// yet expired its key: the target is 1 s at p99.
	SweepInterval time.Duration
}

func loadConfig(getenv func(string) string) (config, error) {
	env := service.NewEnv(getenv)
	c := config{
		Config:        service.LoadConfig("expiry", env, true),
		SweepInterval: env.Duration("SWEEP_INTERVAL", 250*time.Millisecond),
	}
	return c, env.Err()
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	// Created before the service starts: readiness checks are fixed then.
	var notify redisstore.NotifyStatus
	return service.Run(ctx, cfg.Config, stdout, func(_ context.Context, d service.Deps) (service.Stop, error) {
		d.Log.Info("expiry config", "sweep_interval", cfg.SweepInterval.String())
		metrics, err := expiry.NewMetrics(d.Metrics)
		if err != nil {
			return nil, err
		}
		svc := expiry.NewService(redisstore.NewRooms(d.Redis), natsapi.NewPublisher(d.NATS), metrics, d.Log)
		keyspace := redisstore.NewKeyspace(d.Redis, &notify, metrics, d.Log)

		// The loops get their own context so that Stop, not the signal, ends
		// them, after which the NATS drain flushes their last announcements.
		loops, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { svc.Run(loops, cfg.SweepInterval) })
		wg.Go(func() {
			if err := keyspace.Listen(loops, redisstore.Handlers{Expired: svc.Expired, Subscribed: svc.Kick}); err != nil {
				d.Log.Error("keyspace listener stopped; rooms end through the sweep only", "err", err)
			}
		})
		return func(ctx context.Context) error {
			cancel()
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return fmt.Errorf("expiry loops: %w", ctx.Err())
			}
		}, nil
	}, ops.Check{Name: "keyspace_events", Run: notify.Check})
}
