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
	"runtime"
	"strings"
	"syscall"
	"time"

	"wisp/platform/service"
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

// signalGrace is how long after a service ends by itself the launcher
// waits for the signal that may have ended it.
const signalGrace = time.Second

// passed are the settings of `make run` that go to the services as they are.
var passed = []string{"ROOM_TTL", "ALLOWED_ORIGINS", "RATE_LIMITS", "LOG_LEVEL"}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("wisp", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "folder with the service binaries (make build)")
	quiet := fs.Bool("quiet", false, "do not show the services' logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts := stack.Options{
		BinDir:    *bin,
		RedisURL:  getenv("REDIS_URL"),
		NATSURL:   getenv("NATS_URL"),
		HTTPAddr:  getenv("HTTP_ADDR"),
		LogFormat: logFormat(getenv("LOG_FORMAT"), stdout),
		Env:       map[string]string{},
		Logs:      stdout,
	}
	if opts.HTTPAddr == "" {
		opts.HTTPAddr = ":3000"
	}
	if *quiet {
		opts.Logs = io.Discard
	}
	for _, k := range passed {
		if v := getenv(k); v != "" {
			opts.Env[k] = v
		}
	}
	if opts.NATSURL == "" && getenv("GOMAXPROCS") == "" {
		// NATS runs in this process, which does little else: one P, as a
		// child nats-server gets (stack.OneProc).
		runtime.GOMAXPROCS(1)
	}
	s, err := stack.Start(ctx, opts)
	if err != nil {
		return err
	}
	if err := banner(stdout, s, opts.LogFormat); err != nil {
		_ = s.Stop(context.Background())
		return err
	}
	select {
	case <-ctx.Done():
	case p := <-s.Watch():
		// A Ctrl-C at a terminal reaches every service too, and one may
		// end before this process has seen its own.
		select {
		case <-ctx.Done():
		case <-time.After(signalGrace):
			_ = s.Stop(context.Background())
			return fmt.Errorf("%s-%d exited unexpectedly: %w", p.Service, p.Index, p.Err())
		}
	}
	fmt.Fprintln(stdout, "stopping wisp…")
	if err := s.Stop(context.Background()); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "wisp stopped")
	return nil
}

// logFormat is the services' LOG_FORMAT: the one asked for, else text for a
// person at a terminal and JSON where the output is collected. The services
// write into pipes to the launcher, so they cannot tell for themselves.
func logFormat(asked string, stdout io.Writer) string {
	switch {
	case asked != "":
		return asked
	case service.IsTerminal(stdout):
		return service.LogText
	default:
		return service.LogJSON
	}
}

// banner tells a person what to open and what is running.
func banner(w io.Writer, s *stack.System, format string) error {
	rule := strings.Repeat("─", 72)
	fmt.Fprintf(w, "\n%s\n  wisp is running: open %s\n\n", rule, s.Gateways()[0])
	if err := s.Describe(w, "    "); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n  Service logs (%s) go on below, each line prefixed by its process. Ctrl-C stops everything.\n%s\n\n",
		format, rule)
	return err
}
