package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"wisp/bench/load"
	"wisp/contract"
	"wisp/stack"
)

// The fixed scenario set. Sizes are bounded so that `make bench` ends in
// about ten minutes on a 2-core machine.
const (
	msgRooms     = 500
	msgSize      = 64
	latencyRate  = 1000
	latencyRun   = 20 * time.Second
	latencyWarm  = 3 * time.Second
	sweepRun     = 10 * time.Second
	sweepWarm    = 2 * time.Second
	sweepP99     = 50 * time.Millisecond
	sweepFrom    = 2000
	sweepStep    = 2000
	sweepMax     = 30000
	memConns     = 10000
	expiryRooms  = 100000
	expiryReal   = 300
	expiryTTL    = 20 * time.Second
	createRun    = 10 * time.Second
	createActors = 32
)

// playRun runs the generator and the CPU accounting of its measured part.
func (b *bench) playRun(ctx context.Context, cfg load.Config) (load.Result, cpuUse, error) {
	var before cpuSample
	var use cpuUse
	cfg.Mark = func(measuring bool) {
		if measuring {
			before = sampleCPU()
		} else if !before.at.IsZero() {
			use = cpuBetween(before, sampleCPU())
		}
	}
	cfg.Log = b.out
	res, err := load.Run(ctx, cfg)
	if err == nil {
		b.logf("%s\n  CPU: %s", res, use)
	}
	return res, use, err
}

func resultHeader() string {
	return "| rooms | target msgs/s | achieved msgs/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | POST p99 ms | lost | duplicates | errors |\n" +
		"|---|---|---|---|---|---|---|---|---|---|---|---|\n"
}

func resultRow(r load.Result) string {
	errs := "0"
	if n := r.ErrorCount(); n > 0 {
		errs = fmt.Sprintf("%d %v", n, r.Errors)
	}
	return fmt.Sprintf("| %d | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %d | %d | %s |\n",
		r.Rooms, r.Rate, r.Achieved, ms(r.Latency.P50), ms(r.Latency.P90), ms(r.Latency.P99), ms(r.Latency.P999),
		ms(r.Latency.Max), ms(r.Reply.P99), r.Lost, r.Duplicates, errs)
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) }

// latency: scenario 1.
func (b *bench) latency(ctx context.Context) error {
	s, err := b.start(ctx, nil, nil)
	if err != nil {
		return err
	}
	defer b.stop(s)
	b.waitQuiet(ctx)
	res, use, err := b.playRun(ctx, load.Config{Gateways: s.Gateways(), Rooms: msgRooms, Rate: latencyRate,
		Duration: latencyRun, Warmup: latencyWarm, Size: msgSize})
	if err != nil {
		return err
	}
	b.section("1. Latency at 1,000 messages/s over 500 rooms",
		fmt.Sprintf("1,000 members each post one %d-byte message a second for %v (after %v of warm-up).\n\n", msgSize, latencyRun, latencyWarm)+
			resultHeader()+resultRow(res)+
			fmt.Sprintf("\nGenerator delay (due → POST started) p99 %s ms. CPU: %s.\n", ms(res.SenderLag.P99), use))
	b.summary = append(b.summary, fmt.Sprintf("| p99 latency at 1,000 msgs/s, 500 rooms | ≤ 10 ms | **%s ms** (p50 %s, max %s; lost %d) |",
		ms(res.Latency.P99), ms(res.Latency.P50), ms(res.Latency.Max), res.Lost))
	return nil
}

// sweep: scenario 2. Rates go up by sweepStep while the run is sustained
// (p99 < 50 ms, nothing lost, no errors); a failed rate is tried a second
// time before the sweep stops, then the midpoint is tried once.
func (b *bench) sweep(ctx context.Context) error {
	s, err := b.start(ctx, nil, nil)
	if err != nil {
		return err
	}
	defer b.stop(s)
	var rows strings.Builder
	best, failed := 0.0, 0.0
	try := func(rate float64) (bool, error) {
		b.waitQuiet(ctx)
		res, use, err := b.playRun(ctx, load.Config{Gateways: s.Gateways(), Rooms: msgRooms, Rate: rate,
			Duration: sweepRun, Warmup: sweepWarm, Size: msgSize})
		if err != nil {
			return false, err
		}
		ok := res.Sustained(sweepP99)
		verdict := "no"
		if ok {
			verdict = "**yes**"
		} else if other := use.total - use.ours; other >= quietLimit {
			verdict = fmt.Sprintf("no (other processes used %.2f cores)", other)
		}
		row := strings.TrimSuffix(resultRow(res), "\n")
		fmt.Fprintf(&rows, "%s %s | %s |\n", row, verdict, use)
		settle(ctx)
		return ok, nil
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
	header := strings.Replace(strings.Replace(resultHeader(), " errors |\n", " errors | sustained | CPU (cores) |\n", 1), "|---|\n", "|---|---|---|\n", 1)
	b.section("2. Highest sustained rate (p99 < 50 ms, no loss)",
		fmt.Sprintf("%d rooms, %d-byte messages, each rate for %v after %v of warm-up; one stack for the whole sweep, fresh rooms per rate. A rate that fails is tried twice. Each run waits for the machine to be quiet (other processes under %.1f core) first.\n\n",
			msgRooms, msgSize, sweepRun, sweepWarm, quietLimit)+header+rows.String()+
			fmt.Sprintf("\n**Highest sustained rate: %.0f messages/s.**\n", best))
	b.summary = append(b.summary, fmt.Sprintf("| highest sustained rate (p99 < 50 ms, no loss) | ≥ 10,000 msgs/s | **%.0f msgs/s** |", best))
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

func gatewayProc(s *stack.Stack) *stack.Proc {
	for _, p := range s.Live() {
		if p.Service == "gateway" {
			return p
		}
	}
	return nil
}

// goMetrics reads the named Prometheus gauges of a process.
func goMetrics(p *stack.Proc, names ...string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(p.OpsURL + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return out
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && slices.Contains(names, f[0]) {
			v, _ := strconv.ParseFloat(f[1], 64)
			out[f[0]] = v
		}
	}
	return out
}

// memory: scenario 3. The rooms are created and joined first (plain HTTP),
// then the gateway's RSS is read, 10,000 sockets open and stay idle, and
// it is read again.
func (b *bench) memory(ctx context.Context) error {
	s, err := b.start(ctx, nil, nil)
	if err != nil {
		return err
	}
	defer b.stop(s)
	gp := gatewayProc(s)
	gw, err := load.NewGateway(s.Gateways()[0], 64)
	if err != nil {
		return err
	}
	fresh, _ := rssKB(gp.Pid())
	rooms, err := load.CreateRooms(ctx, []*load.Gateway{gw}, memConns/2, 32)
	if err != nil {
		return err
	}
	names := []string{"go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines",
		"go_memstats_sys_bytes", "wisp_ws_connections"}
	time.Sleep(2 * time.Second)
	before, _ := rssKB(gp.Pid())
	mBefore := goMetrics(gp, names...)
	started := time.Now()
	socks, err := load.Connect(ctx, rooms, 32, func(*load.Member, []byte) {})
	if err != nil {
		return err
	}
	defer socks.Close()
	connectTook := time.Since(started)
	time.Sleep(5 * time.Second) // idle: let the upgrade garbage go
	after, _ := rssKB(gp.Pid())
	mAfter := goMetrics(gp, names...)
	n := float64(socks.Len())
	per := float64(after-before) * 1024 / n
	perHeap := (mAfter["go_memstats_heap_inuse_bytes"] - mBefore["go_memstats_heap_inuse_bytes"]) / n
	perStack := (mAfter["go_memstats_stack_inuse_bytes"] - mBefore["go_memstats_stack_inuse_bytes"]) / n
	goroutines := (mAfter["go_goroutines"] - mBefore["go_goroutines"]) / n
	b.logf("  gateway RSS fresh %d KiB, before %d KiB, after %d KiB with %.0f sockets: %.0f B/conn (heap %.0f, stacks %.0f, %.2f goroutines/conn)",
		fresh, before, after, n, per, perHeap, perStack, goroutines)
	var t strings.Builder
	t.WriteString("| | before | after | per connection |\n|---|---|---|---|\n")
	fmt.Fprintf(&t, "| VmRSS | %d KiB | %d KiB | **%.1f KB** |\n", before, after, per/1000)
	if len(mBefore) == len(names) && len(mAfter) == len(names) {
		fmt.Fprintf(&t, "| Go heap in use | %.1f MiB | %.1f MiB | %.1f KB |\n", mBefore["go_memstats_heap_inuse_bytes"]/(1<<20), mAfter["go_memstats_heap_inuse_bytes"]/(1<<20), perHeap/1000)
		fmt.Fprintf(&t, "| goroutine stacks | %.1f MiB | %.1f MiB | %.1f KB |\n", mBefore["go_memstats_stack_inuse_bytes"]/(1<<20), mAfter["go_memstats_stack_inuse_bytes"]/(1<<20), perStack/1000)
		fmt.Fprintf(&t, "| goroutines | %.0f | %.0f | %.2f |\n", mBefore["go_goroutines"], mAfter["go_goroutines"], goroutines)
		fmt.Fprintf(&t, "| hub connections | %.0f | %.0f | |\n", mBefore["wisp_ws_connections"], mAfter["wisp_ws_connections"])
	} else {
		t.WriteString("\n(The gateway's /metrics did not answer 200, so only RSS is shown.)\n")
	}
	b.section("3. Gateway memory per idle WebSocket at 10,000 connections",
		fmt.Sprintf("%d rooms are created and both members joined over HTTP; then the gateway's VmRSS is read "+
			"(/proc/<pid>/status), %.0f WebSockets are opened (%v) and left idle for 5 s, and VmRSS is read again.\n\n", memConns/2, n, connectTook.Round(time.Millisecond))+
			t.String()+fmt.Sprintf("\nThe freshly started gateway had %d KiB resident. KB = 1,000 bytes.\n", fresh))
	b.summary = append(b.summary, fmt.Sprintf("| gateway memory per idle WebSocket at 10,000 connections | ≤ 12 KB | **%.1f KB** |", per/1000))
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
	gw, err := load.NewGateway(s.Gateways()[0], 64)
	if err != nil {
		return err
	}
	rooms, err := load.CreateRooms(ctx, []*load.Gateway{gw}, expiryReal, 16)
	if err != nil {
		return err
	}
	socks, err := load.Connect(ctx, rooms, 16, func(m *load.Member, frame []byte) {
		if bytes.Contains(frame, []byte(`"event":"chat.destroy"`)) {
			m.DestroyedAt.CompareAndSwap(0, time.Now().UnixNano())
		}
	})
	if err != nil {
		return err
	}
	defer socks.Close()
	live := rdb.ZCard(ctx, contract.DeadlinesKey).Val()
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
	slices.Sort(lags)
	if len(lags) == 0 {
		return errors.New("no member received chat.destroy")
	}
	q := func(p float64) time.Duration { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
	expiredMeanwhile := live - rdb.ZCard(ctx, contract.DeadlinesKey).Val()
	b.logf("  expiry lag p50 %s ms p99 %s ms max %s ms, %d missing; CPU: %s", ms(q(.5)), ms(q(.99)), ms(lags[len(lags)-1]), missing, use)
	b.section("4. Expiry lag with 100,000 live rooms",
		fmt.Sprintf("%d rooms are written into Redis with the key layout of contract/keys.go (deadline set entry, room hash, member, "+
			"one message), deadlines spread evenly over the next 10 minutes; %d real rooms are created through the API with "+
			"ROOM_TTL=%v and both members watch their WebSocket. Lag = the room's deadline (from its Redis hash) → "+
			"chat.destroy received by the member. %d rooms were live when the watched ones began to end; %d rooms expired "+
			"while they did.\n\n", expiryRooms, expiryReal, expiryTTL, live, expiredMeanwhile)+
			"| members | p50 ms | p90 ms | p99 ms | max ms | never told |\n|---|---|---|---|---|---|\n"+
			fmt.Sprintf("| %d | %s | %s | %s | %s | %d |\n", len(lags)+missing, ms(q(.5)), ms(q(.9)), ms(q(.99)), ms(lags[len(lags)-1]), missing)+
			fmt.Sprintf("\nCPU while waiting: %s.\n", use))
	b.summary = append(b.summary, fmt.Sprintf("| expiry lag p99 at 100,000 live rooms | ≤ 1 s | **%s ms** (p50 %s; %d never told) |", ms(q(.99)), ms(q(.5)), missing))
	return nil
}

// seedRooms writes n rooms the way the rooms service does (deadline entry
// first, then the room hash with PEXPIREAT), with a member and a message,
// deadlines spread evenly over [from, from+over).
func seedRooms(ctx context.Context, rdb *redis.Client, n int, from time.Time, over time.Duration) error {
	const chunk = 1000
	for start := 0; start < n; start += chunk {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := start; i < min(start+chunk, n); i++ {
				id := contract.RandomID(contract.RoomIDLen)
				d := from.Add(over * time.Duration(i) / time.Duration(n))
				ms := d.UnixMilli()
				p.ZAdd(ctx, contract.DeadlinesKey, redis.Z{Score: float64(ms), Member: id})
				p.HSet(ctx, contract.RoomKey(id), "createdAt", time.Now().UnixMilli(), "deadline", ms)
				p.PExpireAt(ctx, contract.RoomKey(id), d)
				p.HSet(ctx, contract.MembersKey(id), contract.TokenHash(id+"-a"), "marker-a")
				p.PExpireAt(ctx, contract.MembersKey(id), d)
				p.RPush(ctx, contract.MessagesKey(id), `{"seq":1,"author":"marker-a","id":"m1","sender":"a","text":"hi","timestamp":0,"roomId":"`+id+`"}`)
				p.PExpireAt(ctx, contract.MessagesKey(id), d)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("seed rooms: %w", err)
		}
	}
	return nil
}

// create: scenario 5. createActors visitors in a closed loop each create a
// room and admit two new members through the room page, for createRun.
func (b *bench) create(ctx context.Context) error {
	s, err := b.start(ctx, nil, nil)
	if err != nil {
		return err
	}
	defer b.stop(s)
	gw, err := load.NewGateway(s.Gateways()[0], createActors*2)
	if err != nil {
		return err
	}
	// Warm the connection pool and the services.
	if _, err := load.CreateRooms(ctx, []*load.Gateway{gw}, createActors, createActors); err != nil {
		return err
	}
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
			var mine []time.Duration
			for time.Now().Before(end) && ctx.Err() == nil {
				t := time.Now()
				id, err := gw.CreateRoom()
				if err == nil {
					_, err = gw.Join(id)
				}
				if err == nil {
					_, err = gw.Join(id)
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
	slices.Sort(took)
	q := func(p float64) time.Duration { return took[min(len(took)-1, int(p*float64(len(took))))] }
	rate := float64(len(took)) / use.wall.Seconds()
	b.logf("  %.0f rooms created + 2 joins per second; p50 %s ms p99 %s ms; %d failed; CPU: %s", rate, ms(q(.5)), ms(q(.99)), fails.Load(), use)
	b.section("5. Room creation + 2 joins per second",
		fmt.Sprintf("%d visitors in a closed loop for %v: each creates a room (POST /api/room/create) and two new members "+
			"open its page (GET /room/{id}), each getting its cookie.\n\n", createActors, createRun)+
			"| rooms + 2 joins per second | p50 ms | p99 ms | max ms | failed |\n|---|---|---|---|---|\n"+
			fmt.Sprintf("| **%.0f** | %s | %s | %s | %d |\n", rate, ms(q(.5)), ms(q(.99)), ms(took[len(took)-1]), fails.Load())+
			fmt.Sprintf("\nCPU: %s.\n", use))
	b.summary = append(b.summary, fmt.Sprintf("| room creation + 2 joins per second | — | **%.0f/s** (p99 %s ms) |", rate, ms(q(.99))))
	return nil
}
