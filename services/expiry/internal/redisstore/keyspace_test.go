package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// listener runs Keyspace.Listen for one test and records what it hands on.
type listener struct {
	status     redisstore.NotifyStatus
	ks         *redisstore.Keyspace
	logs       *testkit.SyncBuffer
	subscribed atomic.Int32
	mu         sync.Mutex
	expired    []string
}

func listen(t *testing.T, rdb *redis.Client) *listener {
	t.Helper()
	m, err := expiry.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{logs: &testkit.SyncBuffer{}}
	l.ks = redisstore.NewKeyspace(rdb, &l.status, m, slog.New(slog.NewTextHandler(l.logs, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- l.ks.Listen(ctx, redisstore.Handlers{
			Expired: func(_ context.Context, ids []string) {
				l.mu.Lock()
				l.expired = append(l.expired, ids...)
				l.mu.Unlock()
			},
			Subscribed: func() { l.subscribed.Add(1) },
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Listen: %v", err)
		}
	})
	return l
}

func (l *listener) got(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.expired, id)
}

func (l *listener) waitSubscribed(t *testing.T, n int32) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, func() error {
		if got := l.subscribed.Load(); got < n {
			return fmt.Errorf("subscribed %d times, want %d", got, n)
		}
		return nil
	})
}

// expireNow waits out the room's deadline and reads its key until Redis
// deletes it, which fires the keyevent at once instead of at Redis's next
// active-expiry cycle.
func expireNow(t *testing.T, rdb *redis.Client, id string, deadline time.Time) {
	t.Helper()
	time.Sleep(time.Until(deadline)) // the deadline is the event's cause, not a guess
	testkit.Eventually(t, 5*time.Second, func() error {
		if rdb.Exists(context.Background(), contract.RoomKey(id)).Val() != 0 {
			return errors.New("room key still there")
		}
		return nil
	})
}

// TestListenHandsOnExpiredRoomKeys: an expired room key reaches the handler
// as its room id; the room's other keys and unrelated keys do not.
func TestListenHandsOnExpiredRoomKeys(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	l := listen(t, rdb)
	l.waitSubscribed(t, 1)
	if err := l.status.Check(context.Background()); err != nil {
		t.Fatalf("not ready on a Redis with events on: %v", err)
	}
	ctx := context.Background()
	rdb.Set(ctx, "unrelated", "x", time.Millisecond)
	deadline := time.Now().Add(50 * time.Millisecond)
	id := expirytest.MustSeedRoom(t, rdb, deadline)
	expireNow(t, rdb, id, deadline)
	testkit.Eventually(t, 5*time.Second, func() error {
		if !l.got(id) {
			return errors.New("expired room key not handed on")
		}
		return nil
	})
	// The members and messages keys expire at the same deadline; wait until
	// Redis has deleted them too, then only the room id must have come through.
	testkit.Eventually(t, 5*time.Second, func() error {
		if n := expirytest.KeysLeft(t, rdb, id); n != 0 {
			return fmt.Errorf("%d keys left", n)
		}
		return nil
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if !slices.Equal(l.expired, []string{id}) {
		t.Fatalf("handed on %v, want only %s", l.expired, id)
	}
}

// TestEnsureNotificationsKeepsOtherFlags: E and x are added to whatever
// another user of the Redis has set, and nothing is removed.
func TestEnsureNotificationsKeepsOtherFlags(t *testing.T) {
	rdb := testkit.StartRedis(t).Client(t)
	m, _ := expiry.NewMetrics(prometheus.NewRegistry())
	ks := redisstore.NewKeyspace(rdb, &redisstore.NotifyStatus{}, m, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	for _, initial := range []string{"", "Kg", "KEA", "Ex", "Kl"} {
		t.Run(initial, func(t *testing.T) {
			if err := rdb.ConfigSet(ctx, "notify-keyspace-events", initial).Err(); err != nil {
				t.Fatal(err)
			}
			before := rdb.ConfigGet(ctx, "notify-keyspace-events").Val()["notify-keyspace-events"]
			if err := ks.EnsureNotifications(ctx); err != nil {
				t.Fatal(err)
			}
			after := rdb.ConfigGet(ctx, "notify-keyspace-events").Val()["notify-keyspace-events"]
			if !strings.Contains(after, "E") || !strings.ContainsAny(after, "xA") {
				t.Errorf("%q became %q: no keyevent expired notifications", before, after)
			}
			for _, f := range before {
				if !strings.ContainsRune(after, f) {
					t.Errorf("%q became %q: flag %c lost", before, after, f)
				}
			}
		})
	}
}

// TestNotReadyWhenConfigRefusedAndEventsOff: a managed Redis that refuses
// CONFIG and has no expired events makes the service not ready, with a log
// line telling the operator what to set.
func TestNotReadyWhenConfigRefusedAndEventsOff(t *testing.T) {
	url := expirytest.StartRedis(t, "--rename-command", "CONFIG", "", "--notify-keyspace-events", "")
	l := listen(t, openRedis(t, url))
	l.waitSubscribed(t, 1)
	err := l.status.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "notify-keyspace-events") {
		t.Fatalf("readiness = %v, want an error naming notify-keyspace-events", err)
	}
	if logs := l.logs.String(); !strings.Contains(logs, "keyspace expired events are NOT on") {
		t.Fatalf("no warning logged:\n%s", logs)
	}
}

// TestReadyByProbeWhenConfigRefusedButEventsOn: where CONFIG is refused but
// the operator did enable the events, a probe key proves it.
func TestReadyByProbeWhenConfigRefusedButEventsOn(t *testing.T) {
	url := expirytest.StartRedis(t, "--rename-command", "CONFIG", "", "--notify-keyspace-events", "Ex")
	l := listen(t, openRedis(t, url))
	l.waitSubscribed(t, 1)
	if err := l.status.Check(context.Background()); err != nil {
		t.Fatalf("readiness = %v, want ready", err)
	}
}

// TestNotReadyWhileConfigSetRefused: CONFIG GET allowed, CONFIG SET not
// (an ACL that forbids it) and the events off: not ready.
func TestNotReadyWhileConfigSetRefused(t *testing.T) {
	url := expirytest.StartRedis(t, "--notify-keyspace-events", "",
		"--user", "default", "on", "nopass", "~*", "&*", "+@all", "-config|set")
	l := listen(t, openRedis(t, url))
	l.waitSubscribed(t, 1)
	err := l.status.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "CONFIG SET is refused") {
		t.Fatalf("readiness = %v, want CONFIG SET refused", err)
	}
}

// TestResubscribesAfterRedisRestart: after Redis comes back the subscription
// is renewed, the notification check and Subscribed run again (the moment
// to sweep what was missed), and events flow again.
func TestResubscribesAfterRedisRestart(t *testing.T) {
	r := testkit.StartRedis(t)
	rdb := r.Client(t)
	l := listen(t, rdb)
	l.waitSubscribed(t, 1)
	r.Restart(t)
	l.waitSubscribed(t, 2)
	if err := l.status.Check(context.Background()); err != nil {
		t.Fatalf("not ready after restart: %v", err)
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	id := expirytest.MustSeedRoom(t, rdb, deadline)
	expireNow(t, rdb, id, deadline)
	testkit.Eventually(t, 5*time.Second, func() error {
		if !l.got(id) {
			return errors.New("no event after the restart")
		}
		return nil
	})
}
