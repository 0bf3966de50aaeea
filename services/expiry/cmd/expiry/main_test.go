package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/redis/go-redis/v9"

	"wisp/contract"
	"wisp/services/expiry/internal/expirytest"
	"wisp/services/expiry/internal/redisstore"
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

// metric reads one sample of s's /metrics: name's with the given labels
// (name, value pairs), 0 when there is none yet.
func metric(tb testing.TB, s *testkit.Running, name string, labels ...string) float64 {
	tb.Helper()
	families, err := testkit.Metrics(s.OpsURL + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	v, _ := testkit.Value(families, name, labels...)
	return v
}

func TestRunServesAndStopsCleanly(t *testing.T) {
	in := startInfra(t)
	s := in.start(t, "SWEEP_INTERVAL", "100ms")
	if err := s.Stop(t, 10*time.Second); err != nil {
		t.Fatalf("run returned %v", err)
	}
	logs := s.Logs()
	for _, want := range []string{`"sweep_interval":"100ms"`,
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
	if err := in.rdb.ZScore(context.Background(), contract.DeadlinesKeyOf(id), id).Err(); !errors.Is(err, redis.Nil) {
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

// TestEachPathEndsARoomOnItsOwn: with sweeps an hour apart, a room is
// ended when its deadline falls (the timer), and a room whose key Redis
// expired is ended by the keyspace event even when its deadline entry
// says later (the event path on its own).
func TestEachPathEndsARoomOnItsOwn(t *testing.T) {
	in := startInfra(t)
	ctx := context.Background()
	// Seeded before the replica starts, as any room exists an interval
	// before its deadline; its key outlives the deadline, so no event fires.
	deadline := time.Now().Add(1500 * time.Millisecond)
	timed := expirytest.MustSeedRoom(t, in.rdb, deadline)
	in.rdb.PExpire(ctx, contract.RoomKey(timed), time.Hour)
	s := in.start(t, "SWEEP_INTERVAL", "1h")
	in.rec.WaitAll(t, []string{timed}, 5*time.Second)
	if at, _ := in.rec.ReceivedAt(timed); at.Before(deadline) || at.Sub(deadline) > time.Second {
		t.Fatalf("room announced %v after its deadline; want within a second", at.Sub(deadline))
	}

	evented := expirytest.MustSeedRoom(t, in.rdb, time.Now().Add(time.Hour))
	in.rdb.PExpire(ctx, contract.RoomKey(evented), 50*time.Millisecond)
	testkit.Eventually(t, 5*time.Second, func() error {
		// Reading the key past its TTL makes Redis expire it, and fire the event, now.
		if in.rdb.Exists(ctx, contract.RoomKey(evented)).Val() != 0 {
			return errors.New("room key not expired yet")
		}
		return nil
	})
	in.rec.WaitAll(t, []string{evented}, 5*time.Second)
	// The count follows the announcement, which may be heard first.
	testkit.Eventually(t, 2*time.Second, func() error {
		if got := metric(t, s, "wisp_expiry_rooms_total", "path", "event"); got != 1 {
			return fmt.Errorf("rooms ended via an event = %v, want 1", got)
		}
		if got := metric(t, s, "wisp_expiry_rooms_total", "path", "sweep"); got != 1 {
			return fmt.Errorf("rooms ended via the deadline set = %v, want 1", got)
		}
		return nil
	})
	for _, id := range []string{timed, evented} {
		if got := in.rec.Reasons(id); !slices.Equal(got, []string{contract.ReasonExpired}) {
			t.Fatalf("room %s got %v", id, got)
		}
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

// destroy does what the rooms service's destroy does: claim the room,
// delete its keys, and announce only if the claim was won.
func destroy(t *testing.T, rdb *redis.Client, pub func(subj string, data []byte) error, id string) {
	if !testkit.DestroyRoom(t, rdb, id, time.Minute) {
		return
	}
	if err := pub(contract.DestroySubject(id), contract.DestroyEvent(contract.ReasonDestroyed)); err != nil {
		t.Error(err)
	}
	testkit.EndAnnounced(t, rdb, contract.ReasonDestroyed, id)
}

// TestEndOfADeadClaimerIsAnnouncedWithinItsLease: an expiry replica that
// claimed rooms, and a rooms replica that claimed a destroyed one, both die
// before announcing (the claims are made and nothing else); a live expiry
// replica announces each end, with its own reason, once the lease runs out.
func TestEndOfADeadClaimerIsAnnouncedWithinItsLease(t *testing.T) {
	in := startInfra(t)
	const lease, sweep = time.Second, 100 * time.Millisecond
	in.start(t, "ANNOUNCE_LEASE", lease.String(), "SWEEP_INTERVAL", sweep.String())
	ctx := context.Background()

	// The dead expiry replica claims rooms that are not yet due (a claim
	// does not look at the deadline), so the live one cannot get there first.
	expired := expirytest.MustSeedRooms(t, in.rdb, expirytest.Spread(5, time.Now().Add(time.Hour), time.Second)...)
	claimedAt := time.Now()
	dead := redisstore.NewRooms(in.rdb)
	if claimed, err := dead.Claim(ctx, expired, lease); err != nil || len(claimed) != len(expired) {
		t.Fatalf("the doomed replica's claim = %v, %v", claimed, err)
	}
	destroyed := expirytest.MustSeedRoom(t, in.rdb, time.Now().Add(time.Hour))
	if !testkit.DestroyRoom(t, in.rdb, destroyed, lease) {
		t.Fatal("the doomed rooms replica did not win its claim")
	}

	all := append([]string{destroyed}, expired...)
	in.rec.WaitAll(t, all, 10*time.Second)
	for _, id := range all {
		at, _ := in.rec.ReceivedAt(id)
		if took := at.Sub(claimedAt); took < lease-50*time.Millisecond || took > lease+3*sweep+500*time.Millisecond {
			t.Errorf("room %s announced %v after its claim; want within lease %v + a sweep", id, took.Round(time.Millisecond), lease)
		}
	}
	if got := in.rec.Reasons(destroyed); !slices.Equal(got, []string{contract.ReasonDestroyed}) {
		t.Fatalf("destroyed room got %v", got)
	}
	for _, id := range expired {
		if got := in.rec.Reasons(id); !slices.Equal(got, []string{contract.ReasonExpired}) {
			t.Fatalf("expired room got %v", got)
		}
	}
	if n := expirytest.EndingEntries(t, in.rdb); n != 0 {
		t.Fatalf("%d ends left in the ending sets", n)
	}
	assertAllGone(t, in)
}

// TestRedisDataLossAsksGatewaysToResync: a Redis that comes back empty is
// noticed and announced on wisp.resync (once, by one of two replicas);
// /readyz is red while Redis is away.
func TestRedisDataLossAsksGatewaysToResync(t *testing.T) {
	in := startInfra(t)
	nc := testkit.Connect(t, in.nats)
	resyncs, err := nc.SubscribeSync(contract.SubjectResync)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	a := in.start(t, "SWEEP_INTERVAL", "100ms")
	in.start(t, "SWEEP_INTERVAL", "100ms")
	// A new Redis has no epoch either: that first resync is harmless.
	if _, err := resyncs.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("no resync for a new Redis: %v", err)
	}

	in.redis.Stop()
	testkit.Eventually(t, 3*time.Second, func() error {
		if a.Ready() == nil {
			return errors.New("ready with Redis down")
		}
		return nil
	})
	in.redis.Restart(t)
	restarted := time.Now()
	if _, err := resyncs.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("no resync after Redis came back empty: %v", err)
	}
	t.Logf("resync published %v after Redis came back", time.Since(restarted).Round(time.Millisecond))
	in.fence(t) // both replicas have swept the new Redis since
	if m, err := resyncs.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("a second resync for one loss: %s", m.Subject)
	}
	testkit.Eventually(t, 5*time.Second, a.Ready)
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

// TestNeedsNoKeyspaceEvents: on a Redis that refuses CONFIG and fires no
// expired events (a managed Redis as it comes), the replica is ready, says
// once that the events are off, and rooms end on time through the deadline
// set alone.
func TestNeedsNoKeyspaceEvents(t *testing.T) {
	r := testkit.StartRedis(t, "--rename-command", "CONFIG", "", "--notify-keyspace-events", "")
	ns := testkit.StartNATS(t)
	in := &infra{redis: r, rdb: r.Client(t), nats: ns, rec: expirytest.Record(t, testkit.Connect(t, ns))}
	s := in.start(t, "SWEEP_INTERVAL", "100ms", "EVENT_REFRESH", "100ms")
	deadlines := expirytest.Spread(50, time.Now().Add(200*time.Millisecond), 500*time.Millisecond)
	ids := expirytest.MustSeedRooms(t, in.rdb, deadlines...)
	in.rec.WaitAll(t, ids, 5*time.Second)
	st := lagStatsOf(in.rec, ids, deadlines)
	if st.max > time.Second {
		t.Fatalf("lag up to %v with a 100 ms sweep", st.max)
	}
	in.fence(t)
	assertAllGone(t, in)
	if n := strings.Count(s.Logs(), "keyspace expired events are not on"); n != 1 {
		t.Fatalf("events off reported %d times, want once:\n%s", n, s.Logs())
	}
}

// TestDrainsTheUnshardedSet: rooms an older rooms service put in the
// unsharded deadline set (and a destroyed room's end in its ending set)
// are announced once each, by one of two replicas.
func TestDrainsTheUnshardedSet(t *testing.T) {
	in := startInfra(t)
	ctx := context.Background()
	deadlines := expirytest.Spread(40, time.Now().Add(300*time.Millisecond), 300*time.Millisecond)
	ids := expirytest.MustSeedRooms(t, in.rdb, deadlines...)
	for i, id := range ids { // as the old rooms service wrote them
		in.rdb.ZRem(ctx, contract.DeadlinesKeyOf(id), id)
		in.rdb.ZAdd(ctx, contract.DeadlinesKey, redis.Z{Score: float64(deadlines[i].UnixMilli()), Member: id})
	}
	destroyed := contract.RandomID(contract.RoomIDLen)
	in.rdb.ZAdd(ctx, contract.EndingKey, redis.Z{Score: 1, Member: contract.EndingMember(contract.ReasonDestroyed, destroyed)})
	in.start(t, "SWEEP_INTERVAL", "100ms")
	in.start(t, "SWEEP_INTERVAL", "100ms")
	all := append([]string{destroyed}, ids...)
	in.rec.WaitAll(t, all, 10*time.Second)
	in.fence(t)
	if d := in.rec.Duplicates(); d != 0 {
		t.Fatalf("%d duplicate announcements", d)
	}
	if got := in.rec.Reasons(destroyed); !slices.Equal(got, []string{contract.ReasonDestroyed}) {
		t.Fatalf("destroyed room got %v", got)
	}
	if n := expirytest.EndingEntries(t, in.rdb); n != 0 {
		t.Fatalf("%d ends left", n)
	}
	assertAllGone(t, in)
}

// TestSurvivesRedisOutage: sweeps fail while Redis is down, are counted,
// and resume when it is back; rooms due then are announced.
func TestSurvivesRedisOutage(t *testing.T) {
	in := startInfra(t)
	s := in.start(t, "SWEEP_INTERVAL", "50ms")
	in.redis.Stop()
	testkit.Eventually(t, 10*time.Second, func() error {
		if metric(t, s, "wisp_expiry_errors_total", "op", "epoch") == 0 {
			return errors.New("no failed sweep counted")
		}
		return nil
	})
	in.redis.Restart(t) // empty, as a memory-only Redis comes back
	ids := expirytest.MustSeedRooms(t, in.rdb, expirytest.Spread(50, time.Now().Add(-time.Second), time.Second)...)
	in.rec.WaitAll(t, ids, 10*time.Second)
	testkit.Eventually(t, 10*time.Second, s.Ready)
	// The keyspace events may announce the rooms before the sweep's own
	// connections are back: the recovery is logged when the sweep is.
	testkit.Eventually(t, 10*time.Second, func() error {
		if logs := s.Logs(); !strings.Contains(logs, `"msg":"sweep failed; retrying"`) || !strings.Contains(logs, `"msg":"sweep recovered"`) {
			return fmt.Errorf("outage not logged once each way:\n%s", logs)
		}
		return nil
	})
}

func assertAllGone(t *testing.T, in *infra) {
	t.Helper()
	ctx := context.Background()
	if n := expirytest.DeadlineEntries(t, in.rdb); n != 0 {
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
	slices.Sort(lags)
	st.p50, st.p99, st.max = testkit.Percentile(lags, .50), testkit.Percentile(lags, .99), lags[len(lags)-1]
	return st
}

// lagFigures formats lagStatsOf for a log line.
func lagFigures(rec *expirytest.Recorder, ids []string, deadlines []time.Time) string {
	st := lagStatsOf(rec, ids, deadlines)
	return fmt.Sprintf("lag p50 %v p99 %v max %v; duplicates %d; missed %d",
		st.p50.Round(time.Millisecond), st.p99.Round(time.Millisecond), st.max.Round(time.Millisecond),
		rec.Duplicates(), st.missed)
}
