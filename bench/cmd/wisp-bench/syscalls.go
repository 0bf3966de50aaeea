package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
)

// syscallCount counts the system calls of every process of the benchmark
// (the services, nats-server, redis-server and the generator itself) with
// `perf stat -e raw_syscalls:sys_enter`, one perf per process, from start
// until stop. Without perf (Debian: linux-perf) or the tracepoint it reports
// why instead of figures.
type syscallCount struct {
	perfs []*perfRun
	err   error
}

type perfRun struct {
	name string
	cmd  *exec.Cmd
	out  bytes.Buffer
}

// startSyscallCount attaches perf to each of the benchmark's processes.
func startSyscallCount() *syscallCount {
	c := &syscallCount{}
	path, err := exec.LookPath("perf")
	if err != nil {
		c.err = fmt.Errorf("perf not installed (Debian: apt-get install linux-perf)")
		return c
	}
	for pid, p := range sampleCPU().procs {
		r := &perfRun{name: p.name}
		// -x, : CSV, the count first; perf writes its counts to stderr.
		r.cmd = exec.Command(path, "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", strconv.Itoa(pid))
		r.cmd.Stderr = &r.out
		if err := r.cmd.Start(); err != nil {
			c.err = fmt.Errorf("perf: %w", err)
			continue
		}
		c.perfs = append(c.perfs, r)
	}
	return c
}

// syscalls is the outcome: per process name, and the total.
type syscalls struct {
	byName map[string]int64
	total  int64
	err    error
}

// stop ends the counting (perf prints its count on SIGINT).
func (c *syscallCount) stop() syscalls {
	s := syscalls{byName: map[string]int64{}, err: c.err}
	for _, r := range c.perfs {
		_ = r.cmd.Process.Signal(os.Interrupt)
	}
	for _, r := range c.perfs {
		_ = r.cmd.Wait()
		n, err := perfCount(r.out.String())
		if err != nil {
			s.err = err
			continue
		}
		s.byName[r.name] += n
		s.total += n
	}
	return s
}

// perfCount reads the count from `perf stat -x,` output.
func perfCount(out string) (int64, error) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ",")
		if len(f) >= 3 && strings.Contains(line, "raw_syscalls:sys_enter") {
			if n, err := strconv.ParseInt(strings.TrimSpace(f[0]), 10, 64); err == nil {
				return n, nil
			}
			return 0, fmt.Errorf("perf: cannot count syscalls (%s)", strings.TrimSpace(f[0]))
		}
	}
	return 0, fmt.Errorf("perf printed no count: %q", strings.TrimSpace(out))
}

// generatorName is how sampleCPU names the benchmark's own process.
const generatorName = "load generator (wisp-bench)"

// wispPerMessage is the calls of wisp's processes (all but the generator,
// which plays the browsers) per delivered message.
func (s syscalls) wispPerMessage(delivered int) string {
	if s.err != nil || delivered == 0 {
		return s.perMessage(delivered)
	}
	return fmt.Sprintf("%.1f", float64(s.total-s.byName[generatorName])/float64(delivered))
}

// perMessage formats the calls per delivered message, busiest process first.
func (s syscalls) perMessage(delivered int) string {
	if s.err != nil {
		return "not measured: " + s.err.Error()
	}
	if delivered == 0 {
		return "not measured: nothing delivered"
	}
	names := make([]string, 0, len(s.byName))
	for n := range s.byName {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return s.byName[names[i]] > s.byName[names[j]] })
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %.1f", n, float64(s.byName[n])/float64(delivered)))
	}
	return fmt.Sprintf("%.1f per delivered message (%s)", float64(s.total)/float64(delivered), strings.Join(parts, ", "))
}
