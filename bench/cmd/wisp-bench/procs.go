package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/procfs"
)

// cpuSample is the CPU time used so far by this process, its children (the
// services, nats-server, redis-server) and the whole machine.
type cpuSample struct {
	at    time.Time
	procs map[int]procCPU
	total float64 // machine busy seconds (all cores)
}

type procCPU struct {
	name string
	cpu  float64 // seconds
}

func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now(), procs: map[int]procCPU{}}
	ours(func(p procfs.Proc, name string, cpu float64) { s.procs[p.PID] = procCPU{name: name, cpu: cpu} })
	s.total = machineBusy()
	return s
}

// ours calls fn for this process and its children (the services,
// nats-server, redis-server), with their names and CPU seconds.
func ours(fn func(p procfs.Proc, name string, cpu float64)) {
	procs, err := procfs.AllProcs()
	if err != nil {
		return
	}
	self := os.Getpid()
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil || (p.PID != self && st.PPID != self) {
			continue
		}
		name := st.Comm
		if p.PID == self {
			name = generatorName
		}
		fn(p, name, st.CPUTime())
	}
}

// peakRSS lists the highest resident memory (VmHWM) the benchmark's child
// processes have reached since they started, summed per name.
func peakRSS() string {
	self := os.Getpid()
	byName := map[string]uint64{}
	ours(func(p procfs.Proc, name string, _ float64) {
		if p.PID == self {
			return
		}
		if st, err := p.NewStatus(); err == nil {
			byName[name] += st.VmHWM
		}
	})
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return byName[names[i]] > byName[names[j]] })
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.0f MiB", n, float64(byName[n])/(1<<20))
	}
	return strings.Join(parts, ", ")
}

// machineBusy is the non-idle CPU time of the machine, in seconds (guest
// time is already counted in user time).
func machineBusy() float64 {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0
	}
	st, err := fs.Stat()
	if err != nil {
		return 0
	}
	c := st.CPUTotal
	return c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
}

// cpuUse is the CPU used between two samples, as cores busy on average.
type cpuUse struct {
	wall  time.Duration
	procs []procUse
	ours  float64
	total float64
	sys   syscalls // the system calls over the same span, where counted
}

type procUse struct {
	name  string
	cores float64
}

func cpuBetween(a, b cpuSample) cpuUse {
	u := cpuUse{wall: b.at.Sub(a.at)}
	secs := u.wall.Seconds()
	byName := map[string]float64{}
	for pid, p := range b.procs {
		d := p.cpu - a.procs[pid].cpu
		byName[p.name] += d / secs
		u.ours += d / secs
	}
	for n, c := range byName {
		u.procs = append(u.procs, procUse{n, c})
	}
	sort.Slice(u.procs, func(i, j int) bool { return u.procs[i].cores > u.procs[j].cores })
	u.total = (b.total - a.total) / secs
	return u
}

// String lists the cores each process kept busy, and what the rest of the
// machine used (anything not started by the benchmark).
func (u cpuUse) String() string {
	var parts []string
	for _, p := range u.procs {
		if p.cores >= 0.005 {
			parts = append(parts, fmt.Sprintf("%s %.2f", p.name, p.cores))
		}
	}
	return fmt.Sprintf("%s; other processes on the machine %.2f (cores)", strings.Join(parts, ", "), max(u.total-u.ours, 0))
}
