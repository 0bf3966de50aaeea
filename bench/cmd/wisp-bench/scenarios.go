package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"wisp/bench/load"
	"wisp/contract"
	"wisp/stack"
	"wisp/testkit"
)

// The fixed scenario set. Sizes are bounded so that `make bench` ends in
// about a quarter of an hour on a 2-core machine.
const (
	msgRooms       = 500
	msgSize        = 64
	latencyRate    = 1000
	latencyRun     = 55 * time.Second // with the warm-up, more than two ping intervals (25 s by default)
	latencyWarm    = 5 * time.Second
	pingInterval   = 25 * time.Second // the gateway's default WS_PING_INTERVAL, which the bench leaves as it is
	sweepRun       = 10 * time.Second
	sweepWarm      = 2 * time.Second
	sweepP99       = 50 * time.Millisecond
	sweepFrom      = 2000
	sweepStep      = 2000
	sweepMax       = 30000
	sweepBusyTries = 3                 // runs of a rate that fails while other processes are busy
	memConns       = 10000             // -sockets
	memIdle        = 150 * time.Second // past the runtime's 2-minute forced GC
	expiryRooms    = 100000
	expiryReal     = 300
	expiryTTL      = 20 * time.Second
	createRun      = 10 * time.Second
	createActors   = 32
	poolConns      = 256 // the extra shared-pool scenario: the generator's only mode before
	poolRun        = 20 * time.Second
	overloadRate   = 25000            // the extra overload scenario: far above any sustained rate here
	overloadGrace  = 30 * time.Second // a queue behind an overload drains long after its schedule
)

// playRun runs the generator and the CPU accounting of its measured part,
// and with countSyscalls the system calls too (perf's tracepoint costs
// every call a little, so only the fixed-rate latency runs count them).
func (b *bench) playRun(ctx context.Context, cfg load.Config, countSyscalls bool) (load.Result, cpuUse, error) {
	var before cpuSample
	var use cpuUse
	var counting *syscallCount
	cfg.Mark = func(measuring bool) {
		if measuring {
			before = sampleCPU()
			if countSyscalls {
				counting = startSyscallCount()
			}
		} else if !before.at.IsZero() {
			use = cpuBetween(before, sampleCPU())
			if counting != nil {
				use.sys = counting.stop()
			}
		}
	}
	cfg.Log = b.out
	res, err := load.Run(ctx, cfg)
	if err == nil {
		b.logf("%s\n  CPU: %s", res, use)
		if counting != nil {
			b.logf("  syscalls: %s", use.sys.perMessage(res.Delivered))
		}
	}
	return res, use, err
}

// modeName is the short label of a run's sends for tables.
func modeName(r load.Result) string {
	name := "socket"
	if r.Send == load.SendPOST {
		name = "POST"
	}
	if r.SharedConns > 0 {
		name += fmt.Sprintf(" (extra: %d shared conns)", r.SharedConns)
	}
	return name
}

func resultHeader() string {
	return "| sends | rooms | target msgs/s | achieved msgs/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | ack p99 ms | lost | duplicates | errors | other faults | sockets ended |\n" +
		"|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
}

func resultRow(r load.Result) string {
	errs := "0"
	if n := r.ErrorCount(); n > 0 {
		errs = fmt.Sprintf("%d %v", n, r.Errors)
	}
	ended := fmt.Sprint(r.SocketsEnded)
	if r.SocketsEnded > 0 {
		ended += fmt.Sprintf(" %v", r.SocketsEndedBy)
	}
	return fmt.Sprintf("| %s | %d | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %d | %d | %s | %s | %s |\n",
		modeName(r), r.Rooms, r.Rate, r.Achieved, ms(r.Latency.P50), ms(r.Latency.P90), ms(r.Latency.P99), ms(r.Latency.P999),
		ms(r.Latency.Max), ms(r.Reply.P99), r.Lost, r.Duplicates, errs, otherFaults(r), ended)
}

// otherFaults lists the rarer accounting figures that are not zero.
func otherFaults(r load.Result) string {
	var f []string
	for _, c := range []struct {
		name string
		n    int64
	}{{"delivered unacknowledged", int64(r.Unacked)}, {"seq ≠ ack", int64(r.SeqMismatch)}, {"answered twice", int64(r.Reanswered)},
		{"misrouted", r.Misrouted}, {"reordered", r.Reordered}, {"unknown frames", r.Unknown}} {
		if c.n != 0 {
			f = append(f, fmt.Sprintf("%s %d", c.name, c.n))
		}
	}
	if len(f) == 0 {
		return "—"
	}
	return strings.Join(f, ", ")
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) }

// latency: scenario 1, once per send mode, each on a fresh system. The
// schedule (warm-up included) outlasts two ping intervals, so a socket the
// server drops at its first ping or later shows as lost messages and as
// sockets ended.
func (b *bench) latency(ctx context.Context) error {
	var rows, notes strings.Builder
	for _, mode := range b.modes {
		var res load.Result
		var use cpuUse
		var discarded []string
		for attempt := 1; ; attempt++ {
			var err error
			if res, use, err = b.latencyRun(ctx, mode); err != nil {
				return err
			}
			other := use.total - use.ours
			stalled := res.SenderLag.Max > stallLimit
			if (other < quietLimit && !stalled) || attempt == latencyTries {
				if attempt > 1 {
					fmt.Fprintf(&notes, "- %s: measured %d times, other processes being busy or the generator stalled during the earlier runs (%s); the last run is shown.\n",
						modeName(res), attempt, strings.Join(discarded, "; "))
				}
				break
			}
			why := fmt.Sprintf("other processes used %.2f cores", other)
			if stalled {
				why = fmt.Sprintf("the generator sent a message %s ms late", ms(res.SenderLag.Max))
			}
			discarded = append(discarded, fmt.Sprintf("run %d: %s, p99 %s ms", attempt, why, ms(res.Latency.P99)))
			b.logf("  %s during the run: measuring again", why)
		}
		rows.WriteString(resultRow(res))
		fmt.Fprintf(&notes, "- %s: generator delay (due → written) p99 %s ms; CPU: %s; system calls: %s.\n",
			modeName(res), ms(res.SenderLag.P99), use, use.sys.perMessage(res.Delivered))
		b.summary = append(b.summary, fmt.Sprintf("| p99 latency at 1,000 msgs/s, 500 rooms, sends %s | ≤ 1.0 ms | **%s ms** (p50 %s, max %s; lost %d, sockets ended %d) |",
			mode.Describe(), ms(res.Latency.P99), ms(res.Latency.P50), ms(res.Latency.Max), res.Lost, res.SocketsEnded))
		b.summary = append(b.summary, fmt.Sprintf("| system calls per delivered message at 1,000 msgs/s, sends %s, wisp's processes (the generator's apart) | ≤ 20 | **%s** |",
			mode.Describe(), use.sys.wispPerMessage(res.Delivered)))
	}
	b.section("1. Latency at 1,000 messages/s over 500 rooms",
		fmt.Sprintf("1,000 members, each a browser of its own (its own keep-alive connection and WebSocket), each send one "+
			"%d-byte message a second for %v after %v of warm-up: %v of sending on sockets opened before it, more than "+
			"two ping intervals (%v, the default the services run with). Each send mode on a fresh system; a run during "+
			"which other processes used %.1f core or more, or in which the generator sent a message more than %v late, is repeated (%d runs at most). Latency: due → received by the "+
			"other member; ack: due → `ack` frame (socket) or 200 answer (POST).\n\n",
			msgSize, latencyRun, latencyWarm, latencyRun+latencyWarm, pingInterval, quietLimit, stallLimit, latencyTries)+
			resultHeader()+rows.String()+"\n"+notes.String())
	return nil
}

// latencyTries is how many times a latency run is taken at most while
// other processes keep the machine busy or the generator stalls.
const latencyTries = 3

// stallLimit is how late the generator may send a message before its run
// is taken again. At 1,000 msgs/s wisp keeps about one of the two cores
// busy and a send is a write into an empty socket buffer, so a send that
// late means the generator itself was not running: the machine stalled,
// which the CPU of other processes does not show.
const stallLimit = 100 * time.Millisecond

func (b *bench) latencyRun(ctx context.Context, mode load.SendMode) (load.Result, cpuUse, error) {
	s, err := b.start(ctx, nil, nil)
	if err != nil {
		return load.Result{}, cpuUse{}, err
	}
	defer b.stop(s)
	b.waitQuiet(ctx)
	return b.playRun(ctx, load.Config{Gateways: s.Gateways(), Rooms: msgRooms, Rate: latencyRate,
		Duration: latencyRun, Warmup: latencyWarm, Size: msgSize, Send: mode}, true)
}

// pool: the extra scenario (not run by default) with the generator's old,
// not browser-like shape: POSTs over one pool of shared connections.
func (b *bench) pool(ctx context.Context) error {
	s, err := b.start(ctx, nil, nil)
	if err != nil {
		return err
	}
	defer b.stop(s)
	b.waitQuiet(ctx)
	res, use, err := b.playRun(ctx, load.Config{Gateways: s.Gateways(), Rooms: msgRooms, Rate: latencyRate,
		Duration: poolRun, Warmup: 3 * time.Second, Size: msgSize, Send: load.SendPOST, SharedConns: poolConns}, false)
	if err != nil {
		return err
	}
	b.section("Extra: latency at 1,000 messages/s with a shared connection pool (not browser-like)",
		fmt.Sprintf("The generator's shape before it modelled browsers, kept to compare with figures taken that way: the "+
			"1,000 members' POSTs share %d keep-alive connections (each member still has its own cookie and socket), "+
			"%v after 3 s of warm-up.\n\n", poolConns, poolRun)+
			resultHeader()+resultRow(res)+fmt.Sprintf("\nCPU: %s.\n", use))
	return nil
}

// overload: the extra scenario (not run by default). Far more sends than
// the system can take, then the latency scenario's rate on the same system:
// an overload should end in delay or quick refusals, never in lost
// messages or unbounded memory, and leave the system as fast as before.
func (b *bench) overload(ctx context.Context) error {
	s, err := b.start(ctx, nil, nil)
	if err != nil {
		return err
	}
	defer b.stop(s)
	var rows strings.Builder
	for _, rate := range []float64{overloadRate, latencyRate} {
		b.waitQuiet(ctx)
		res, use, err := b.playRun(ctx, load.Config{Gateways: s.Gateways(), Rooms: msgRooms, Rate: rate,
			Duration: sweepRun, Warmup: sweepWarm, Grace: overloadGrace, Size: msgSize, Send: load.SendSocket}, false)
		if err != nil {
			return err
		}
		fmt.Fprintf(&rows, "%s %s |\n", strings.TrimSuffix(resultRow(res), "\n"), use)
		settle(ctx)
	}
	header := strings.Replace(strings.Replace(resultHeader(), " sockets ended |\n", " sockets ended | CPU (cores) |\n", 1), "|---|\n", "|---|---|\n", 1)
	b.section("Extra: an overload, then the ordinary rate",
		fmt.Sprintf("%d rooms, sends over the socket: %d msgs/s for %v after %v of warm-up (answers and deliveries counted up to %v after the "+
			"schedule), then %d msgs/s on the same system, fresh rooms.\n\n", msgRooms, overloadRate, sweepRun, sweepWarm, overloadGrace, latencyRate)+
			header+rows.String()+fmt.Sprintf("\nPeak resident memory (VmHWM): %s.\n", peakRSS()))
	return nil
}

// sweep: scenario 2, once per send mode, each on a fresh system. Rates go
// up by sweepStep while the run is sustained (p99 < 50 ms, nothing lost, no
// errors, no socket dropped); a failed rate is tried a second time before
// the sweep stops, then the midpoint is tried once.
func (b *bench) sweep(ctx context.Context) error {
	for k, mode := range b.modes {
		if err := b.sweepMode(ctx, mode, fmt.Sprintf("2%c", 'a'+k)); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) sweepMode(ctx context.Context, mode load.SendMode, number string) error {
	s, err := b.start(ctx, nil, nil)
	if err != nil {
		return err
	}
	defer b.stop(s)
	var rows strings.Builder
	best, failed := 0.0, 0.0
	// try runs one rate; a failure while other processes were busy is
	// taken again (sweepBusyTries runs at most), every run shown.
	try := func(rate float64) (bool, error) {
		for attempt := 1; ; attempt++ {
			b.waitQuiet(ctx)
			res, use, err := b.playRun(ctx, load.Config{Gateways: s.Gateways(), Rooms: msgRooms, Rate: rate,
				Duration: sweepRun, Warmup: sweepWarm, Size: msgSize, Send: mode}, false)
			if err != nil {
				return false, err
			}
			ok := res.Sustained(sweepP99)
			other := use.total - use.ours
			verdict := "no"
			if ok {
				verdict = "**yes**"
			} else if other >= quietLimit {
				verdict = fmt.Sprintf("no (other processes used %.2f cores)", other)
			}
			row := strings.TrimSuffix(resultRow(res), "\n")
			fmt.Fprintf(&rows, "%s %s | %s |\n", row, verdict, use)
			settle(ctx)
			if ok || other < quietLimit || attempt == sweepBusyTries {
				return ok, nil
			}
		}
	}
	for rate := float64(sweepFrom); rate <= sweepMax; rate += sweepStep {
		ok, err := try(rate)
		if err != nil {
			return err
		}
		if !ok {
			if ok, err = try(rate); err != nil {
				return err
			}
		}
		if !ok {
			failed = rate
			break
		}
		best = rate
	}
	if failed > 0 && failed-best > 500 {
		mid := best + (failed-best)/2
		ok, err := try(mid)
		if err != nil {
			return err
		}
		if ok {
			best = mid
		}
	}
	peak := peakRSS()
	header := strings.Replace(strings.Replace(resultHeader(), " sockets ended |\n", " sockets ended | sustained | CPU (cores) |\n", 1), "|---|\n", "|---|---|---|\n", 1)
	b.section(fmt.Sprintf("%s. Highest sustained rate, sends %s (p99 < 50 ms, no loss)", number, mode.Describe()),
		fmt.Sprintf("%d rooms, every member its own connection and socket, %d-byte messages sent %s, each rate for %v after %v of "+
			"warm-up; one stack for the whole sweep, fresh rooms per rate. Sustained = p99 < %v, every message acknowledged and "+
			"delivered once, no error, no socket dropped. A rate that fails is tried twice, and a run that fails while other processes used %.1f core or more does not count (%d runs at most). Each run waits for the machine to be "+
			"quiet (other processes under %.1f core) first.\n\n",
			msgRooms, msgSize, mode.Describe(), sweepRun, sweepWarm, sweepP99, quietLimit, sweepBusyTries, quietLimit)+header+rows.String()+
			fmt.Sprintf("\n**Highest sustained rate, sends %s: %.0f messages/s.**\n\nPeak resident memory over the sweep (VmHWM): %s.\n", mode.Describe(), best, peak))
	target := "≥ 20,000 msgs/s"
	if mode == load.SendPOST {
		target = "≥ 12,000 msgs/s"
	}
	b.summary = append(b.summary, fmt.Sprintf("| highest sustained rate (p99 < 50 ms, no loss), sends %s | %s | **%.0f msgs/s** |", mode.Describe(), target, best))
	return nil
}

// quietLimit is how many cores other processes on the machine may use for
// a run to count as taken on a quiet machine.
const quietLimit = 0.1

// waitQuiet waits (at most 90 s) until, over a second, processes other than
// the benchmark's use less than quietLimit cores: this machine may be shared,
// and a busy neighbour halves the sustained rate.
func (b *bench) waitQuiet(ctx context.Context) {
	deadline := time.Now().Add(90 * time.Second)
	for ctx.Err() == nil {
		a := sampleCPU()
		time.Sleep(time.Second)
		u := cpuBetween(a, sampleCPU())
		other := u.total - u.ours
		if other < quietLimit {
			return
		}
		if time.Now().After(deadline) {
			b.logf("  the machine stays busy (other processes %.2f cores); measuring anyway", other)
			return
		}
	}
}

// settle waits until the system is idle again (an overloaded run leaves
// requests queued in NATS and the services), at most 30 s.
func settle(ctx context.Context) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		a := sampleCPU()
		time.Sleep(500 * time.Millisecond)
		if cpuBetween(a, sampleCPU()).ours < 0.15 {
			return
		}
	}
}

func gatewayProc(s *stack.System) *stack.Proc { return s.LiveProc("gateway") }

// goMetrics reads the named Prometheus gauges of a process.
func goMetrics(p *stack.Proc, names ...string) map[string]float64 {
	out := map[string]float64{}
	families, err := testkit.Metrics(p.OpsURL + "/metrics")
	if err != nil {
		return out
	}
	for _, n := range names {
		out[n], _ = testkit.Value(families, n)
	}
	return out
}

// memory: scenario 3. The rooms are created and joined first (plain HTTP),
// then the gateway's RSS is read, 10,000 sockets (-sockets) open and stay
// idle, and it is read again. The joins go over a small shared pool: 10,000 keep-alive
// connections opened and closed before the first reading would leave freed
// memory in the baseline for the sockets to reuse, and an idle browser's
// keep-alive connection is closed by the gateway after its idle timeout
// anyway, so what an idle member costs is its socket.
func (b *bench) memory(ctx context.Context) error {
	s, err := b.start(ctx, nil, nil)
	if err != nil {
		return err
	}
	defer b.stop(s)
	gp := gatewayProc(s)
	gw, err := load.NewGateway(s.Gateways()[0], load.GatewayOptions{SharedConns: 64, Sources: load.DefaultSources})
	if err != nil {
		return err
	}
	fresh, _ := testkit.ResidentKiB(gp.Pid())
	rooms, err := load.CreateRooms(ctx, []*load.Gateway{gw}, b.sockets/2, 32)
	if err != nil {
		return err
	}
	names := []string{"go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines",
		"go_memstats_sys_bytes", "wisp_ws_connections"}
	time.Sleep(2 * time.Second)
	before, _ := testkit.ResidentKiB(gp.Pid())
	mBefore := goMetrics(gp, names...)
	started := time.Now()
	socks, err := load.Connect(ctx, rooms, 32, func(*load.Member, []byte) {})
	if err != nil {
		return err
	}
	defer socks.Close()
	connectTook := time.Since(started)
	time.Sleep(5 * time.Second)
	opened, _ := testkit.ResidentKiB(gp.Pid())
	// Then idle past the Go runtime's periodic GC (every 2 minutes when
	// nothing else triggers one) and some of its scavenging: the upgrades'
	// garbage is still counted 5 s after them, not minutes later.
	time.Sleep(memIdle - 5*time.Second)
	after, _ := testkit.ResidentKiB(gp.Pid())
	mAfter := goMetrics(gp, names...)
	n := float64(socks.Len())
	per := float64(after-before) * 1024 / n
	perOpened := float64(opened-before) * 1024 / n
	perHeap := (mAfter["go_memstats_heap_inuse_bytes"] - mBefore["go_memstats_heap_inuse_bytes"]) / n
	perStack := (mAfter["go_memstats_stack_inuse_bytes"] - mBefore["go_memstats_stack_inuse_bytes"]) / n
	goroutines := (mAfter["go_goroutines"] - mBefore["go_goroutines"]) / n
	b.logf("  gateway RSS fresh %d KiB, before %d KiB, 5 s after opening %.0f sockets %d KiB (%.0f B/conn), after %v idle %d KiB: %.0f B/conn (heap %.0f, stacks %.0f, %.2f goroutines/conn)",
		fresh, before, n, opened, perOpened, memIdle, after, per, perHeap, perStack, goroutines)
	var t strings.Builder
	t.WriteString("| | before | after | per connection |\n|---|---|---|---|\n")
	fmt.Fprintf(&t, "| VmRSS 5 s after opening them | %d KiB | %d KiB | %.1f KB |\n", before, opened, perOpened/1000)
	fmt.Fprintf(&t, "| VmRSS after %v idle | %d KiB | %d KiB | **%.1f KB** |\n", memIdle, before, after, per/1000)
	if len(mBefore) == len(names) && len(mAfter) == len(names) {
		fmt.Fprintf(&t, "| Go heap in use | %.1f MiB | %.1f MiB | %.1f KB |\n", mBefore["go_memstats_heap_inuse_bytes"]/(1<<20), mAfter["go_memstats_heap_inuse_bytes"]/(1<<20), perHeap/1000)
		fmt.Fprintf(&t, "| goroutine stacks | %.1f MiB | %.1f MiB | %.1f KB |\n", mBefore["go_memstats_stack_inuse_bytes"]/(1<<20), mAfter["go_memstats_stack_inuse_bytes"]/(1<<20), perStack/1000)
		fmt.Fprintf(&t, "| goroutines | %.0f | %.0f | %.2f |\n", mBefore["go_goroutines"], mAfter["go_goroutines"], goroutines)
		fmt.Fprintf(&t, "| hub connections | %.0f | %.0f | |\n", mBefore["wisp_ws_connections"], mAfter["wisp_ws_connections"])
	} else {
		t.WriteString("\n(The gateway's /metrics did not answer 200, so only RSS is shown.)\n")
	}
	b.section(fmt.Sprintf("3. Gateway memory per idle WebSocket at %s connections", thousands(b.sockets)),
		fmt.Sprintf("%d rooms are created and both members joined over HTTP (over 64 shared keep-alive connections, closed "+
			"before the reading: the gateway closes an idle browser's after its idle timeout anyway, so an idle member costs "+
			"its socket); then the gateway's VmRSS is read "+
			"(/proc/<pid>/status), %.0f WebSockets are opened (%v), VmRSS is read 5 s later and again after %v idle "+
			"(past the Go runtime's periodic GC; the Go figures are from then).\n\n", b.sockets/2, n, connectTook.Round(time.Millisecond), memIdle)+
			t.String()+fmt.Sprintf("\nThe freshly started gateway had %d KiB resident. KB = 1,000 bytes.\n", fresh))
	b.summary = append(b.summary, fmt.Sprintf("| gateway RSS per idle WebSocket at %s sockets | ≤ 6.6 KB (≤ 5 KB at 50,000) | **%.1f KB** after %v idle (%.1f KB 5 s after opening) |", thousands(b.sockets), per/1000, memIdle, perOpened/1000))
	return nil
}

// expiry: scenario 4. expiryRooms rooms are written straight into Redis
// the way the rooms service writes them, their deadlines spread over the
// next ten minutes (a 10-minute TTL's steady state); expiryReal real rooms
// are created through the API with a short TTL and watched by both members.
func (b *bench) expiry(ctx context.Context) error {
	s, err := b.start(ctx, map[string]string{"ROOM_TTL": expiryTTL.String()}, nil)
	if err != nil {
		return err
	}
	defer b.stop(s)
	opt, err := redis.ParseURL(s.RedisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	seedStart := time.Now()
	if err := seedRooms(ctx, rdb, expiryRooms, time.Now().Add(10*time.Second), 10*time.Minute); err != nil {
		return err
	}
	b.logf("  seeded %d rooms in %v", expiryRooms, time.Since(seedStart).Round(time.Millisecond))
	gw, err := load.NewGateway(s.Gateways()[0], load.GatewayOptions{Sources: load.DefaultSources})
	if err != nil {
		return err
	}
	rooms, err := load.CreateRooms(ctx, []*load.Gateway{gw}, expiryReal, 16)
	if err != nil {
		return err
	}
	defer load.CloseHTTP(rooms)
	socks, err := load.Connect(ctx, rooms, 16, func(m *load.Member, frame []byte) {
		if bytes.Contains(frame, []byte(`"event":"chat.destroy"`)) {
			m.DestroyedAt.CompareAndSwap(0, time.Now().UnixNano())
		}
	})
	if err != nil {
		return err
	}
	defer socks.Close()
	live := liveRooms(ctx, rdb)
	deadlines := make([]time.Time, len(rooms))
	var last time.Time
	for i, r := range rooms {
		ms, err := rdb.HGet(ctx, contract.RoomKey(r.ID), "deadline").Int64()
		if err != nil {
			return fmt.Errorf("deadline of %s: %w", r.ID, err)
		}
		deadlines[i] = time.UnixMilli(ms)
		if deadlines[i].After(last) {
			last = deadlines[i]
		}
	}
	b.logf("  %d live rooms; %d watched rooms end by %v", live, len(rooms), time.Until(last).Round(time.Second))
	before := sampleCPU()
	waitUntil := last.Add(10 * time.Second)
	for time.Now().Before(waitUntil) && ctx.Err() == nil {
		done := true
		for _, r := range rooms {
			for _, m := range r.Members {
				done = done && m.DestroyedAt.Load() != 0
			}
		}
		if done {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	use := cpuBetween(before, sampleCPU())
	var lags []time.Duration
	missing := 0
	for i, r := range rooms {
		for _, m := range r.Members {
			at := m.DestroyedAt.Load()
			if at == 0 {
				missing++
				continue
			}
			lags = append(lags, time.Unix(0, at).Sub(deadlines[i]))
		}
	}
	if len(lags) == 0 {
		return errors.New("no member received chat.destroy")
	}
	p := load.PercentilesOf(lags)
	expiredMeanwhile := live - liveRooms(ctx, rdb)
	b.logf("  expiry lag p50 %s ms p99 %s ms max %s ms, %d missing; CPU: %s", ms(p.P50), ms(p.P99), ms(p.Max), missing, use)
	b.section("4. Expiry lag with 100,000 live rooms",
		fmt.Sprintf("%d rooms are written into Redis with the key layout of contract/keys.go (deadline set entry, room hash, member, "+
			"one message), deadlines spread evenly over the next 10 minutes; %d real rooms are created through the API with "+
			"ROOM_TTL=%v and both members watch their WebSocket. Lag = the room's deadline (from its Redis hash) → "+
			"chat.destroy received by the member. %d rooms were live when the watched ones began to end; %d rooms expired "+
			"while they did.\n\n", expiryRooms, expiryReal, expiryTTL, live, expiredMeanwhile)+
			"| members | p50 ms | p90 ms | p99 ms | max ms | never told |\n|---|---|---|---|---|---|\n"+
			fmt.Sprintf("| %d | %s | %s | %s | %s | %d |\n", len(lags)+missing, ms(p.P50), ms(p.P90), ms(p.P99), ms(p.Max), missing)+
			fmt.Sprintf("\nCPU while waiting: %s.\n", use))
	b.summary = append(b.summary, fmt.Sprintf("| expiry lag p99 at 100,000 live rooms | ≤ 50 ms | **%s ms** (p50 %s; %d never told) |", ms(p.P99), ms(p.P50), missing))
	return nil
}

// seedRooms writes n rooms the way the rooms service leaves them (testkit's
// key layout: the deadline shard entry, then the room hash), each with a
// member and a message, deadlines spread evenly over [from, from+over).
func seedRooms(ctx context.Context, rdb *redis.Client, n int, from time.Time, over time.Duration) error {
	rooms := make([]testkit.Room, n)
	for i := range rooms {
		rooms[i] = testkit.Room{
			Deadline: from.Add(over * time.Duration(i) / time.Duration(n)),
			Tokens:   []string{contract.RandomID(32)},
			Messages: []string{`{"seq":1,"author":"m-0","id":"m1","sender":"a","text":"hi","timestamp":0}`},
		}
	}
	_, err := testkit.WriteRooms(ctx, rdb, rooms...)
	return err
}

// liveRooms counts the entries of every shard of the deadline set.
func liveRooms(ctx context.Context, rdb *redis.Client) int64 {
	var n int64
	for _, k := range contract.DeadlineShardKeys() {
		n += rdb.ZCard(ctx, k).Val()
	}
	return n
}

// create: scenario 5. createActors visitors in a closed loop each create a
// room and admit two new members through the room page, for createRun.
func (b *bench) create(ctx context.Context) error {
	s, err := b.start(ctx, nil, nil)
	if err != nil {
		return err
	}
	defer b.stop(s)
	gw, err := load.NewGateway(s.Gateways()[0], load.GatewayOptions{Sources: load.DefaultSources})
	if err != nil {
		return err
	}
	// Warm the services.
	warm, err := load.CreateRooms(ctx, []*load.Gateway{gw}, createActors, createActors)
	if err != nil {
		return err
	}
	load.CloseHTTP(warm)
	var (
		mu    sync.Mutex
		took  []time.Duration
		fails atomic.Int64
		wg    sync.WaitGroup
	)
	b.waitQuiet(ctx)
	before := sampleCPU()
	end := time.Now().Add(createRun)
	for range createActors {
		wg.Go(func() {
			c := gw.NewClient() // each visitor its own keep-alive connection
			defer c.CloseIdle()
			var mine []time.Duration
			for time.Now().Before(end) && ctx.Err() == nil {
				t := time.Now()
				id, err := c.CreateRoom()
				if err == nil {
					_, err = c.Join(id)
				}
				if err == nil {
					_, err = c.Join(id)
				}
				if err != nil {
					fails.Add(1)
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			took = append(took, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	use := cpuBetween(before, sampleCPU())
	if len(took) == 0 {
		return errors.New("no room was created")
	}
	p := load.PercentilesOf(took)
	rate := float64(len(took)) / use.wall.Seconds()
	b.logf("  %.0f rooms created + 2 joins per second; p50 %s ms p99 %s ms; %d failed; CPU: %s", rate, ms(p.P50), ms(p.P99), fails.Load(), use)
	b.section("5. Room creation + 2 joins per second",
		fmt.Sprintf("%d visitors, each on its own keep-alive connection, in a closed loop for %v: each creates a room (POST /api/room/create) and two new members "+
			"open its page (GET /room/{id}), each getting its cookie.\n\n", createActors, createRun)+
			"| rooms + 2 joins per second | p50 ms | p99 ms | max ms | failed |\n|---|---|---|---|---|\n"+
			fmt.Sprintf("| **%.0f** | %s | %s | %s | %d |\n", rate, ms(p.P50), ms(p.P99), ms(p.Max), fails.Load())+
			fmt.Sprintf("\nCPU: %s.\n", use))
	b.summary = append(b.summary, fmt.Sprintf("| room creation + 2 joins per second | ≥ 8,000/s | **%.0f/s** (p99 %s ms) |", rate, ms(p.P99)))
	return nil
}

// thousands writes n with a comma between each group of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
