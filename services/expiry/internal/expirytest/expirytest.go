// Package expirytest helps the expiry service's tests: it seeds rooms the
// way the rooms service writes them and records the chat.destroy events
// members would receive.
package expirytest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"wisp/contract"
	"wisp/testkit"
)

// MustSeedRooms writes one room per deadline exactly as the rooms service
// does (the deadline entry first, then the room hash with PEXPIREAT), plus
// a member and a message expiring with it, and returns the room ids.
func MustSeedRooms(tb testing.TB, rdb *redis.Client, deadlines ...time.Time) []string {
	tb.Helper()
	ctx := context.Background()
	ids := make([]string, len(deadlines))
	const chunk = 1000
	for start := 0; start < len(deadlines); start += chunk {
		end := min(start+chunk, len(deadlines))
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := start; i < end; i++ {
				id, d := contract.RandomID(contract.RoomIDLen), deadlines[i]
				ids[i] = id
				ms := d.UnixMilli()
				p.ZAdd(ctx, contract.DeadlinesKey, redis.Z{Score: float64(ms), Member: id})
				p.HSet(ctx, contract.RoomKey(id), "createdAt", time.Now().UnixMilli(), "deadline", ms)
				p.PExpireAt(ctx, contract.RoomKey(id), d)
				p.HSet(ctx, contract.MembersKey(id), contract.TokenHash(id+"-token"), "marker")
				p.PExpireAt(ctx, contract.MembersKey(id), d)
				p.RPush(ctx, contract.MessagesKey(id), `{"id":"m1","seq":1}`)
				p.PExpireAt(ctx, contract.MessagesKey(id), d)
			}
			return nil
		})
		if err != nil {
			tb.Fatalf("seed rooms: %v", err)
		}
	}
	return ids
}

// MustSeedRoom seeds one room.
func MustSeedRoom(tb testing.TB, rdb *redis.Client, deadline time.Time) string {
	tb.Helper()
	return MustSeedRooms(tb, rdb, deadline)[0]
}

// Spread returns n deadlines evenly spread over [from, from+over).
func Spread(n int, from time.Time, over time.Duration) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = from.Add(over * time.Duration(i) / time.Duration(n))
	}
	return out
}

// KeysLeft counts the keys of the room still in Redis.
func KeysLeft(tb testing.TB, rdb *redis.Client, roomID string) int64 {
	tb.Helper()
	n, err := rdb.Exists(context.Background(), contract.RoomKey(roomID), contract.MembersKey(roomID), contract.MessagesKey(roomID)).Result()
	if err != nil {
		tb.Fatalf("exists: %v", err)
	}
	return n
}

// Recorder records the chat.destroy events published on NATS.
type Recorder struct {
	mu      sync.Mutex
	first   map[string]time.Time
	reasons map[string][]string
	bad     []string
}

// Record subscribes to every room's chat.destroy on nc until the test ends.
func Record(tb testing.TB, nc *nats.Conn) *Recorder {
	tb.Helper()
	r := &Recorder{first: map[string]time.Time{}, reasons: map[string][]string{}}
	sub, err := nc.Subscribe(contract.AllDestroys, r.handle)
	if err != nil {
		tb.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sub.Unsubscribe() })
	// The subscription must be in place before anything is published.
	if err := nc.Flush(); err != nil {
		tb.Fatal(err)
	}
	return r
}

func (r *Recorder) handle(m *nats.Msg) {
	at := time.Now()
	id := m.Subject[len(contract.EventDestroy)+1:]
	var ev struct {
		Event string               `json:"event"`
		Data  contract.DestroyData `json:"data"`
	}
	err := json.Unmarshal(m.Data, &ev)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || ev.Event != contract.EventDestroy || !ev.Data.IsDestroyed ||
		(ev.Data.Reason != contract.ReasonExpired && ev.Data.Reason != contract.ReasonDestroyed) {
		r.bad = append(r.bad, fmt.Sprintf("%s: %s", m.Subject, m.Data))
	}
	if len(r.reasons[id]) == 0 {
		r.first[id] = at
	}
	r.reasons[id] = append(r.reasons[id], ev.Data.Reason)
}

// Reasons returns the reasons of the chat.destroy events the room got, in
// the order they arrived.
func (r *Recorder) Reasons(roomID string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reasons[roomID])
}

// Total counts the events received, over all rooms.
func (r *Recorder) Total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rs := range r.reasons {
		n += len(rs)
	}
	return n
}

// ReceivedAt returns when the room's first chat.destroy arrived.
func (r *Recorder) ReceivedAt(roomID string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.first[roomID]
	return t, ok
}

// Duplicates counts events beyond the first, over all rooms.
func (r *Recorder) Duplicates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rs := range r.reasons {
		n += len(rs) - 1
	}
	return n
}

// Bad returns the events that were not a well-formed chat.destroy with a
// known reason.
func (r *Recorder) Bad() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bad)
}

// Missing returns the rooms of ids that got no event.
func (r *Recorder) Missing(ids []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, id := range ids {
		if len(r.reasons[id]) == 0 {
			out = append(out, id)
		}
	}
	return out
}

// WaitAll waits until every room of ids got its event.
func (r *Recorder) WaitAll(tb testing.TB, ids []string, timeout time.Duration) {
	tb.Helper()
	testkit.Eventually(tb, timeout, func() error {
		if m := r.Missing(ids); len(m) > 0 {
			return fmt.Errorf("%d of %d rooms not announced, e.g. %s", len(m), len(ids), m[0])
		}
		return nil
	})
}

// StartRedis starts a redis-server with extra arguments, stopped with the
// test, and returns its URL.
func StartRedis(tb testing.TB, args ...string) string {
	tb.Helper()
	return testkit.StartRedis(tb, args...).URL
}
