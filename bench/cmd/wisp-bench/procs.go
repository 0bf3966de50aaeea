package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc CPU times (100 on Linux).
const clockTicks = 100

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
	ours(func(pid int, name string, cpu float64) { s.procs[pid] = procCPU{name: name, cpu: cpu} })
	s.total = machineBusy()
	return s
}

// ours calls fn for this process and its children (the services,
// nats-server, redis-server), with their names and CPU seconds.
func ours(fn func(pid int, name string, cpu float64)) {
	self := os.Getpid()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		name, ppid, cpu, ok := readStat(pid)
		if !ok || (pid != self && ppid != self) {
			continue
		}
		if pid == self {
			name = generatorName
		}
		fn(pid, name, cpu)
	}
}

// peakRSS lists the highest resident memory (VmHWM) the benchmark's child
// processes have reached since they started, summed per name.
func peakRSS() string {
	self := os.Getpid()
	byName := map[string]int{}
	ours(func(pid int, name string, _ float64) {
		if pid == self {
			return
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			return
		}
		for line := range strings.Lines(string(b)) {
			if kib, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(kib), " kB"))
				byName[name] += n
			}
		}
	})
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return byName[names[i]] > byName[names[j]] })
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.0f MiB", n, float64(byName[n])/1024)
	}
	return strings.Join(parts, ", ")
}

// readStat returns the command name, parent and CPU seconds of pid.
func readStat(pid int) (string, int, float64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, 0, false
	}
	s := string(b)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < 0 {
		return "", 0, 0, false
	}
	f := strings.Fields(s[close+2:])
	if len(f) < 13 {
		return "", 0, 0, false
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return s[open+1 : close], ppid, (ut + st) / clockTicks, true
}

// machineBusy is the non-idle CPU time of the machine, in seconds.
func machineBusy() float64 {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0
	}
	fields := strings.Fields(sc.Text())[1:]
	var busy float64
	for i, v := range fields {
		n, _ := strconv.ParseFloat(v, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		busy += n
	}
	return busy / clockTicks
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
