package redisstore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	return room.NewService(redisstore.NewRooms(r.Client(t)), pub, ttl), r, pub
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
	score, err := rdb.ZScore(ctx, contract.DeadlinesKey, rm.ID).Result()
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
	rdb.RPush(ctx, contract.MessagesKey(rm.ID), "{}")
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
	if rdb.ZScore(ctx, contract.DeadlinesKey, rm.ID).Err() == nil {
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
	r.Client(t).ZRem(ctx, contract.DeadlinesKey, rm.ID)
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
