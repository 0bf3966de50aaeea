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
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"

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
	env          map[string]map[string]string // extra environment by service ("": every one)
	modes        []load.SendMode              // the send modes of the latency and sweep scenarios
	sockets      int                          // the memory scenario's idle sockets
	sections     []string
	summary      []string
}

// scenarios in the order they run; an extra one runs only when -only
// names it.
var scenarios = []struct {
	name  string
	fn    func(b *bench, ctx context.Context) error
	extra bool
}{
	{"latency", (*bench).latency, false},
	{"sweep", (*bench).sweep, false},
	{"memory", (*bench).memory, false},
	{"expiry", (*bench).expiry, false},
	{"create", (*bench).create, false},
	{"pool", (*bench).pool, true},
	{"overload", (*bench).overload, true},
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("wisp-bench", flag.ContinueOnError)
	out := fs.String("out", "BENCHMARKS.md", "report to write")
	only := fs.String("only", "", "comma-separated scenarios to run (default: latency,sweep,memory,expiry,create; the extra ones, pool and overload, only when named)")
	modes := fs.String("modes", "socket,post", "send modes of the latency and sweep scenarios: socket (send frame → ack), post, or both")
	notes := fs.String("notes", "bench/NOTES.md", "hand-written analysis appended to the report (skipped when missing)")
	cpuprofile := fs.String("cpuprofile", "", "write the load generator's CPU profile to this file")
	prebuilt := fs.String("bin", "", "use the service binaries in this folder instead of building them (e.g. an older commit's, to compare)")
	sockets := fs.Int("sockets", memConns, "idle WebSockets of the memory scenario (the file limit caps it: a socket is a descriptor in the gateway and in this process)")
	extraEnv := fs.String("env", "", "extra environment for every service, comma-separated K=V (e.g. GOMAXPROCS=1), or service:K=V for one (messages:GOMAXPROCS=1)")
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
	b := &bench{bin: scratch + "/bin", scratch: scratch, out: stdout, env: map[string]map[string]string{}, sockets: *sockets}
	for _, m := range strings.Split(*modes, ",") {
		mode, err := load.ParseSendMode(m)
		if err != nil {
			return err
		}
		b.modes = append(b.modes, mode)
	}
	for _, kv := range strings.Split(*extraEnv, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			continue
		}
		svc := ""
		if s, name, one := strings.Cut(k, ":"); one {
			svc, k = s, name
		}
		if b.env[svc] == nil {
			b.env[svc] = map[string]string{}
		}
		b.env[svc][k] = v
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
		if len(want) > 0 && !want[s.name] || len(want) == 0 && s.extra {
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
	prev, _ := os.ReadFile(*out) // the last run's figures become the "previous" column
	report := b.report(args, time.Since(started), *notes, string(prev))
	if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s in %v\n", *out, time.Since(started).Round(time.Second))
	return nil
}

// start runs a fresh system: one replica of each service unless replicas
// says otherwise, rate limits off, nats-server as its own process.
func (b *bench) start(ctx context.Context, env map[string]string, replicas map[string]int) (*stack.System, error) {
	e := map[string]string{"RATE_LIMITS": "off"}
	for k, v := range b.env[""] {
		e[k] = v
	}
	for k, v := range env {
		e[k] = v
	}
	logs := &bytes.Buffer{}
	b.logs = &limitedWriter{w: logs, n: 1 << 20}
	s, err := stack.Start(ctx, stack.Options{BinDir: b.bin, NATSBin: b.natsBin, Env: e, Replicas: replicas,
		EnvFor: func(service string, _ int) map[string]string { return b.env[service] },
		Logs:   b.logs, Dir: b.scratch})
	if err != nil {
		b.logs.mu.Lock()
		defer b.logs.mu.Unlock()
		return nil, fmt.Errorf("start: %w\n%s", err, logs.String())
	}
	return s, nil
}

func (b *bench) stop(s *stack.System) {
	if err := s.Stop(context.Background()); err != nil {
		fmt.Fprintf(b.out, "stop: %v\n", err)
	}
}

// envNote names the environment -env added, for the report.
func (b *bench) envNote() string {
	var kv []string
	for svc, env := range b.env {
		if svc != "" {
			svc += ":"
		}
		for k, v := range env {
			kv = append(kv, svc+k+"="+v)
		}
	}
	if len(kv) == 0 {
		return ""
	}
	slices.Sort(kv)
	return "; this run also set " + strings.Join(kv, ", ")
}

func (b *bench) section(title, body string) {
	b.sections = append(b.sections, "## "+title+"\n\n"+body)
}

func (b *bench) logf(format string, args ...any) { fmt.Fprintf(b.out, format+"\n", args...) }

func (b *bench) report(args []string, took time.Duration, notesPath, previous string) string {
	var r strings.Builder
	r.WriteString("# wisp benchmarks\n\n")
	r.WriteString("Written by `make bench` (bench/cmd/wisp-bench); do not edit by hand — the analysis at the end\n")
	r.WriteString("comes from bench/NOTES.md. Every figure is from one run on the machine below, with the whole\n")
	r.WriteString("system and the load generator on it, over loopback.\n\n")
	fmt.Fprintf(&r, "Run at %s on tree %s, took %v.\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), gitTree(), took.Round(time.Second))
	r.WriteString("## Machine\n\n")
	fmt.Fprintf(&r, "| | |\n|---|---|\n| CPU | %s |\n| cores | %d |\n| memory | %s |\n| Go | %s |\n| kernel | %s |\n| redis-server | %s |\n| load average before | %s |\n\n",
		cpuModel(), runtime.NumCPU(), memTotal(), goVersion(), kernel(), redisVersion(), loadAvg())
	r.WriteString("## Commands\n\n```sh\nmake bench                      # all of the below, writes this file\n")
	fmt.Fprintf(&r, "go run ./bench/cmd/wisp-bench %s\n", strings.Join(args, " "))
	r.WriteString("go run ./bench/cmd/wisp-bench -only latency -modes post   # one scenario, one send mode\n")
	r.WriteString("go run ./bench/cmd/wisp-bench -only pool                  # the extra shared-pool scenario (not browser-like)\n")
	r.WriteString("go run ./bench/cmd/wisp-bench -only overload              # the extra overload scenario\n")
	r.WriteString("# against a running system (RATE_LIMITS=off make run), the generator alone:\n")
	r.WriteString("go run ./bench/cmd/wisp-load -url http://127.0.0.1:3000 -rooms 500 -rate 1000 -duration 55s -warmup 5s -send socket\n")
	r.WriteString("go run ./bench/cmd/wisp-load -url http://127.0.0.1:3000 -rooms 500 -rate 1000 -duration 55s -warmup 5s -send post\n")
	r.WriteString("# the hot paths in isolation:\n")
	r.WriteString("(cd services/messages && go test -run '^$' -bench . ./internal/redisstore/)\n")
	r.WriteString("(cd contract && go test -run '^$' -bench .)\n")
	r.WriteString("(cd services/gateway && go test -run '^$' -bench . ./internal/relay/)\n```\n\n")
	r.WriteString("The generator models browsers: every member has its own keep-alive HTTP connection and its own\n")
	r.WriteString("WebSocket, and sends either over the socket (`{\"type\":\"send\",…}`, acknowledged by the `ack` frame\n")
	r.WriteString("with the stored message) or with `POST /api/messages` (acknowledged by the 200 answer). Latency is\n")
	r.WriteString("measured per message from the moment the open-loop schedule says it is due to the moment the\n")
	r.WriteString("*other* member's WebSocket receives it (the generator's own queueing counts against wisp).\n")
	r.WriteString("Lost = acknowledged but never received by the other member within the grace period; errors =\n")
	r.WriteString("`error` frames or non-200 answers by status, and sends never answered; other faults = delivered\n")
	r.WriteString("without an acknowledgement, a seq other than the ack's, a send answered twice, a frame on the\n")
	r.WriteString("wrong socket, seqs going backwards on a socket. Sockets ended = closed by the server during the run.\n")
	r.WriteString("CPU figures are cores kept busy on average during the measured run, from /proc/<pid>/stat.\n")
	fmt.Fprintf(&r, "The services run with RATE_LIMITS=off, and %s with GOMAXPROCS=1 as on any one machine (`stack.OneProc`)%s.\n\n",
		strings.Join(stack.OneProc, ", "), b.envNote())
	if len(b.summary) > 0 {
		when, before := previousSummary(previous)
		fmt.Fprintf(&r, "## Summary\n\nThe previous column is the last `make bench` before this one (%s), from the file this one replaced.\n\n", when)
		r.WriteString("| | target | previous | measured |\n|---|---|---|---|\n")
		for _, s := range b.summary {
			label, target, now := summaryCells(s)
			was := before[label]
			if was == "" {
				was = "—"
			}
			fmt.Fprintf(&r, "| %s | %s | %s | %s |\n", label, target, was, now)
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
	if fs, err := procfs.NewDefaultFS(); err == nil {
		if info, err := fs.CPUInfo(); err == nil && len(info) > 0 {
			return info[0].ModelName
		}
	}
	return "unknown"
}

func memTotal() string {
	if fs, err := procfs.NewDefaultFS(); err == nil {
		if mi, err := fs.Meminfo(); err == nil && mi.MemTotalBytes != nil {
			return fmt.Sprintf("%.1f GiB", float64(*mi.MemTotalBytes)/(1<<30))
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
	if fs, err := procfs.NewDefaultFS(); err == nil {
		if la, err := fs.LoadAvg(); err == nil {
			return fmt.Sprintf("%.2f %.2f %.2f", la.Load1, la.Load5, la.Load15)
		}
	}
	return "unknown"
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

// summaryCells splits a summary row "| label | target | measured |".
func summaryCells(row string) (label, target, measured string) {
	cells := strings.Split(strings.Trim(row, "| "), " | ")
	if len(cells) < 3 {
		return row, "", ""
	}
	return cells[0], cells[1], cells[len(cells)-1]
}

// previousSummary reads the measured figure of each summary row, and when
// it was run, from the report a run is about to replace.
func previousSummary(report string) (when string, measured map[string]string) {
	measured = map[string]string{}
	when = "none recorded"
	inSummary := false
	for _, line := range strings.Split(report, "\n") {
		if rest, ok := strings.CutPrefix(line, "Run at "); ok {
			when = strings.TrimSuffix(strings.SplitN(rest, ", took", 2)[0], ".")
		}
		switch {
		case strings.HasPrefix(line, "## "):
			inSummary = line == "## Summary"
		case inSummary && strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| |"):
			cells := strings.Split(strings.Trim(line, "| "), " | ")
			if len(cells) >= 3 {
				measured[cells[0]] = cells[len(cells)-1]
			}
		}
	}
	return when, measured
}

// gitTree names the commit the benchmark ran on ("+ changes" when the
// working tree differs from it, the report itself aside).
func gitTree() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	tree := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!BENCHMARKS.md").Output(); err == nil && len(st) > 0 {
		tree += " + changes"
	}
	return tree
}
