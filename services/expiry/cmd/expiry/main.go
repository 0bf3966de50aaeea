// Command expiry ends rooms when their time is up: it finds due rooms in
// Redis by reading the shards of the deadline set when the next deadline
// falls, and by Redis's keyspace "expired" events, and publishes each
// room's chat.destroy on NATS once across replicas — and
// again, by another replica, when the one that claimed it died first. It
// also notices a Redis that lost its data and asks the gateways to resync.
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

	"wisp/platform/service"
	"wisp/services/expiry/internal/expiry"
	"wisp/services/expiry/internal/keyspace"
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
	// SweepInterval is how often the whole outbox and the deadline set are
	// read (ends whose claimer died, a Redis that lost its data, rooms
	// created since); between sweeps the replica wakes when the next
	// deadline falls.
	SweepInterval time.Duration
	// EventWindow gathers keyspace events into one claim; EventRefresh is
	// how often the Redis masters are listed again for them.
	EventWindow, EventRefresh time.Duration
	// AnnounceLease is how long the replica that claimed a room's end has to
	// announce it before any replica's sweep takes it over (and how long
	// members of a room whose announcer died wait at most, plus a sweep).
	AnnounceLease time.Duration
}

func loadConfig(getenv func(string) string) (config, error) {
	env := service.NewEnv(getenv)
	c := config{
		Config:        service.LoadConfig("expiry", env, true),
		SweepInterval: env.Duration("SWEEP_INTERVAL", 250*time.Millisecond),
		EventWindow:   env.Duration("EVENT_WINDOW", keyspace.DefaultWindow),
		EventRefresh:  env.Duration("EVENT_REFRESH", keyspace.DefaultRefresh),
		AnnounceLease: env.Duration("ANNOUNCE_LEASE", expiry.DefaultLease),
	}
	return c, env.Err()
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	return service.Run(ctx, cfg.Config, stdout, func(_ context.Context, d service.Deps) (service.Stop, error) {
		d.Log.Info("expiry config", "sweep_interval", cfg.SweepInterval.String(), "announce_lease", cfg.AnnounceLease.String(),
			"event_window", cfg.EventWindow.String(), "event_refresh", cfg.EventRefresh.String())
		metrics, err := expiry.NewMetrics(d.Metrics)
		if err != nil {
			return nil, err
		}
		// A third of the lease for NATS to confirm: a replica that finds NATS
		// slow gives up well before another would take its ends over.
		pub := natsapi.NewPublisher(d.NATS, d.Events, cfg.AnnounceLease/3)
		svc := expiry.NewService(redisstore.NewRooms(d.Redis), pub, metrics, d.Log, cfg.AnnounceLease)

		// The loops get their own context so that Stop, not the signal, ends
		// them, after which the NATS drain flushes their last announcements.
		loops, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { svc.Run(loops, cfg.SweepInterval) })
		events := keyspace.NewListener(d.Redis, metrics, d.Log, cfg.EventWindow, cfg.EventRefresh)
		wg.Go(func() { events.Listen(loops, keyspace.Handlers{Expired: svc.Expired, Subscribed: svc.Kick}) })
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
	})
}
