// Command wisp-bench builds wisp, starts it on this machine (Redis,
// nats-server and every service as child processes, RATE_LIMITS=off), runs
// the fixed scenario set with the load generator in this process and
// writes the figures to BENCHMARKS.md. `make bench` runs it.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"wisp/bench/load"
	"wisp/stack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "wisp-bench:", err)
		os.Exit(1)
	}
}

// bench is one `make bench`: where the binaries are and what was found.
type bench struct {
	bin, natsBin string
	scratch      string
	out          io.Writer // progress
	logs         *limitedWriter
	env          map[string]string // extra environment for the services
	sections     []string
	summary      []string
}

var scenarios = []struct {
	name string
	fn   func(b *bench, ctx context.Context) error
}{
	{"latency", (*bench).latency},
	{"sweep", (*bench).sweep},
	{"memory", (*bench).memory},
	{"expiry", (*bench).expiry},
	{"create", (*bench).create},
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("wisp-bench", flag.ContinueOnError)
	out := fs.String("out", "BENCHMARKS.md", "report to write")
	only := fs.String("only", "", "comma-separated scenarios to run (default all: latency,sweep,memory,expiry,create)")
	notes := fs.String("notes", "bench/NOTES.md", "hand-written analysis appended to the report (skipped when missing)")
	cpuprofile := fs.String("cpuprofile", "", "write the load generator's CPU profile to this file")
	prebuilt := fs.String("bin", "", "use the service binaries in this folder instead of building them (e.g. an older commit's, to compare)")
	extraEnv := fs.String("env", "", "extra environment for every service, comma-separated K=V (e.g. GOMAXPROCS=1)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := load.RaiseFileLimit(); err != nil {
		return fmt.Errorf("raise open-file limit: %w", err)
	}
	scratch, err := os.MkdirTemp("", "wisp-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	b := &bench{bin: scratch + "/bin", scratch: scratch, out: stdout, env: map[string]string{}}
	for _, kv := range strings.Split(*extraEnv, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
			b.env[k] = v
		}
	}

	started := time.Now()
	if *prebuilt != "" {
		b.bin = *prebuilt
	} else {
		fmt.Fprintln(stdout, "building the services and nats-server…")
		if err := stack.Build(ctx, b.bin); err != nil {
			return err
		}
	}
	if b.natsBin, err = stack.BuildNATS(ctx, scratch); err != nil {
		return err
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
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			want[s] = true
		}
	}
	for _, s := range scenarios {
		if len(want) > 0 && !want[s.name] {
			continue
		}
		fmt.Fprintf(stdout, "== %s\n", s.name)
		if err := s.fn(b, ctx); err != nil {
			b.section("Scenario "+s.name+" failed", "```\n"+err.Error()+"\n```\n")
			fmt.Fprintf(stdout, "%s failed: %v\n", s.name, err)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	report := b.report(args, time.Since(started), *notes)
	if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s in %v\n", *out, time.Since(started).Round(time.Second))
	return nil
}

// start runs a fresh system: one replica of each service unless replicas
// says otherwise, rate limits off, nats-server as its own process.
func (b *bench) start(ctx context.Context, env map[string]string, replicas map[string]int) (*stack.Stack, error) {
	e := map[string]string{"RATE_LIMITS": "off"}
	for k, v := range b.env {
		e[k] = v
	}
	for k, v := range env {
		e[k] = v
	}
	logs := &bytes.Buffer{}
	b.logs = &limitedWriter{w: logs, n: 1 << 20}
	s, err := stack.Start(ctx, stack.Options{BinDir: b.bin, NATSBin: b.natsBin, Env: e, Replicas: replicas,
		Logs: b.logs, Dir: b.scratch})
	if err != nil {
		b.logs.mu.Lock()
		defer b.logs.mu.Unlock()
		return nil, fmt.Errorf("start: %w\n%s", err, logs.String())
	}
	return s, nil
}

func (b *bench) stop(s *stack.Stack) {
	if err := s.Stop(context.Background()); err != nil {
		fmt.Fprintf(b.out, "stop: %v\n", err)
	}
}

func (b *bench) section(title, body string) {
	b.sections = append(b.sections, "## "+title+"\n\n"+body)
}

func (b *bench) logf(format string, args ...any) { fmt.Fprintf(b.out, format+"\n", args...) }

func (b *bench) report(args []string, took time.Duration, notesPath string) string {
	var r strings.Builder
	r.WriteString("# wisp benchmarks\n\n")
	r.WriteString("Written by `make bench` (bench/cmd/wisp-bench); do not edit by hand — the analysis at the end\n")
	r.WriteString("comes from bench/NOTES.md. Every figure is from one run on the machine below, with the whole\n")
	r.WriteString("system and the load generator on it, over loopback.\n\n")
	fmt.Fprintf(&r, "Run at %s, took %v.\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), took.Round(time.Second))
	r.WriteString("## Machine\n\n")
	fmt.Fprintf(&r, "| | |\n|---|---|\n| CPU | %s |\n| cores | %d |\n| memory | %s |\n| Go | %s |\n| kernel | %s |\n| redis-server | %s |\n| load average before | %s |\n\n",
		cpuModel(), runtime.NumCPU(), memTotal(), goVersion(), kernel(), redisVersion(), loadAvg())
	r.WriteString("## Commands\n\n```sh\nmake bench                      # all of the below, writes this file\n")
	fmt.Fprintf(&r, "go run ./bench/cmd/wisp-bench %s\n", strings.Join(args, " "))
	r.WriteString("# against a running system (RATE_LIMITS=off make run), the generator alone:\n")
	r.WriteString("go run ./bench/cmd/wisp-load -url http://127.0.0.1:3000 -rooms 500 -rate 1000 -duration 20s -warmup 3s\n")
	r.WriteString("# the hot paths in isolation:\n")
	r.WriteString("(cd services/messages && go test -run '^$' -bench . ./internal/redisstore/)\n")
	r.WriteString("(cd contract && go test -run '^$' -bench .)\n")
	r.WriteString("(cd services/gateway && go test -run '^$' -bench . ./internal/relay/)\n```\n\n")
	r.WriteString("Latency is measured per message from the moment the open-loop schedule says it is sent to the\n")
	r.WriteString("moment the *other* member's WebSocket receives it (the generator's own queueing counts against\n")
	r.WriteString("wisp). Lost = answered 200 but never received by the other member within the grace period.\n")
	r.WriteString("CPU figures are cores kept busy on average during the measured run, from /proc/<pid>/stat.\n\n")
	if len(b.summary) > 0 {
		r.WriteString("## Summary\n\n| | target | measured |\n|---|---|---|\n")
		for _, s := range b.summary {
			r.WriteString(s + "\n")
		}
		r.WriteString("\n")
	}
	for _, s := range b.sections {
		r.WriteString(s + "\n")
	}
	if notes, err := os.ReadFile(notesPath); err == nil {
		r.WriteString("\n")
		r.Write(notes)
	}
	return r.String()
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			f := strings.Fields(line)
			var kb int64
			fmt.Sscan(f[1], &kb)
			return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return "unknown"
}

func goVersion() string {
	out, err := exec.Command("go", "version").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(out))
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func redisVersion() string {
	out, err := exec.Command("redis-server", "--version").Output()
	if err != nil {
		return "unknown"
	}
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "v=") {
			return strings.TrimPrefix(f, "v=")
		}
	}
	return strings.TrimSpace(string(out))
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// limitedWriter keeps the first n bytes of the services' logs (shown when
// a start fails).
type limitedWriter struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n <= 0 {
		return len(p), nil
	}
	q := p
	if len(q) > l.n {
		q = q[:l.n]
	}
	l.n -= len(q)
	_, _ = l.w.Write(q)
	return len(p), nil
}
