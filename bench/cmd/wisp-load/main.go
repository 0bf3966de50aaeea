// Command wisp-load drives a running wisp like browsers: N rooms of two
// members, each joined through the room page with its own cookie and
// listening on the room's WebSocket, each posting messages on a fixed
// open-loop schedule; it reports the latency from scheduled send to arrival
// at the other member, losses, duplicates, the achieved rate and errors.
//
//	wisp-load -url http://127.0.0.1:3000 -rooms 500 -rate 1000 -duration 20s
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
	fs.DurationVar(&cfg.Grace, "grace", 5*time.Second, "how long a message may take to arrive after the last reply")
	fs.IntVar(&cfg.Conns, "conns", 256, "HTTP connections (concurrent sends) at most")
	fs.IntVar(&cfg.Setup, "setup", 32, "concurrent room setups")
	cpuprofile := fs.String("cpuprofile", "", "write the generator's CPU profile of the run to this file")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Gateways = strings.Split(*urls, ",")
	if limit, err := load.RaiseFileLimit(); err != nil {
		fmt.Fprintln(os.Stderr, "wisp-load: raising the open-file limit:", err)
	} else if need := uint64(cfg.Rooms*2 + cfg.Conns + 64); limit < need {
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
