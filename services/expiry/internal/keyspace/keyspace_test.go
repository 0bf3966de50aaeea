package keyspace_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"wisp/contract"
	"wisp/services/expiry/internal/expiry"
	"wisp/services/expiry/internal/expirytest"
	"wisp/services/expiry/internal/keyspace"
	"wisp/testkit"
)

// listener runs Listener.Listen for one test and records what it hands on.
type listener struct {
	logs       *testkit.SyncBuffer
	mu         sync.Mutex
	batches    [][]string
	subscribed int
}

func listen(t *testing.T, rdb redis.UniversalClient) *listener {
	t.Helper()
	m, err := expiry.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{logs: &testkit.SyncBuffer{}}
	ks := keyspace.NewListener(rdb, m, slog.New(slog.NewTextHandler(l.logs, nil)), 20*time.Millisecond, 200*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ks.Listen(ctx, keyspace.Handlers{
			Expired: func(_ context.Context, ids []string) {
				l.mu.Lock()
				defer l.mu.Unlock()
				l.batches = append(l.batches, slices.Clone(ids))
			},
			Subscribed: func() {
				l.mu.Lock()
				defer l.mu.Unlock()
				l.subscribed++
			},
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

func (l *listener) expired() (ids []string, batches int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Concat(l.batches...), len(l.batches)
}

func (l *listener) waitSubscribed(t *testing.T, n int) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.subscribed < n {
			return fmt.Errorf("subscribed to %d nodes, want %d", l.subscribed, n)
		}
		return nil
	})
}

// expireNow waits out the deadline and reads the rooms' keys until Redis
// deletes them, which fires the keyevents at once instead of at Redis's
// next active-expiry cycle.
func expireNow(t *testing.T, rdb redis.UniversalClient, deadline time.Time, ids ...string) {
	t.Helper()
	time.Sleep(time.Until(deadline))
	testkit.Eventually(t, 5*time.Second, func() error {
		for _, id := range ids {
			if rdb.Exists(context.Background(), contract.RoomKey(id)).Val() != 0 {
				return errors.New("room key still there")
			}
		}
		return nil
	})
}

func waitExpired(t *testing.T, l *listener, want []string) (batches int) {
	t.Helper()
	testkit.Eventually(t, 5*time.Second, func() error {
		got, n := l.expired()
		batches = n
		for _, id := range want {
			if !slices.Contains(got, id) {
				return fmt.Errorf("room %s not handed on (%d of %d)", id, len(got), len(want))
			}
		}
		return nil
	})
	return batches
}

// TestExpiredRoomKeysArriveAsRoomsInBatches: rooms whose keys expire
// together reach the handler as their ids, a few batches for all; their
// other keys and unrelated keys do not come through.
func TestExpiredRoomKeysArriveAsRoomsInBatches(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	l := listen(t, rdb)
	l.waitSubscribed(t, 1)
	rdb.Set(context.Background(), "unrelated", "x", time.Millisecond)
	deadline := time.Now().Add(100 * time.Millisecond)
	deadlines := make([]time.Time, 50)
	for i := range deadlines {
		deadlines[i] = deadline
	}
	ids := expirytest.MustSeedRooms(t, rdb, deadlines...)
	expireNow(t, rdb, deadline, ids...)
	if batches := waitExpired(t, l, ids); batches > 10 {
		t.Errorf("50 rooms ending together came in %d batches", batches)
	}
	// The members and messages keys expire at the same deadline; once Redis
	// has deleted them too, only the room ids must have come through, once.
	testkit.Eventually(t, 5*time.Second, func() error {
		for _, id := range ids {
			if n := expirytest.KeysLeft(t, rdb, id); n != 0 {
				return fmt.Errorf("%d keys left", n)
			}
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	got, _ := l.expired()
	slices.Sort(got)
	want := slices.Sorted(slices.Values(ids))
	if !slices.Equal(got, want) {
		t.Fatalf("handed on %d ids, want the %d rooms once each", len(got), len(ids))
	}
}

// TestNotificationsAreSwitchedOnKeepingOtherFlags: a Redis with expired
// events off gets E and x added, the flags set for others kept.
func TestNotificationsAreSwitchedOnKeepingOtherFlags(t *testing.T) {
	rdb := testkit.StartRedis(t, "--notify-keyspace-events", "Kg").Client(t)
	l := listen(t, rdb)
	testkit.Eventually(t, 5*time.Second, func() error {
		flags := rdb.ConfigGet(context.Background(), "notify-keyspace-events").Val()["notify-keyspace-events"]
		for _, f := range []string{"K", "g", "E", "x"} {
			if !strings.Contains(flags, f) {
				return fmt.Errorf("notify-keyspace-events = %q", flags)
			}
		}
		return nil
	})
	l.waitSubscribed(t, 1)
	deadline := time.Now().Add(50 * time.Millisecond)
	id := expirytest.MustSeedRoom(t, rdb, deadline)
	expireNow(t, rdb, deadline, id)
	waitExpired(t, l, []string{id})
	if !strings.Contains(l.logs.String(), "enabled keyspace expired events") {
		t.Fatalf("switching the setting was not logged:\n%s", l.logs)
	}
}

// TestEveryClusterMasterIsFollowed: on a Redis Cluster each master
// publishes only its own keys' events; rooms on all three reach the handler.
func TestEveryClusterMasterIsFollowed(t *testing.T) {
	cluster := testkit.StartRedisCluster(t, testkit.ClusterOptions{Masters: 3})
	rdb := cluster.Client(t)
	l := listen(t, rdb)
	l.waitSubscribed(t, 3)
	deadline := time.Now().Add(100 * time.Millisecond)
	deadlines := make([]time.Time, 30)
	for i := range deadlines {
		deadlines[i] = deadline
	}
	ids := expirytest.MustSeedRooms(t, rdb, deadlines...)
	masters := map[string]bool{}
	for _, id := range ids {
		m, err := cluster.MasterOf(context.Background(), contract.RoomKey(id))
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Addr] = true
	}
	if len(masters) != 3 {
		t.Fatalf("30 rooms fell on %d masters, want 3", len(masters))
	}
	expireNow(t, rdb, deadline, ids...)
	waitExpired(t, l, ids)
}

func TestWithExpiredEvents(t *testing.T) {
	for in, want := range map[string]string{"": "Ex", "Ex": "Ex", "KEA": "KEA", "Kg": "KgEx", "Ez": "Ezx"} {
		if got := keyspace.WithExpiredEvents(in); got != want {
			t.Errorf("WithExpiredEvents(%q) = %q, want %q", in, got, want)
		}
	}
}
