package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/redis/go-redis/v9"

	"wisp/contract"
	"wisp/services/expiry/internal/expirytest"
	"wisp/testkit"
)

// infra is one Redis and one NATS shared by every replica of a test.
type infra struct {
	redis *testkit.Redis
	rdb   *redis.Client
	nats  *server.Server
	rec   *expirytest.Recorder
}

func startInfra(tb testing.TB) *infra {
	tb.Helper()
	r := testkit.StartRedis(tb)
	ns := testkit.StartNATS(tb)
	return &infra{redis: r, rdb: r.Client(tb), nats: ns, rec: expirytest.Record(tb, testkit.Connect(tb, ns))}
}

// start runs one expiry replica in-process and waits until it is ready.
func (in *infra) start(tb testing.TB, env ...string) *testkit.Running {
	tb.Helper()
	vars := map[string]string{"REDIS_URL": in.redis.URL, "NATS_URL": in.nats.ClientURL()}
	for i := 0; i+1 < len(env); i += 2 {
		vars[env[i]] = env[i+1]
	}
	return testkit.StartService(tb, run, vars)
}

// fence seeds a room due shortly and waits for its announcement: by then
// every replica has swept again, so a duplicate of anything announced
// before would have shown up.
func (in *infra) fence(tb testing.TB) {
	tb.Helper()
	id := expirytest.MustSeedRoom(tb, in.rdb, time.Now().Add(500*time.Millisecond))
	in.rec.WaitAll(tb, []string{id}, 10*time.Second)
}

// metric reads one sample of s's /metrics, e.g. `wisp_expiry_rooms_total{path="event"}`.
func metric(tb testing.TB, s *testkit.Running, sample string) float64 {
	tb.Helper()
	resp, err := http.Get(s.OpsURL + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return f
		}
	}
	return 0
}

func TestRunServesAndStopsCleanly(t *testing.T) {
	in := startInfra(t)
	s := in.start(t, "SWEEP_INTERVAL", "100ms")
	if err := s.Stop(t, 10*time.Second); err != nil {
		t.Fatalf("run returned %v", err)
	}
	logs := s.Logs()
	for _, want := range []string{`"sweep_interval":"100ms"`, `"msg":"keyspace expired events are on"`,
		`"msg":"nats drained"`, `"msg":"redis closed"`, `"msg":"stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

func TestConfigRejectsBadValues(t *testing.T) {
	env := map[string]string{"SWEEP_INTERVAL": "-1s", "REDIS_URL": "http://x", "LOG_LEVEL": "loud"}
	_, err := loadConfig(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, key := range []string{"SWEEP_INTERVAL", "REDIS_URL", "LOG_LEVEL"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
	c, err := loadConfig(func(string) string { return "" })
	if err != nil || c.SweepInterval != 250*time.Millisecond {
		t.Fatalf("default sweep interval = %v, %v; want 250ms", c.SweepInterval, err)
	}
}

// TestExpiredRoomAnnouncedOnceWithItsKeysGone: a room past its deadline
// gets exactly one chat.destroy, reason expired, and none of its keys or
// its deadline entry outlive it.
func TestExpiredRoomAnnouncedOnceWithItsKeysGone(t *testing.T) {
	in := startInfra(t)
	in.start(t)
	id := expirytest.MustSeedRoom(t, in.rdb, time.Now().Add(300*time.Millisecond))
	in.rec.WaitAll(t, []string{id}, 5*time.Second)
	if n := expirytest.KeysLeft(t, in.rdb, id); n != 0 {
		t.Fatalf("%d keys of the room left after its announcement", n)
	}
	if err := in.rdb.ZScore(context.Background(), contract.DeadlinesKey, id).Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("deadline entry left: %v", err)
	}
	in.fence(t)
	if got := in.rec.Reasons(id); !slices.Equal(got, []string{contract.ReasonExpired}) {
		t.Fatalf("room got %v, want one %q", got, contract.ReasonExpired)
	}
	if bad := in.rec.Bad(); len(bad) > 0 {
		t.Fatalf("malformed events: %v", bad)
	}
}

// TestReplicasAnnounceEachRoomExactlyOnce: three replicas on one Redis and
// one NATS, 300 rooms ending within a second: every room announced once.
func TestReplicasAnnounceEachRoomExactlyOnce(t *testing.T) {
	in := startInfra(t)
	for range 3 {
		in.start(t)
	}
	deadlines := expirytest.Spread(300, time.Now().Add(300*time.Millisecond), time.Second)
	ids := expirytest.MustSeedRooms(t, in.rdb, deadlines...)
	in.rec.WaitAll(t, ids, 10*time.Second)
	in.fence(t)
	if d := in.rec.Duplicates(); d != 0 {
		t.Fatalf("%d duplicate announcements", d)
	}
	assertAllGone(t, in)
	t.Logf("300 rooms, 3 replicas: %s", lagFigures(in.rec, ids, deadlines))
}

// TestCatchUpAfterDowntime: rooms whose deadlines passed over the last
// minute while no expiry ran (Redis expired their keys, the events went
// nowhere) are all announced as soon as a replica starts.
func TestCatchUpAfterDowntime(t *testing.T) {
	in := startInfra(t)
	now := time.Now()
	deadlines := expirytest.Spread(300, now.Add(-time.Minute), time.Minute)
	ids := expirytest.MustSeedRooms(t, in.rdb, deadlines...)
	started := time.Now()
	in.start(t, "SWEEP_INTERVAL", "1h") // only the start-up sweep can find them
	in.rec.WaitAll(t, ids, 10*time.Second)
	var last time.Time
	for _, id := range ids {
		if at, _ := in.rec.ReceivedAt(id); at.After(last) {
			last = at
		}
	}
	t.Logf("300 overdue rooms announced within %v of the replica's start", last.Sub(started).Round(time.Millisecond))
	assertAllGone(t, in)
}

// destroy does what the rooms service's destroy does: delete the room's
// keys, then claim it, and announce only if the claim was won.
func destroy(t *testing.T, rdb *redis.Client, pub func(subj string, data []byte) error, id string) {
	ctx := context.Background()
	if err := rdb.Del(ctx, contract.RoomKey(id), contract.MembersKey(id), contract.MessagesKey(id)).Err(); err != nil {
		t.Error(err)
		return
	}
	n, err := rdb.ZRem(ctx, contract.DeadlinesKey, id).Result()
	if err != nil {
		t.Error(err)
		return
	}
	if n == 1 {
		if err := pub(contract.DestroySubject(id), contract.DestroyEvent(contract.ReasonDestroyed)); err != nil {
			t.Error(err)
		}
	}
}

// TestDestroyRacingExpiryAnnouncesOnce: a room destroyed as it expires gets
// one chat.destroy, whichever side wins, never two.
func TestDestroyRacingExpiryAnnouncesOnce(t *testing.T) {
	in := startInfra(t)
	nc := testkit.Connect(t, in.nats)

	// Destroyed first, while expiry is down: expiry must stay silent.
	past := time.Now().Add(-time.Second)
	destroyed, control := expirytest.MustSeedRoom(t, in.rdb, past), expirytest.MustSeedRoom(t, in.rdb, past)
	destroy(t, in.rdb, nc.Publish, destroyed)
	for range 3 {
		in.start(t)
	}
	in.rec.WaitAll(t, []string{destroyed, control}, 5*time.Second)

	// Destroyed at the very moment of the deadline, against three replicas.
	deadlines := expirytest.Spread(200, time.Now().Add(300*time.Millisecond), 500*time.Millisecond)
	ids := expirytest.MustSeedRooms(t, in.rdb, deadlines...)
	for i, id := range ids {
		time.Sleep(time.Until(deadlines[i])) // meet the deadline, not a guess
		destroy(t, in.rdb, nc.Publish, id)
	}
	in.rec.WaitAll(t, ids, 10*time.Second)
	in.fence(t)

	if got := in.rec.Reasons(destroyed); !slices.Equal(got, []string{contract.ReasonDestroyed}) {
		t.Fatalf("room destroyed before expiry got %v", got)
	}
	if got := in.rec.Reasons(control); !slices.Equal(got, []string{contract.ReasonExpired}) {
		t.Fatalf("control room got %v", got)
	}
	byReason := map[string]int{}
	for _, id := range ids {
		rs := in.rec.Reasons(id)
		if len(rs) != 1 {
			t.Fatalf("room %s got %v", id, rs)
		}
		byReason[rs[0]]++
	}
	t.Logf("200 rooms destroyed at their deadline: %v", byReason)
	assertAllGone(t, in)
}

// TestKeyspaceEventAloneFinishesRoom: with sweeps an hour apart, the
// expired event Redis fires for the room key is what finishes the room.
func TestKeyspaceEventAloneFinishesRoom(t *testing.T) {
	in := startInfra(t)
	s := in.start(t, "SWEEP_INTERVAL", "1h")
	deadline := time.Now().Add(300 * time.Millisecond) // not due at the start-up sweeps
	id := expirytest.MustSeedRoom(t, in.rdb, deadline)
	time.Sleep(time.Until(deadline))
	testkit.Eventually(t, 5*time.Second, func() error {
		// Reading the key past its TTL makes Redis delete it and fire the
		// event now, as the active expiry cycle would eventually.
		in.rdb.Exists(context.Background(), contract.RoomKey(id))
		if len(in.rec.Reasons(id)) == 0 {
			return errors.New("room not announced")
		}
		return nil
	})
	if got := metric(t, s, `wisp_expiry_rooms_total{path="event"}`); got != 1 {
		t.Fatalf(`wisp_expiry_rooms_total{path="event"} = %v, want 1`, got)
	}
	if got := metric(t, s, `wisp_expiry_rooms_total{path="sweep"}`); got != 0 {
		t.Fatalf(`wisp_expiry_rooms_total{path="sweep"} = %v, want 0`, got)
	}
	if n := expirytest.KeysLeft(t, in.rdb, id); n != 0 {
		t.Fatalf("%d keys left", n)
	}
}

// TestNotReadyWhenConfigRefused: on a Redis that refuses CONFIG and fires
// no expired events, /readyz says so and the log says what to set.
func TestNotReadyWhenConfigRefused(t *testing.T) {
	url := expirytest.StartRedis(t, "--rename-command", "CONFIG", "", "--notify-keyspace-events", "")
	ns := testkit.StartNATS(t)
	port, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	env := map[string]string{"REDIS_URL": url, "NATS_URL": ns.ClientURL(), "OPS_ADDR": addr, "SHUTDOWN_TIMEOUT": "5s"}
	logs := &testkit.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, func(k string) string { return env[k] }, logs) }()
	defer cancel()

	testkit.Eventually(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "notify-keyspace-events") {
			return fmt.Errorf("readyz %d %s", resp.StatusCode, body)
		}
		return nil
	})
	if !strings.Contains(logs.String(), "keyspace expired events are NOT on") {
		t.Fatalf("no warning line:\n%s", logs)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}
}

// TestSurvivesRedisOutage: sweeps fail while Redis is down, are counted,
// and resume when it is back; rooms due then are announced.
func TestSurvivesRedisOutage(t *testing.T) {
	in := startInfra(t)
	s := in.start(t, "SWEEP_INTERVAL", "50ms")
	in.redis.Stop()
	testkit.Eventually(t, 10*time.Second, func() error {
		if metric(t, s, `wisp_expiry_errors_total{op="due"}`) == 0 {
			return errors.New("no failed sweep counted")
		}
		return nil
	})
	in.redis.Restart(t) // empty, as a memory-only Redis comes back
	ids := expirytest.MustSeedRooms(t, in.rdb, expirytest.Spread(50, time.Now().Add(-time.Second), time.Second)...)
	in.rec.WaitAll(t, ids, 10*time.Second)
	testkit.Eventually(t, 10*time.Second, s.Ready)
	if logs := s.Logs(); !strings.Contains(logs, `"msg":"sweep failed; retrying"`) || !strings.Contains(logs, `"msg":"sweep recovered"`) {
		t.Fatalf("outage not logged once each way:\n%s", logs)
	}
}

func assertAllGone(t *testing.T, in *infra) {
	t.Helper()
	ctx := context.Background()
	if n := in.rdb.ZCard(ctx, contract.DeadlinesKey).Val(); n != 0 {
		t.Fatalf("%d rooms left in the deadline set", n)
	}
	if keys := in.rdb.Keys(ctx, "wisp:room:*").Val(); len(keys) != 0 {
		t.Fatalf("%d room keys left, e.g. %s", len(keys), keys[0])
	}
	if bad := in.rec.Bad(); len(bad) > 0 {
		t.Fatalf("malformed events: %v", bad)
	}
}

type lagStats struct {
	p50, p99, max time.Duration
	missed        int
}

// lagStatsOf measures deadline → chat.destroy received on NATS.
func lagStatsOf(rec *expirytest.Recorder, ids []string, deadlines []time.Time) lagStats {
	var lags []time.Duration
	for i, id := range ids {
		if at, ok := rec.ReceivedAt(id); ok {
			lags = append(lags, at.Sub(deadlines[i]))
		}
	}
	st := lagStats{missed: len(ids) - len(lags)}
	if len(lags) == 0 {
		return st
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	q := func(p float64) time.Duration { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
	st.p50, st.p99, st.max = q(.50), q(.99), lags[len(lags)-1]
	return st
}

// lagFigures formats lagStatsOf for a log line.
func lagFigures(rec *expirytest.Recorder, ids []string, deadlines []time.Time) string {
	st := lagStatsOf(rec, ids, deadlines)
	return fmt.Sprintf("lag p50 %v p99 %v max %v; duplicates %d; missed %d",
		st.p50.Round(time.Millisecond), st.p99.Round(time.Millisecond), st.max.Round(time.Millisecond),
		rec.Duplicates(), st.missed)
}
