package redisstore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"wisp/contract"
	"wisp/services/rooms/internal/redisstore"
	"wisp/services/rooms/internal/room"
	"wisp/testkit"
)

type nopPublisher struct{ n atomic.Int32 }

func (p *nopPublisher) Destroyed(context.Context, string, string) error { p.n.Add(1); return nil }

func newService(t *testing.T, ttl time.Duration) (*room.Service, *testkit.Redis, *nopPublisher) {
	r := testkit.StartRedis(t)
	pub := &nopPublisher{}
	return room.NewService(redisstore.NewRooms(r.Client(t)), pub, ttl, time.Second), r, pub
}

func TestCreateSetsTTLAndDeadline(t *testing.T) {
	svc, r, _ := newService(t, 10*time.Minute)
	ctx := context.Background()
	rm, err := svc.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !contract.ValidRoomID(rm.ID) || len(rm.ID) < 21 {
		t.Fatalf("room id %q is not 21+ chars of the nanoid alphabet", rm.ID)
	}
	rdb := r.Client(t)
	ttl := rdb.PTTL(ctx, contract.RoomKey(rm.ID)).Val()
	if ttl < 9*time.Minute || ttl > 10*time.Minute {
		t.Fatalf("room key TTL = %v, want ~10m", ttl)
	}
	score, err := rdb.ZScore(ctx, contract.DeadlinesKeyOf(rm.ID), rm.ID).Result()
	if err != nil || int64(score) != rm.ExpiresAt.UnixMilli() {
		t.Fatalf("deadline set has %v (%v), want %d", score, err, rm.ExpiresAt.UnixMilli())
	}
	if n := rdb.HLen(ctx, contract.MembersKey(rm.ID)).Val(); n != 0 {
		t.Fatalf("new room has %d members", n)
	}
}

// TestJoinRaceAdmitsExactlyTwo: 100 concurrent first visits of one room
// admit exactly two, and both admitted tokens work afterwards.
func TestJoinRaceAdmitsExactlyTwo(t *testing.T) {
	svc, _, _ := newService(t, time.Minute)
	ctx := context.Background()
	rm, err := svc.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		tokens []string
		full   atomic.Int32
	)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := svc.Join(ctx, rm.ID, "")
			switch {
			case err == nil && m.Joined:
				mu.Lock()
				tokens = append(tokens, m.Token)
				mu.Unlock()
			case errors.Is(err, room.ErrFull):
				full.Add(1)
			default:
				t.Errorf("join: %+v %v", m, err)
			}
		}()
	}
	wg.Wait()
	if len(tokens) != 2 || full.Load() != 98 {
		t.Fatalf("admitted %d, refused %d; want 2 and 98", len(tokens), full.Load())
	}
	for _, tok := range tokens {
		if len(tok) < 22 { // 22 chars of 6 bits = 132 bits
			t.Fatalf("token %q carries fewer than 128 bits", tok)
		}
		if _, err := svc.Authorize(ctx, rm.ID, tok); err != nil {
			t.Fatalf("admitted token refused: %v", err)
		}
	}
}

func TestRejoinKeepsSlot(t *testing.T) {
	svc, _, _ := newService(t, time.Minute)
	ctx := context.Background()
	rm, _ := svc.Create(ctx)
	a, err := svc.Join(ctx, rm.ID, "")
	if err != nil || !a.Joined {
		t.Fatalf("first join: %+v %v", a, err)
	}
	again, err := svc.Join(ctx, rm.ID, a.Token)
	if err != nil || again.Joined || again.Token != a.Token {
		t.Fatalf("rejoin took a new slot or changed token: %+v %v", again, err)
	}
	if _, err := svc.Join(ctx, rm.ID, "stale-or-foreign-token"); err != nil {
		t.Fatalf("second member refused: %v", err)
	}
	if _, err := svc.Join(ctx, rm.ID, ""); !errors.Is(err, room.ErrFull) {
		t.Fatalf("third member: %v, want ErrFull", err)
	}
	if _, err := svc.Join(ctx, rm.ID, a.Token); err != nil {
		t.Fatalf("member refused in a full room: %v", err)
	}
	if _, err := svc.Join(ctx, "V1StGXR8_Z5jdHi6B-myT", ""); !errors.Is(err, room.ErrNotFound) {
		t.Fatalf("unknown room: %v", err)
	}
}

func TestTTLAndAuthorize(t *testing.T) {
	svc, _, _ := newService(t, 90*time.Second)
	ctx := context.Background()
	rm, _ := svc.Create(ctx)
	m, _ := svc.Join(ctx, rm.ID, "")
	ttl, err := svc.TTL(ctx, rm.ID, m.Token)
	if err != nil || ttl < 89 || ttl > 90 {
		t.Fatalf("ttl = %d, %v; want 89..90", ttl, err)
	}
	if _, err := svc.TTL(ctx, rm.ID, "nope"); !errors.Is(err, room.ErrUnauthorized) {
		t.Fatalf("ttl with a bad token: %v", err)
	}
	if _, err := svc.Authorize(ctx, rm.ID, ""); !errors.Is(err, room.ErrUnauthorized) {
		t.Fatalf("authorize without token: %v", err)
	}
}

// TestEndToEndRoomIsMarked: an end-to-end room keeps the mark in its hash
// (gone with it), and authorize reports it; a plain room has none.
func TestEndToEndRoomIsMarked(t *testing.T) {
	svc, r, _ := newService(t, time.Minute)
	ctx := context.Background()
	for _, e2e := range []bool{true, false} {
		rm, err := svc.CreateWith(ctx, 0, e2e)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Client(t).HGet(ctx, contract.RoomKey(rm.ID), "e2e").Val(); got != map[bool]string{true: "1"}[e2e] {
			t.Errorf("e2e=%v: the room hash's e2e field is %q", e2e, got)
		}
		m, _ := svc.Join(ctx, rm.ID, "")
		a, err := svc.Authorize(ctx, rm.ID, m.Token)
		if err != nil || a.E2E != e2e {
			t.Errorf("e2e=%v: authorize %+v %v", e2e, a, err)
		}
	}
}

// TestAuthorizeNamesTheMember: authorize says which member a token is, by
// the public marker its join stored (the token its messages carry), the
// same on every call and different for the two members.
func TestAuthorizeNamesTheMember(t *testing.T) {
	svc, r, _ := newService(t, time.Minute)
	ctx := context.Background()
	rm, _ := svc.Create(ctx)
	a, _ := svc.Join(ctx, rm.ID, "")
	b, _ := svc.Join(ctx, rm.ID, "")
	rdb := r.Client(t)
	var seen []string
	for _, tok := range []string{a.Token, b.Token} {
		stored, err := rdb.HGet(ctx, contract.MembersKey(rm.ID), contract.TokenHash(tok)).Result()
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			acc, err := svc.Authorize(ctx, rm.ID, tok)
			if err != nil || acc.Member != stored || acc.Member == tok || !acc.ExpiresAt.Equal(rm.ExpiresAt.Truncate(time.Millisecond)) {
				t.Fatalf("authorize = %+v, %v; want member %q (the stored marker, never the token), expiring %v", acc, err, stored, rm.ExpiresAt)
			}
		}
		seen = append(seen, stored)
	}
	if seen[0] == "" || seen[0] == seen[1] {
		t.Fatalf("members' markers %q and %q do not tell them apart", seen[0], seen[1])
	}
}

// TestAuthorizeNamesTheNewestSeq: a gateway that must catch its sockets up
// learns where the room's messages stand when it authorizes.
func TestAuthorizeNamesTheNewestSeq(t *testing.T) {
	svc, r, _ := newService(t, time.Minute)
	ctx := context.Background()
	rm, _ := svc.Create(ctx)
	a, _ := svc.Join(ctx, rm.ID, "")
	if acc, _ := svc.Authorize(ctx, rm.ID, a.Token); acc.LastSeq != 0 {
		t.Fatalf("empty room: last seq %d", acc.LastSeq)
	}
	rdb := r.Client(t)
	for range 3 { // the messages service's layout: entry i has seq i+1
		rdb.RPush(ctx, contract.MessagesKey(rm.ID), `{}`)
	}
	if acc, _ := svc.Authorize(ctx, rm.ID, a.Token); acc.LastSeq != 3 {
		t.Fatalf("last seq %d, want 3", acc.LastSeq)
	}
}

func TestRoomExpiresWithAllKeys(t *testing.T) {
	svc, r, _ := newService(t, 300*time.Millisecond)
	ctx := context.Background()
	rm, _ := svc.Create(ctx)
	m, _ := svc.Join(ctx, rm.ID, "")
	rdb := r.Client(t)
	if ttl := rdb.PTTL(ctx, contract.MembersKey(rm.ID)).Val(); ttl <= 0 {
		t.Fatalf("members key has no TTL: %v", ttl)
	}
	testkit.Eventually(t, 3*time.Second, func() error {
		if _, err := svc.Authorize(ctx, rm.ID, m.Token); !errors.Is(err, room.ErrUnauthorized) {
			return errors.New("member still authorized after the deadline")
		}
		return nil
	})
	if n := rdb.Exists(ctx, contract.RoomKey(rm.ID), contract.MembersKey(rm.ID)).Val(); n != 0 {
		t.Fatalf("%d keys outlived the room", n)
	}
}

func TestDestroyDeletesEveryKeyAndAnnouncesOnce(t *testing.T) {
	svc, r, pub := newService(t, time.Minute)
	ctx := context.Background()
	rm, _ := svc.Create(ctx)
	m, _ := svc.Join(ctx, rm.ID, "")
	rdb := r.Client(t)
	// What the messages service writes: a message and its clientId entry.
	rdb.RPush(ctx, contract.MessagesKey(rm.ID), "{}")
	rdb.HSet(ctx, contract.ClientsKey(rm.ID), "marker:client-id", 1)
	if err := svc.Destroy(ctx, rm.ID, "not-a-member"); !errors.Is(err, room.ErrUnauthorized) {
		t.Fatalf("destroy by a stranger: %v", err)
	}
	if err := svc.Destroy(ctx, rm.ID, m.Token); err != nil {
		t.Fatal(err)
	}
	if err := svc.Destroy(ctx, rm.ID, m.Token); !errors.Is(err, room.ErrUnauthorized) {
		t.Fatalf("second destroy: %v", err)
	}
	if keys := rdb.Keys(ctx, "*"+rm.ID+"*").Val(); len(keys) != 0 {
		t.Fatalf("keys left after destroy: %v", keys)
	}
	if rdb.ZScore(ctx, contract.DeadlinesKeyOf(rm.ID), rm.ID).Err() == nil {
		t.Fatal("room left in the deadline set")
	}
	if pub.n.Load() != 1 {
		t.Fatalf("chat.destroy published %d times", pub.n.Load())
	}
}

// TestDestroyRacingExpiryClaimIsExclusive: when something else (the expiry
// service) already claimed the room, destroy deletes but does not announce.
func TestDestroyRacingExpiryClaimIsExclusive(t *testing.T) {
	svc, r, pub := newService(t, time.Minute)
	ctx := context.Background()
	rm, _ := svc.Create(ctx)
	m, _ := svc.Join(ctx, rm.ID, "")
	r.Client(t).ZRem(ctx, contract.DeadlinesKeyOf(rm.ID), rm.ID)
	if err := svc.Destroy(ctx, rm.ID, m.Token); err != nil {
		t.Fatal(err)
	}
	if pub.n.Load() != 0 {
		t.Fatal("destroy announced a room another party had claimed")
	}
}

func TestSurvivesRedisRestart(t *testing.T) {
	svc, r, _ := newService(t, time.Minute)
	ctx := context.Background()
	if _, err := svc.Create(ctx); err != nil {
		t.Fatal(err)
	}
	r.Restart(t) // scripts are flushed; EVALSHA falls back to EVAL
	testkit.Eventually(t, 5*time.Second, func() error {
		rm, err := svc.Create(ctx)
		if err != nil {
			return err
		}
		_, err = svc.Join(ctx, rm.ID, "")
		return err
	})
}

// deadPublisher is a replica that dies between claiming a room's end and
// announcing it: its announcement never happens.
type deadPublisher struct{}

func (deadPublisher) Destroyed(context.Context, string, string) error {
	return errors.New("process killed")
}

// TestDestroyWhoseAnnouncerDiesLeavesTheEndLeased: a destroy that cannot
// announce leaves the room gone and its end in the ending set, under the
// lease, for the expiry service to announce when the lease runs out.
func TestDestroyWhoseAnnouncerDiesLeavesTheEndLeased(t *testing.T) {
	r := testkit.StartRedis(t)
	rdb := r.Client(t)
	const lease = 2 * time.Second
	svc := room.NewService(redisstore.NewRooms(rdb), deadPublisher{}, time.Minute, lease)
	ctx := context.Background()
	rm, _ := svc.Create(ctx)
	m, _ := svc.Join(ctx, rm.ID, "")
	before := time.Now()
	if err := svc.Destroy(ctx, rm.ID, m.Token); err == nil {
		t.Fatal("a destroy whose announcement failed reported success")
	}
	if keys := rdb.Keys(ctx, "*"+rm.ID+"*").Val(); len(keys) != 0 {
		t.Fatalf("keys left: %v", keys)
	}
	if rdb.ZScore(ctx, contract.DeadlinesKeyOf(rm.ID), rm.ID).Err() == nil {
		t.Fatal("room left in the deadline set")
	}
	score, err := rdb.ZScore(ctx, contract.EndingKeyOf(contract.DeadlinesKeyOf(rm.ID)), contract.EndingMember(contract.ReasonDestroyed, rm.ID)).Result()
	if err != nil {
		t.Fatalf("the claimed end is not in the ending set: %v", err)
	}
	if until := time.UnixMilli(int64(score)); until.Before(before.Add(lease-100*time.Millisecond)) || until.After(time.Now().Add(lease+100*time.Millisecond)) {
		t.Fatalf("lease ends %v from now, want about %v", time.Until(until), lease)
	}
	// An announced destroy leaves nothing behind.
	ok := room.NewService(redisstore.NewRooms(rdb), &nopPublisher{}, time.Minute, lease)
	rm, _ = ok.Create(ctx)
	m, _ = ok.Join(ctx, rm.ID, "")
	if err := ok.Destroy(ctx, rm.ID, m.Token); err != nil {
		t.Fatal(err)
	}
	n := int64(0)
	for _, shard := range contract.DeadlineShardKeys() {
		n += rdb.ZCard(ctx, contract.EndingKeyOf(shard)).Val()
	}
	if n != 1 {
		t.Fatalf("the ending sets hold %d ends, want only the dead replica's", n)
	}
}

// TestScriptsTouchOneSlot: every script of the store, as the store calls
// it, is given keys of one Redis Cluster slot (or Redis Cluster refuses it
// with CROSSSLOT).
func TestScriptsTouchOneSlot(t *testing.T) {
	r := testkit.StartRedis(t)
	rdb := r.Client(t)
	slots := testkit.WatchScriptSlots(rdb)
	svc := room.NewService(redisstore.NewRooms(rdb), &nopPublisher{}, time.Minute, time.Second)
	ctx := context.Background()
	for range 20 { // rooms in many slots and shards
		rm, err := svc.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m, err := svc.Join(ctx, rm.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Authorize(ctx, rm.ID, m.Token); err != nil {
			t.Fatal(err)
		}
		if err := svc.Destroy(ctx, rm.ID, m.Token); err != nil {
			t.Fatal(err)
		}
	}
	slots.RequireOneSlotEach(t, "lua")
}

// TestDestroyClaimsARoomOfTheUnshardedSet: a room an older rooms service
// put in the unsharded deadline set is claimed there, once.
func TestDestroyClaimsARoomOfTheUnshardedSet(t *testing.T) {
	svc, r, pub := newService(t, time.Minute)
	ctx := context.Background()
	rm, _ := svc.Create(ctx)
	m, _ := svc.Join(ctx, rm.ID, "")
	rdb := r.Client(t)
	score := rdb.ZScore(ctx, contract.DeadlinesKeyOf(rm.ID), rm.ID).Val()
	rdb.ZRem(ctx, contract.DeadlinesKeyOf(rm.ID), rm.ID)
	rdb.ZAdd(ctx, contract.DeadlinesKey, redis.Z{Score: score, Member: rm.ID})
	if err := svc.Destroy(ctx, rm.ID, m.Token); err != nil {
		t.Fatal(err)
	}
	if pub.n.Load() != 1 || rdb.ZCard(ctx, contract.DeadlinesKey).Val() != 0 || rdb.ZCard(ctx, contract.EndingKey).Val() != 0 {
		t.Fatalf("announced %d times; unsharded set %d, its ending set %d", pub.n.Load(),
			rdb.ZCard(ctx, contract.DeadlinesKey).Val(), rdb.ZCard(ctx, contract.EndingKey).Val())
	}
}

// TestConcurrentCreatesAndJoinsShareRoundTrips: many visitors at once (their
// scripts batched into pipelines, after Redis forgot its script cache) each
// get their own room, a deadline entry and exactly the members they joined.
func TestConcurrentCreatesAndJoinsShareRoundTrips(t *testing.T) {
	svc, r, _ := newService(t, time.Minute)
	ctx := context.Background()
	rdb := r.Client(t)
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	const visitors, each = 16, 20
	var mu sync.Mutex
	ids := map[string]bool{}
	var wg sync.WaitGroup
	for range visitors {
		wg.Go(func() {
			for range each {
				rm, err := svc.Create(ctx)
				if err != nil {
					t.Errorf("create: %v", err)
					return
				}
				for range 2 {
					if m, err := svc.Join(ctx, rm.ID, ""); err != nil || !m.Joined {
						t.Errorf("join %s: %+v %v", rm.ID, m, err)
						return
					}
				}
				mu.Lock()
				ids[rm.ID] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(ids) != visitors*each {
		t.Fatalf("%d distinct rooms, want %d", len(ids), visitors*each)
	}
	for id := range ids {
		if n := rdb.HLen(ctx, contract.MembersKey(id)).Val(); n != 2 {
			t.Fatalf("room %s has %d members, want 2", id, n)
		}
		if err := rdb.ZScore(ctx, contract.DeadlinesKeyOf(id), id).Err(); err != nil {
			t.Fatalf("room %s has no deadline entry: %v", id, err)
		}
	}
}
