// Package expirytest helps the expiry service's tests: it seeds rooms the
// way the rooms service writes them (through testkit) and records the chat.destroy events
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

// MustSeedRooms writes one room per deadline as the rooms and messages
// services leave it (testkit.SeedRooms): the deadline entry, the room hash,
// a member, a message and its clientId entry, all expiring at the deadline.
// It returns the room ids.
func MustSeedRooms(tb testing.TB, rdb redis.UniversalClient, deadlines ...time.Time) []string {
	tb.Helper()
	rooms := make([]testkit.Room, len(deadlines))
	for i, d := range deadlines {
		id := contract.RandomID(contract.RoomIDLen)
		rooms[i] = testkit.Room{ID: id, Deadline: d, Tokens: []string{id + "-token"},
			Messages: []string{`{"id":"m1","seq":1}`}, Clients: map[string]int64{"m-0:client-id": 1}}
	}
	return testkit.SeedRooms(tb, rdb, rooms...)
}

// MustSeedRoom seeds one room.
func MustSeedRoom(tb testing.TB, rdb redis.UniversalClient, deadline time.Time) string {
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
func KeysLeft(tb testing.TB, rdb redis.UniversalClient, roomID string) int64 {
	tb.Helper()
	n, err := rdb.Exists(context.Background(), contract.RoomKeys(roomID)...).Result()
	if err != nil {
		tb.Fatalf("exists: %v", err)
	}
	return n
}

// DeadlineEntries counts the rooms in every shard of the deadline set and
// in the unsharded set of wisp before the sharding.
func DeadlineEntries(tb testing.TB, rdb redis.UniversalClient) int64 {
	tb.Helper()
	return sumCard(tb, rdb, append(contract.DeadlineShardKeys(), contract.DeadlinesKey))
}

// EndingEntries counts the claimed ends in every ending set.
func EndingEntries(tb testing.TB, rdb redis.UniversalClient) int64 {
	tb.Helper()
	var keys []string
	for _, k := range append(contract.DeadlineShardKeys(), contract.DeadlinesKey) {
		keys = append(keys, contract.EndingKeyOf(k))
	}
	return sumCard(tb, rdb, keys)
}

func sumCard(tb testing.TB, rdb redis.UniversalClient, keys []string) int64 {
	var n int64
	for _, k := range keys {
		c, err := rdb.ZCard(context.Background(), k).Result()
		if err != nil {
			tb.Fatalf("zcard %s: %v", k, err)
		}
		n += c
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
