package redisstore_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"wisp/contract"
	"wisp/services/messages/internal/message"
	"wisp/services/messages/internal/redisstore"
	"wisp/testkit"
)

const roomID = "V1StGXR8_Z5jdHi6B-myT"

type recorder struct {
	mu   sync.Mutex
	msgs []contract.Message
}

func (r *recorder) Published(_ context.Context, m contract.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return nil
}

func setup(t *testing.T, deadline time.Time, limit int) (*message.Service, *testkit.Redis, *recorder) {
	r := testkit.StartRedis(t)
	testkit.SeedRoom(t, r.Client(t), roomID, deadline, "tok-alice", "tok-bob")
	rec := &recorder{}
	return message.NewService(redisstore.NewMessages(r.Client(t)), rec, limit), r, rec
}

func TestSendNumbersAndListsOldestFirst(t *testing.T) {
	svc, _, rec := setup(t, time.Now().Add(time.Minute), 1000)
	ctx := context.Background()
	for i, who := range []string{"tok-alice", "tok-bob", "tok-alice"} {
		m, err := svc.Send(ctx, roomID, who, "name", "msg "+string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		if m.Seq != int64(i+1) || m.Token == "" || m.Token == who {
			t.Fatalf("send %d: %+v (token must be the author's marker, never the secret)", i, m)
		}
	}
	if len(rec.msgs) != 3 {
		t.Fatalf("published %d, want 3", len(rec.msgs))
	}
	alice, err := svc.List(ctx, roomID, "tok-alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := svc.List(ctx, roomID, "tok-bob", 0)
	if len(alice) != 3 || alice[0].Text != "msg a" || alice[2].Seq != 3 {
		t.Fatalf("alice sees %+v", alice)
	}
	// Token stripping: each sees a token on their own messages only, and it
	// is never a secret token.
	for i, want := range []bool{true, false, true} {
		if (alice[i].Token != "") != want || (bob[i].Token != "") == want {
			t.Fatalf("message %d: alice token %q, bob token %q", i, alice[i].Token, bob[i].Token)
		}
		for _, m := range []contract.Message{alice[i], bob[i]} {
			if strings.HasPrefix(m.Token, "tok-") {
				t.Fatalf("secret token leaked: %+v", m)
			}
		}
	}
	later, _ := svc.List(ctx, roomID, "tok-bob", 1)
	if len(later) != 2 || later[0].Seq != 2 {
		t.Fatalf("after=1 returned %+v", later)
	}
	if none, _ := svc.List(ctx, roomID, "tok-bob", 3); len(none) != 0 {
		t.Fatalf("after=3 returned %+v", none)
	}
}

func TestStrangersAndGoneRoomsAreRefused(t *testing.T) {
	svc, r, _ := setup(t, time.Now().Add(time.Minute), 1000)
	ctx := context.Background()
	if _, err := svc.Send(ctx, roomID, "tok-mallory", "m", "hi"); !errors.Is(err, message.ErrUnauthorized) {
		t.Fatalf("stranger send: %v", err)
	}
	if _, err := svc.List(ctx, roomID, "tok-mallory", 0); !errors.Is(err, message.ErrUnauthorized) {
		t.Fatalf("stranger list: %v", err)
	}
	r.Client(t).Del(ctx, contract.RoomKey(roomID))
	if _, err := svc.Send(ctx, roomID, "tok-alice", "a", "hi"); !errors.Is(err, message.ErrRoomGone) {
		t.Fatalf("send to a gone room: %v, want ErrRoomGone", err)
	}
	if n := r.Client(t).Exists(ctx, contract.MessagesKey(roomID)).Val(); n != 0 {
		t.Fatal("a send to a gone room created its message list")
	}
}

// TestSendAtDeadlineLeavesNoKeyWithoutTTL hammers a room with sends across
// its deadline: every message key that exists at any moment has a TTL, and
// nothing is left once the room is gone.
func TestSendAtDeadlineLeavesNoKeyWithoutTTL(t *testing.T) {
	deadline := time.Now().Add(300 * time.Millisecond)
	svc, r, _ := setup(t, deadline, 100000)
	rdb := r.Client(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := time.Now().Add(600 * time.Millisecond)
	var sent, gone sync.Map
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				_, err := svc.Send(ctx, roomID, "tok-alice", "a", "tick")
				switch {
				case err == nil:
					sent.Store(w, true)
				case errors.Is(err, message.ErrRoomGone), errors.Is(err, message.ErrUnauthorized):
					gone.Store(w, true)
				default:
					t.Errorf("send: %v", err)
					return
				}
			}
		}()
	}
	for time.Now().Before(stop) {
		if ttl := rdb.PTTL(ctx, contract.MessagesKey(roomID)).Val(); ttl == -1 {
			t.Fatal("message list exists without a TTL")
		}
	}
	wg.Wait()
	if _, ok := sent.Load(0); !ok {
		t.Fatal("no send succeeded before the deadline")
	}
	if _, ok := gone.Load(0); !ok {
		t.Fatal("no send was refused after the deadline")
	}
	testkit.Eventually(t, 2*time.Second, func() error {
		if keys := rdb.Keys(ctx, "*"+roomID+"*").Val(); len(keys) != 0 {
			return errors.New("keys left: " + strings.Join(keys, ","))
		}
		return nil
	})
}

func TestRoomMessageLimit(t *testing.T) {
	svc, _, _ := setup(t, time.Now().Add(time.Minute), 3)
	ctx := context.Background()
	for range 3 {
		if _, err := svc.Send(ctx, roomID, "tok-alice", "a", "x"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Send(ctx, roomID, "tok-alice", "a", "x"); !errors.Is(err, message.ErrRoomFull) {
		t.Fatalf("4th message in a room of 3: %v", err)
	}
}

func TestListPages(t *testing.T) {
	svc, _, _ := setup(t, time.Now().Add(time.Minute), 1000)
	ctx := context.Background()
	for range message.PageSize + 5 {
		if _, err := svc.Send(ctx, roomID, "tok-alice", "a", "x"); err != nil {
			t.Fatal(err)
		}
	}
	first, _ := svc.List(ctx, roomID, "tok-alice", 0)
	rest, _ := svc.List(ctx, roomID, "tok-alice", first[len(first)-1].Seq)
	if len(first) != message.PageSize || len(rest) != 5 || rest[4].Seq != message.PageSize+5 {
		t.Fatalf("pages of %d and %d", len(first), len(rest))
	}
}

func TestTextIsStoredVerbatim(t *testing.T) {
	svc, _, _ := setup(t, time.Now().Add(time.Minute), 1000)
	ctx := context.Background()
	texts := []string{`<img src=x onerror=alert(1)>`, `"quoted" \ back\slash`, "emoji 😀 and 中文", `{"seq":99,"author":"x"}`}
	for _, tx := range texts {
		if _, err := svc.Send(ctx, roomID, "tok-bob", "b", tx); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := svc.List(ctx, roomID, "tok-bob", 0)
	for i, tx := range texts {
		if got[i].Text != tx || got[i].Seq != int64(i+1) {
			t.Fatalf("message %d = %+v, want text %q", i, got[i], tx)
		}
	}
}
