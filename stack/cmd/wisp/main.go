// Command wisp starts the whole wisp system on one machine — Redis, NATS
// and every service — for `make run`, and stops all of it on Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"wisp/stack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "wisp:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("wisp", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "folder with the service binaries (make build)")
	quiet := fs.Bool("quiet", false, "do not show the services' logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts := stack.Options{
		BinDir:   *bin,
		RedisURL: getenv("REDIS_URL"),
		NATSURL:  getenv("NATS_URL"),
		HTTPAddr: getenv("HTTP_ADDR"),
		Env:      map[string]string{},
		Logs:     stdout,
	}
	if opts.HTTPAddr == "" {
		opts.HTTPAddr = ":3000"
	}
	if *quiet {
		opts.Logs = io.Discard
	}
	for _, k := range []string{"ROOM_TTL", "ALLOWED_ORIGINS", "RATE_LIMITS", "LOG_LEVEL"} {
		if v := getenv(k); v != "" {
			opts.Env[k] = v
		}
	}
	s, err := stack.Start(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nwisp is running: open %s  (redis %s, nats %s; Ctrl-C stops everything)\n\n",
		s.Gateways()[0], s.RedisURL, s.NATSURL)
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "stopping wisp…")
	case p := <-s.Watch():
		_ = s.Stop(context.Background())
		return fmt.Errorf("%s-%d exited unexpectedly: %v", p.Service, p.Index, p.Err())
	}
	if err := s.Stop(context.Background()); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "wisp stopped")
	return nil
}
