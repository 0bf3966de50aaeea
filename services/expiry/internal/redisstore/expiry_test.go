package redisstore_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

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
				claimed, err := store.Claim(context.Background(), ids[start:min(start+50, len(ids))])
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
	if n := rdb.ZCard(context.Background(), contract.DeadlinesKey).Val(); n != 0 {
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

	got, err := store.DueRooms(context.Background(), 10)
	if err != nil || !slices.Equal(got, []string{early, late}) {
		t.Fatalf("DueRooms = %v, %v; want [%s %s]", got, err, early, late)
	}
	if got, _ := store.DueRooms(context.Background(), 1); !slices.Equal(got, []string{early}) {
		t.Fatalf("DueRooms limit 1 = %v", got)
	}
}

func TestCleanupDeletesEveryKeyOfTheRooms(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	store := redisstore.NewRooms(rdb)
	ids := expirytest.MustSeedRooms(t, rdb, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	if n := expirytest.KeysLeft(t, rdb, ids[0]); n != 3 {
		t.Fatalf("seeded room has %d keys, want 3", n)
	}
	if err := store.Cleanup(context.Background(), ids[:1]); err != nil {
		t.Fatal(err)
	}
	if n := expirytest.KeysLeft(t, rdb, ids[0]); n != 0 {
		t.Fatalf("%d keys left after cleanup", n)
	}
	if n := expirytest.KeysLeft(t, rdb, ids[1]); n != 3 {
		t.Fatalf("cleanup touched another room: %d keys left of 3", n)
	}
}

func TestReleaseHandsTheRoomBack(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	store := redisstore.NewRooms(rdb)
	deadline := time.UnixMilli(time.Now().Add(-time.Second).UnixMilli())
	id := expirytest.MustSeedRoom(t, rdb, deadline)
	ctx := context.Background()
	claimed, err := store.Claim(ctx, []string{id})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim = %v, %v", claimed, err)
	}
	if err := store.Release(ctx, claimed); err != nil {
		t.Fatal(err)
	}
	again, err := store.Claim(ctx, []string{id})
	if err != nil || len(again) != 1 || !again[0].Deadline.Equal(deadline) {
		t.Fatalf("reclaim = %v, %v; want the room with deadline %v", again, err, deadline)
	}
}

// TestDestroyFirstLeavesNothingToClaim: the rooms service's destroy deletes
// the keys and ZREMs; expiry's claim then gets nothing.
func TestDestroyFirstLeavesNothingToClaim(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	store := redisstore.NewRooms(rdb)
	id := expirytest.MustSeedRoom(t, rdb, time.Now().Add(-time.Second))
	ctx := context.Background()
	rdb.Del(ctx, contract.RoomKey(id), contract.MembersKey(id), contract.MessagesKey(id))
	if n := rdb.ZRem(ctx, contract.DeadlinesKey, id).Val(); n != 1 {
		t.Fatalf("destroy's ZREM = %d", n)
	}
	if claimed, err := store.Claim(ctx, []string{id}); err != nil || len(claimed) != 0 {
		t.Fatalf("claim after destroy = %v, %v; want nothing", claimed, err)
	}
}

func TestClaimSurvivesScriptFlush(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	store := redisstore.NewRooms(rdb)
	ctx := context.Background()
	a := expirytest.MustSeedRoom(t, rdb, time.Now())
	if _, err := store.Claim(ctx, []string{a}); err != nil {
		t.Fatal(err)
	}
	rdb.ScriptFlush(ctx) // as after a Redis restart: EVALSHA must fall back to EVAL
	b := expirytest.MustSeedRoom(t, rdb, time.Now())
	if claimed, err := store.Claim(ctx, []string{b}); err != nil || len(claimed) != 1 {
		t.Fatalf("claim after SCRIPT FLUSH = %v, %v", claimed, err)
	}
}

var _ expiry.Store = (*redisstore.Rooms)(nil)

// openRedis is a client for a server started by expirytest.StartRedis.
func openRedis(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}
