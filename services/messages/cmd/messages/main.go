// Command messages stores and lists chat messages on NATS request/reply,
// keeping them in Redis and announcing each on the room's subject.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"wisp/platform/service"
	"wisp/services/messages/internal/message"
	"wisp/services/messages/internal/natsapi"
	"wisp/services/messages/internal/redisstore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "messages:", err)
		os.Exit(1)
	}
}

type config struct {
	service.Config
	MaxRoomMessages int
}

func loadConfig(getenv func(string) string) (config, error) {
	env := service.NewEnv(getenv)
	c := config{
		Config:          service.LoadConfig("messages", env, true),
		MaxRoomMessages: env.Int("MAX_ROOM_MESSAGES", 1000),
	}
	return c, env.Err()
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	return service.Run(ctx, cfg.Config, stdout, func(_ context.Context, d service.Deps) (service.Stop, error) {
		d.Log.Info("messages config", "max_room_messages", cfg.MaxRoomMessages)
		svc := message.NewService(redisstore.NewMessages(d.Redis), natsapi.NewPublisher(d.Events), cfg.MaxRoomMessages)
		srv, err := natsapi.Serve(d.NATS, svc, d.Log, d.Metrics)
		if err != nil {
			return nil, err
		}
		d.Guard.Add(srv) // out of the queue group while Redis is away
		return srv.Stop, nil
	})
}
