// Command rooms serves room creation, joining, authorization and destroy on
// NATS, keeping rooms in Redis.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"wisp/platform/service"
	"wisp/services/rooms/internal/natsapi"
	"wisp/services/rooms/internal/redisstore"
	"wisp/services/rooms/internal/room"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "rooms:", err)
		os.Exit(1)
	}
}

type config struct {
	service.Config
	RoomTTL time.Duration
	// AnnounceLease is how long a destroy has to announce the end it
	// claimed before the expiry service does.
	AnnounceLease time.Duration
}

func loadConfig(getenv func(string) string) (config, error) {
	env := service.NewEnv(getenv)
	c := config{
		Config:        service.LoadConfig("rooms", env, true),
		RoomTTL:       env.Duration("ROOM_TTL", 10*time.Minute),
		AnnounceLease: env.Duration("ANNOUNCE_LEASE", room.DefaultLease),
	}
	return c, env.Err()
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	return service.Run(ctx, cfg.Config, stdout, func(_ context.Context, d service.Deps) (service.Stop, error) {
		d.Log.Info("rooms config", "room_ttl", cfg.RoomTTL.String(), "announce_lease", cfg.AnnounceLease.String())
		// A third of the lease for NATS to confirm, as the expiry service does.
		pub := natsapi.NewPublisher(d.NATS, d.Events, cfg.AnnounceLease/3)
		svc := room.NewService(redisstore.NewRooms(d.Redis), pub, cfg.RoomTTL, cfg.AnnounceLease)
		srv, err := natsapi.Serve(d.NATS, svc, d.Log, d.Metrics)
		if err != nil {
			return nil, err
		}
		d.Guard.Add(srv) // out of the queue group while Redis is away
		return srv.Stop, nil
	})
}
