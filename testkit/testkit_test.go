package testkit

import (
	"context"
	"errors"
	"testing"
	"time"

	"wisp/contract"
)

func TestStartRedisHasKeyspaceEventsAndNoPersistence(t *testing.T) {
	r := StartRedis(t)
	cfg := r.Client(t).ConfigGet(context.Background(), "*").Val()
	if cfg["notify-keyspace-events"] == "" || cfg["save"] != "" || cfg["appendonly"] != "no" {
		t.Fatalf("notify=%q save=%q appendonly=%q", cfg["notify-keyspace-events"], cfg["save"], cfg["appendonly"])
	}
	extra := StartRedis(t, "--notify-keyspace-events", "")
	if v := extra.Client(t).ConfigGet(context.Background(), "notify-keyspace-events").Val(); v["notify-keyspace-events"] != "" {
		t.Fatalf("extra arguments did not win: %v", v)
	}
}

func TestStartNATSServesClients(t *testing.T) {
	nc := Connect(t, StartNATS(t))
	if !nc.IsConnected() {
		t.Fatal("not connected")
	}
}

func TestEventuallyPollsUntilTrue(t *testing.T) {
	n := 0
	Eventually(t, time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("polled %d times", n)
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	sample := make([]int, 1000)
	for i := range sample {
		sample[i] = i + 1
	}
	for _, tc := range []struct {
		q    float64
		want int
	}{{0, 1}, {.5, 501}, {.9, 901}, {.99, 991}, {.999, 1000}, {1, 1000}} {
		if got := Percentile(sample, tc.q); got != tc.want {
			t.Errorf("Percentile(1..1000, %v) = %d, want %d", tc.q, got, tc.want)
		}
	}
	if got := Percentile([]time.Duration(nil), .99); got != 0 {
		t.Errorf("empty sample: %v", got)
	}
	if got := Percentile([]int{1, 2}, .5); got != 2 {
		t.Errorf("p50 of {1, 2} = %d, want 2", got)
	}
}

// TestSeedAndDestroyRoom: a seeded room has the keys the services write,
// each expiring at the deadline, and DestroyRoom claims it exactly once.
func TestSeedAndDestroyRoom(t *testing.T) {
	rdb := StartRedis(t).Client(t)
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	ids := SeedRooms(t, rdb,
		Room{Deadline: deadline, Tokens: []string{"tok-a", "tok-b"}, Messages: []string{`{"seq":1}`}, Clients: map[string]int64{"m-0:c1": 1}},
		Room{ID: "fixed-room-id-xxxxxxxx", Deadline: deadline})
	if !contract.ValidRoomID(ids[0]) || ids[1] != "fixed-room-id-xxxxxxxx" {
		t.Fatalf("ids %v", ids)
	}
	id := ids[0]
	for _, key := range contract.RoomKeys(id) {
		at, err := rdb.PExpireTime(ctx, key).Result()
		if err != nil || !time.UnixMilli(int64(at/time.Millisecond)).Equal(deadline) {
			t.Errorf("%s expires at %v (%v), want %v", key, at, err, deadline)
		}
	}
	if m := rdb.HGet(ctx, contract.MembersKey(id), contract.TokenHash("tok-b")).Val(); m != "m-1" {
		t.Errorf("tok-b's marker %q, want m-1", m)
	}
	if s := rdb.ZScore(ctx, contract.DeadlinesKeyOf(id), id).Val(); int64(s) != deadline.UnixMilli() {
		t.Errorf("deadline entry %v", s)
	}
	if !DestroyRoom(t, rdb, id, time.Minute) || DestroyRoom(t, rdb, id, time.Minute) {
		t.Fatal("destroy claimed the room other than exactly once")
	}
	if _, err := rdb.ZScore(ctx, contract.EndingKeyOf(contract.DeadlinesKeyOf(id)), contract.EndingMember(contract.ReasonDestroyed, id)).Result(); err != nil {
		t.Fatalf("the claimed end is not in the ending set: %v", err)
	}
	EndAnnounced(t, rdb, contract.ReasonDestroyed, id)
	if n := rdb.ZCard(ctx, contract.EndingKeyOf(contract.DeadlinesKeyOf(id))).Val(); n != 0 {
		t.Fatalf("%d ends left after EndAnnounced", n)
	}
	if n := rdb.Exists(ctx, contract.RoomKeys(id)...).Val(); n != 0 {
		t.Fatalf("%d keys left", n)
	}
}
