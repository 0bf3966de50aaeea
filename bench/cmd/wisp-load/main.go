// Command wisp-load drives a running wisp like browsers: N rooms of two
// members, each joined through the room page with its own cookie and its
// own keep-alive connection, listening on its own WebSocket, each sending
// messages on a fixed open-loop schedule over its socket (send → ack) or
// with POST; it reports the latency from when a message was due to its
// arrival at the other member, losses, duplicates, the achieved rate and
// errors.
//
//	wisp-load -url http://127.0.0.1:3000 -rooms 500 -rate 1000 -duration 55s -send socket
//	wisp-load -url http://127.0.0.1:3000 -rooms 500 -rate 1000 -duration 55s -send post
//
// The gateway must run with RATE_LIMITS=off.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"wisp/bench/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "wisp-load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("wisp-load", flag.ContinueOnError)
	urls := fs.String("url", "http://127.0.0.1:3000", "gateway base URL; several comma-separated ones spread the members over them")
	cfg := load.Config{Log: stdout}
	fs.IntVar(&cfg.Rooms, "rooms", 500, "rooms, two members each")
	fs.Float64Var(&cfg.Rate, "rate", 1000, "messages per second, all members together; 0 holds the sockets idle for -duration")
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "measured part of the run")
	fs.DurationVar(&cfg.Warmup, "warmup", 3*time.Second, "schedule before the measured part (sent, not counted)")
	fs.IntVar(&cfg.Size, "size", 64, "bytes of message text")
	fs.DurationVar(&cfg.Grace, "grace", 5*time.Second, "how long a message may still be answered and arrive after the schedule ends")
	send := fs.String("send", "socket", "how members send: socket (a send frame on their own WebSocket, answered by ack) or post (POST /api/messages on their own connection)")
	fs.IntVar(&cfg.SharedConns, "shared-conns", 0, "EXTRA, not browser-like: members share this many keep-alive connections for POST (with -send post); 0: each member its own")
	fs.IntVar(&cfg.Sources, "sources", load.DefaultSources, "loopback source addresses (127.0.1.x) to spread client connections over; -1: the kernel's choice")
	fs.IntVar(&cfg.Setup, "setup", 32, "concurrent room setups")
	cpuprofile := fs.String("cpuprofile", "", "write the generator's CPU profile of the run to this file")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Gateways = strings.Split(*urls, ",")
	var err error
	if cfg.Send, err = load.ParseSendMode(*send); err != nil {
		return err
	}
	if limit, err := load.RaiseFileLimit(); err != nil {
		fmt.Fprintln(os.Stderr, "wisp-load: raising the open-file limit:", err)
	} else if need := uint64(fdsNeeded(cfg)); limit < need {
		return fmt.Errorf("open-file limit %d is below the %d sockets the run needs", limit, need)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintln(stdout, res)
	return nil
}

// fdsNeeded is the sockets a run holds at once: a WebSocket per member and,
// unless they share a pool or the run is idle (-rate 0 closes them before
// the sockets open), a keep-alive connection per member.
func fdsNeeded(cfg load.Config) int {
	members := cfg.Rooms * 2
	http := members
	if cfg.SharedConns > 0 {
		http = cfg.SharedConns
	} else if cfg.Rate == 0 {
		http = 0
	}
	return members + http + 64
}
