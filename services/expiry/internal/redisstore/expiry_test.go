package redisstore_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"wisp/contract"
	"wisp/services/expiry/internal/expiry"
	"wisp/services/expiry/internal/expirytest"
	"wisp/services/expiry/internal/redisstore"
	"wisp/testkit"
)

// TestClaimIsExclusive: replicas claiming the same rooms at once split them
// with no room given to two and none lost, each with its deadline.
func TestClaimIsExclusive(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	store := redisstore.NewRooms(rdb)
	deadlines := expirytest.Spread(500, time.Now().Add(-time.Minute), time.Minute)
	ids := expirytest.MustSeedRooms(t, rdb, deadlines...)
	want := map[string]int64{}
	for i, id := range ids {
		want[id] = deadlines[i].UnixMilli()
	}

	var (
		mu  sync.Mutex
		got = map[string]int{}
		wg  sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			// Each replica claims in its own batch order, as racing sweeps do.
			for start := 0; start < len(ids); start += 50 {
				claimed, err := store.Claim(context.Background(), ids[start:min(start+50, len(ids))], time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, c := range claimed {
					got[c.ID]++
					if c.Deadline.UnixMilli() != want[c.ID] {
						t.Errorf("room %s claimed with deadline %d, want %d", c.ID, c.Deadline.UnixMilli(), want[c.ID])
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if got[id] != 1 {
			t.Fatalf("room %s claimed %d times", id, got[id])
		}
	}
	if n := expirytest.DeadlineEntries(t, rdb); n != 0 {
		t.Fatalf("%d entries left in the deadline set", n)
	}
}

func TestDueRoomsEarliestFirstAndBounded(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	store := redisstore.NewRooms(rdb)
	now := time.Now()
	late := expirytest.MustSeedRoom(t, rdb, now.Add(-time.Second))
	early := expirytest.MustSeedRoom(t, rdb, now.Add(-time.Minute))
	expirytest.MustSeedRoom(t, rdb, now.Add(time.Hour))
	expirytest.MustSeedRoom(t, rdb, now.Add(10*time.Minute)) // the next to fall, in whichever shard

	got, next, err := store.DueRooms(context.Background(), 10)
	if err != nil || !slices.Equal(got, []string{early, late}) {
		t.Fatalf("DueRooms = %v, %v; want [%s %s]", got, err, early, late)
	}
	if want := time.Until(now.Add(10 * time.Minute)); next > want+time.Second || next < want-time.Second {
		t.Fatalf("next deadline in %v, want about %v", next, want.Round(time.Second))
	}
	if got, _, _ := store.DueRooms(context.Background(), 1); !slices.Equal(got, []string{early}) {
		t.Fatalf("DueRooms limit 1 = %v", got)
	}
	empty := redisstore.NewRooms(testkit.StartRedis(t).Client(t))
	if got, next, err := empty.DueRooms(context.Background(), 10); len(got) != 0 || next != expiry.NoneAhead || err != nil {
		t.Fatalf("empty store: DueRooms = %v, %v, %v; want none, NoneAhead", got, next, err)
	}
}

func TestCleanupDeletesEveryKeyOfTheRooms(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	store := redisstore.NewRooms(rdb)
	ids := expirytest.MustSeedRooms(t, rdb, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	if n := expirytest.KeysLeft(t, rdb, ids[0]); n != 4 {
		t.Fatalf("seeded room has %d keys, want 4 (room, members, messages, clients)", n)
	}
	if err := store.Cleanup(context.Background(), ids[:1]); err != nil {
		t.Fatal(err)
	}
	if n := expirytest.KeysLeft(t, rdb, ids[0]); n != 0 {
		t.Fatalf("%d keys left after cleanup", n)
	}
	if n := expirytest.KeysLeft(t, rdb, ids[1]); n != 4 {
		t.Fatalf("cleanup touched another room: %d keys left of 4", n)
	}
	if keys := rdb.Keys(context.Background(), "*"+ids[0]+"*").Val(); len(keys) != 0 {
		t.Fatalf("keys of the cleaned-up room left: %v", keys)
	}
}

// TestClaimLeasesAndOverdueTakesOver: a claim puts the room's end in the
// ending set under a lease by Redis's clock; before it runs out nobody can
// take the end over, after it exactly one of racing replicas does (and
// leases it anew); Done clears it.
func TestClaimLeasesAndOverdueTakesOver(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	store := redisstore.NewRooms(rdb)
	ctx := context.Background()
	id := expirytest.MustSeedRoom(t, rdb, time.Now().Add(-time.Second))
	const lease = 300 * time.Millisecond
	before := time.Now()
	if claimed, err := store.Claim(ctx, []string{id}, lease); err != nil || len(claimed) != 1 {
		t.Fatalf("claim = %v, %v", claimed, err)
	}
	member := contract.EndingMember(contract.ReasonExpired, id)
	score, err := rdb.ZScore(ctx, contract.EndingKeyOf(contract.DeadlinesKeyOf(id)), member).Result()
	if err != nil {
		t.Fatalf("no %s in the ending set: %v", member, err)
	}
	if until := time.UnixMilli(int64(score)); until.Before(before.Add(lease-50*time.Millisecond)) || until.After(time.Now().Add(lease+50*time.Millisecond)) {
		t.Fatalf("lease ends at %v, want about %v from now", until, lease)
	}
	if ends, err := store.Overdue(ctx, lease, 10); err != nil || len(ends) != 0 {
		t.Fatalf("Overdue within the lease = %v, %v", ends, err)
	}

	var (
		mu  sync.Mutex
		got []expiry.Ending
		wg  sync.WaitGroup
	)
	time.Sleep(time.Until(time.UnixMilli(int64(score)).Add(10 * time.Millisecond))) // the lease's own end, not a guess
	for range 4 {
		wg.Go(func() {
			ends, err := store.Overdue(ctx, time.Minute, 10)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			got = append(got, ends...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if want := (expiry.Ending{Reason: contract.ReasonExpired, ID: id}); len(got) != 1 || got[0] != want {
		t.Fatalf("racing Overdue took %v, want one %v", got, want)
	}
	if ends, _ := store.Overdue(ctx, time.Minute, 10); len(ends) != 0 {
		t.Fatalf("taken-over end handed out again within its new lease: %v", ends)
	}
	if err := store.Done(ctx, got); err != nil {
		t.Fatal(err)
	}
	if n := expirytest.EndingEntries(t, rdb); n != 0 {
		t.Fatalf("%d ends left after Done", n)
	}
}

// TestOverdueDropsWhatItCannotRead: a member wisp never writes is removed,
// not handed out every lease.
func TestOverdueDropsWhatItCannotRead(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	store := redisstore.NewRooms(rdb)
	ctx := context.Background()
	rdb.ZAdd(ctx, contract.EndingKey, redis.Z{Score: 1, Member: "junk"})
	rdb.ZAdd(ctx, contract.EndingKeyOf(contract.DeadlineShardKeys()[3]), redis.Z{Score: 1, Member: "junk"})
	if ends, err := store.Overdue(ctx, time.Minute, 10); err != nil || len(ends) != 0 {
		t.Fatalf("Overdue = %v, %v", ends, err)
	}
	if n := expirytest.EndingEntries(t, rdb); n != 0 {
		t.Fatal("junk member kept")
	}
}

// TestCheckEpochNoticesDataLossOnce: a new Redis and an emptied one are
// each reported once, to one of racing replicas, whose resync is in the
// ending set; a Redis that kept its data is not.
func TestCheckEpochNoticesDataLossOnce(t *testing.T) {
	r := testkit.StartRedis(t)
	rdb := r.Client(t)
	store := redisstore.NewRooms(rdb)
	ctx := context.Background()
	race := func() []expiry.Ending {
		var (
			mu   sync.Mutex
			lost []expiry.Ending
			wg   sync.WaitGroup
		)
		for range 4 {
			wg.Go(func() {
				e, ok, err := store.CheckEpoch(ctx, time.Minute)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					lost = append(lost, e)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return lost
	}
	for _, step := range []string{"new", "kept", "restarted empty"} {
		if step == "restarted empty" {
			r.Restart(t)
		}
		lost := race()
		if step == "kept" {
			if len(lost) != 0 {
				t.Fatalf("%s: loss reported %v", step, lost)
			}
			continue
		}
		if len(lost) != 1 || lost[0].Reason != contract.EndingResync {
			t.Fatalf("%s: reported %v, want one resync", step, lost)
		}
		for _, k := range contract.DeadlineShardKeys() { // every shard lost its epoch
			if err := rdb.ZScore(ctx, contract.EndingKeyOf(k), contract.EndingMember(contract.EndingResync, lost[0].ID)).Err(); err != nil {
				t.Fatalf("%s: resync not in the ending set of %s: %v", step, k, err)
			}
		}
		if err := store.Done(ctx, lost); err != nil {
			t.Fatal(err)
		}
		if n := expirytest.EndingEntries(t, rdb); n != 0 {
			t.Fatalf("%s: %d entries left after Done", step, n)
		}
	}
}

// TestDestroyFirstLeavesNothingToClaim: the rooms service's destroy deletes
// the keys and ZREMs; expiry's claim then gets nothing.
func TestDestroyFirstLeavesNothingToClaim(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	store := redisstore.NewRooms(rdb)
	id := expirytest.MustSeedRoom(t, rdb, time.Now().Add(-time.Second))
	ctx := context.Background()
	if !testkit.DestroyRoom(t, rdb, id, time.Minute) {
		t.Fatal("destroy did not claim the room")
	}
	if claimed, err := store.Claim(ctx, []string{id}, time.Minute); err != nil || len(claimed) != 0 {
		t.Fatalf("claim after destroy = %v, %v; want nothing", claimed, err)
	}
}

func TestClaimSurvivesScriptFlush(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	store := redisstore.NewRooms(rdb)
	ctx := context.Background()
	a := expirytest.MustSeedRoom(t, rdb, time.Now())
	if _, err := store.Claim(ctx, []string{a}, time.Minute); err != nil {
		t.Fatal(err)
	}
	rdb.ScriptFlush(ctx) // as after a Redis restart: EVALSHA must fall back to EVAL
	b := expirytest.MustSeedRoom(t, rdb, time.Now())
	if claimed, err := store.Claim(ctx, []string{b}, time.Minute); err != nil || len(claimed) != 1 {
		t.Fatalf("claim after SCRIPT FLUSH = %v, %v", claimed, err)
	}
}

var _ expiry.Store = (*redisstore.Rooms)(nil)

// TestScriptsTouchOneSlot: every script of the store, as the store calls
// it, is given keys of one Redis Cluster slot.
func TestScriptsTouchOneSlot(t *testing.T) {
	r := testkit.StartRedis(t)
	rdb := r.Client(t)
	slots := testkit.WatchScriptSlots(rdb)
	store := redisstore.NewRooms(rdb)
	ctx := context.Background()
	svc := expiry.NewService(store, nopPublisher{}, mustMetrics(t), slog.New(slog.DiscardHandler), 50*time.Millisecond)
	ids := expirytest.MustSeedRooms(t, rdb, expirytest.Spread(100, time.Now().Add(-time.Second), time.Second)...)
	if _, err := store.Claim(ctx, ids[:10], time.Millisecond); err != nil { // left for the overdue script
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // past the 1 ms lease
	if n, err := svc.Sweep(ctx); err != nil || n != 100 {
		t.Fatalf("sweep = %d, %v; want 90 due rooms and 10 taken over", n, err)
	}
	slots.RequireOneSlotEach(t, "lua")
}

// TestSweepsRoomsOfEveryShardAndTheUnshardedSet: due rooms of every shard
// and of the unsharded set of wisp before the sharding come back earliest
// first, across shards, and are claimed.
func TestSweepsRoomsOfEveryShardAndTheUnshardedSet(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	store := redisstore.NewRooms(rdb)
	ctx := context.Background()
	deadlines := expirytest.Spread(400, time.Now().Add(-time.Minute), time.Minute)
	ids := expirytest.MustSeedRooms(t, rdb, deadlines...)
	shards := map[int]bool{}
	for _, id := range ids {
		shards[contract.DeadlineShardOf(id)] = true
	}
	legacy := ids[len(ids)-1] // the latest deadline
	rdb.ZRem(ctx, contract.DeadlinesKeyOf(legacy), legacy)
	rdb.ZAdd(ctx, contract.DeadlinesKey, redis.Z{Score: float64(deadlines[len(ids)-1].UnixMilli()), Member: legacy})
	if len(shards) != contract.DeadlineShards {
		t.Fatalf("400 rooms fell in %d shards", len(shards))
	}
	got, _, err := store.DueRooms(ctx, 1000)
	if err != nil || !slices.Equal(got, ids) {
		t.Fatalf("DueRooms = %d rooms (%v), want all 400 earliest first", len(got), err)
	}
	claimed, err := store.Claim(ctx, got, time.Minute)
	if err != nil || len(claimed) != len(ids) {
		t.Fatalf("claimed %d of %d (%v)", len(claimed), len(ids), err)
	}
	if n := expirytest.DeadlineEntries(t, rdb); n != 0 {
		t.Fatalf("%d rooms left", n)
	}
}

type nopPublisher struct{}

func (nopPublisher) Ended(context.Context, string, string) error { return nil }
func (nopPublisher) Resync(context.Context) error                { return nil }
func (nopPublisher) Flush(context.Context) error                 { return nil }

func mustMetrics(t *testing.T) *expiry.Metrics {
	m, err := expiry.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return m
}
