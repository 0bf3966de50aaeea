package redisstore_test

import (
	"context"
	"errors"
	"fmt"
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
		m, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: who, Sender: "name", Text: "msg " + string(rune('a'+i))})
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
	if _, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-mallory", Sender: "m", Text: "hi"}); !errors.Is(err, message.ErrUnauthorized) {
		t.Fatalf("stranger send: %v", err)
	}
	if _, err := svc.List(ctx, roomID, "tok-mallory", 0); !errors.Is(err, message.ErrUnauthorized) {
		t.Fatalf("stranger list: %v", err)
	}
	r.Client(t).Del(ctx, contract.RoomKey(roomID))
	if _, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-alice", Sender: "a", Text: "hi"}); !errors.Is(err, message.ErrRoomGone) {
		t.Fatalf("send to a gone room: %v, want ErrRoomGone", err)
	}
	if n := r.Client(t).Exists(ctx, contract.MessagesKey(roomID)).Val(); n != 0 {
		t.Fatal("a send to a gone room created its message list")
	}
}

// TestSendAtDeadlineLeavesNoKeyWithoutTTL hammers a room with sends (each
// with a clientId) across its deadline: every message or clients key that
// exists at any moment has a TTL, and
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
				_, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-alice", Sender: "a", Text: "tick",
					ClientID: contract.RandomID(22)})
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
		for _, key := range []string{contract.MessagesKey(roomID), contract.ClientsKey(roomID)} {
			if ttl := rdb.PTTL(ctx, key).Val(); ttl == -1 {
				t.Fatalf("%s exists without a TTL", key)
			}
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
		if _, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-alice", Sender: "a", Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-alice", Sender: "a", Text: "x"}); !errors.Is(err, message.ErrRoomFull) {
		t.Fatalf("4th message in a room of 3: %v", err)
	}
}

func TestListPages(t *testing.T) {
	svc, _, _ := setup(t, time.Now().Add(time.Minute), 1000)
	ctx := context.Background()
	for range message.PageSize + 5 {
		if _, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-alice", Sender: "a", Text: "x"}); err != nil {
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
		if _, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-bob", Sender: "b", Text: tx}); err != nil {
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

// TestSameClientIDConcurrentlyStoresOnce: 20 sends of one clientId by one
// member at once store one message; every reply is that message, and each
// send announces it (clients drop repeats by id).
func TestSameClientIDConcurrentlyStoresOnce(t *testing.T) {
	svc, _, rec := setup(t, time.Now().Add(time.Minute), 1000)
	ctx := context.Background()
	const n = 20
	replies := make([]contract.Message, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-alice", Sender: "a",
				Text: "try " + string(rune('a'+i)), ClientID: "same-client-id"})
			if err != nil {
				t.Errorf("send %d: %v", i, err)
			}
			replies[i] = m
		})
	}
	wg.Wait()
	stored, err := svc.List(ctx, roomID, "tok-alice", 0)
	if err != nil || len(stored) != 1 {
		t.Fatalf("list: %d messages (%v), want exactly 1", len(stored), err)
	}
	first := stored[0]
	for i, m := range replies {
		if m != first {
			t.Fatalf("reply %d = %+v, want the stored message %+v", i, m, first)
		}
	}
	if len(rec.msgs) != n {
		t.Fatalf("announced %d times, want once per send (%d)", len(rec.msgs), n)
	}
	for _, m := range rec.msgs {
		if m.ID != first.ID || m.Seq != first.Seq || m.Text != first.Text {
			t.Fatalf("announced %+v, want the stored message %+v", m, first)
		}
	}
}

// TestRetryReturnsTheFirstSend: a retry whose text (or sender) differs gets
// the message as first stored, not its own; the other member's use of the
// same clientId is a message of its own; a retry in a room that has since
// filled up still gets its message rather than 409.
func TestRetryReturnsTheFirstSend(t *testing.T) {
	svc, _, _ := setup(t, time.Now().Add(time.Minute), 2)
	ctx := context.Background()
	first, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-alice", Sender: "alice", Text: "first", ClientID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	retry, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-alice", Sender: "alice2", Text: "edited", ClientID: "c1"})
	if err != nil || retry != first {
		t.Fatalf("retry = %+v, %v; want the first send %+v", retry, err, first)
	}
	bob, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-bob", Sender: "bob", Text: "mine", ClientID: "c1"})
	if err != nil || bob.Seq != 2 || bob.ID == first.ID || bob.Text != "mine" || bob.Token == first.Token {
		t.Fatalf("other member's send with the same clientId = %+v, %v; want a new message 2", bob, err)
	}
	// The room is full now (2 of 2): both retries still answer.
	if again, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-alice", Sender: "alice", Text: "first", ClientID: "c1"}); err != nil || again != first {
		t.Fatalf("alice's retry in a full room = %+v, %v", again, err)
	}
	if again, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-bob", Sender: "bob", Text: "mine", ClientID: "c1"}); err != nil || again != bob {
		t.Fatalf("bob's retry in a full room = %+v, %v", again, err)
	}
	if _, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-alice", Sender: "alice", Text: "new", ClientID: "c2"}); !errors.Is(err, message.ErrRoomFull) {
		t.Fatalf("a new clientId in a full room: %v, want ErrRoomFull", err)
	}
	all, _ := svc.List(ctx, roomID, "tok-bob", 0)
	if len(all) != 2 || all[0].Text != "first" || all[1].Text != "mine" {
		t.Fatalf("stored %+v", all)
	}
}

// TestClientsKeyEndsWithTheRoom: the clients key expires at the room's
// deadline exactly, like the message list; sends without a clientId leave
// no clients key at all.
func TestClientsKeyEndsWithTheRoom(t *testing.T) {
	deadline := time.UnixMilli(time.Now().Add(time.Minute).UnixMilli())
	svc, r, _ := setup(t, deadline, 1000)
	rdb := r.Client(t)
	ctx := context.Background()
	if _, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-alice", Sender: "a", Text: "x"}); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, contract.ClientsKey(roomID)).Val(); n != 0 {
		t.Fatal("a send without clientId wrote a clients key")
	}
	if _, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-alice", Sender: "a", Text: "x", ClientID: "c1"}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{contract.ClientsKey(roomID), contract.MessagesKey(roomID), contract.RoomKey(roomID)} {
		at, err := rdb.PExpireTime(ctx, key).Result()
		if err != nil || at != time.Duration(deadline.UnixMilli())*time.Millisecond {
			t.Fatalf("%s expires at %v (%v), want the room's deadline %d ms", key, at, err, deadline.UnixMilli())
		}
	}
}

// TestEndToEndRoomStoresEnvelopesOnly: an end-to-end room stores and lists
// envelopes as sent, and refuses plain text (no downgrade); a plain room
// refuses envelopes. Nothing refused is stored.
func TestEndToEndRoomStoresEnvelopesOnly(t *testing.T) {
	svc, r, _ := setup(t, time.Now().Add(time.Minute), 1000)
	ctx := context.Background()
	env := "AQ" + strings.Repeat("A", 120)
	sealed := contract.SendRequest{RoomID: roomID, Token: "tok-alice", Envelope: env, ClientID: "c1"}
	plain := contract.SendRequest{RoomID: roomID, Token: "tok-alice", Sender: "alice", Text: "hello"}

	if _, err := svc.Send(ctx, sealed); !errors.Is(err, message.ErrPlainOnly) {
		t.Fatalf("an envelope into a plain room: %v, want ErrPlainOnly", err)
	}
	r.Client(t).HSet(ctx, contract.RoomKey(roomID), "e2e", "1")
	if _, err := svc.Send(ctx, plain); !errors.Is(err, message.ErrSealedOnly) {
		t.Fatalf("plain text into an end-to-end room: %v, want ErrSealedOnly", err)
	}
	m, err := svc.Send(ctx, sealed)
	if err != nil || m.Seq != 1 || m.Envelope != env || m.Sender != "" || m.Text != "" {
		t.Fatalf("sealed send: %+v %v", m, err)
	}
	list, err := svc.List(ctx, roomID, "tok-bob", 0)
	if err != nil || len(list) != 1 || list[0].Envelope != env || list[0].Sender != "" {
		t.Fatalf("list: %+v %v", list, err)
	}
	raw := r.Client(t).LIndex(ctx, contract.MessagesKey(roomID), 0).Val()
	if !strings.Contains(raw, `"sender":"","text":"","envelope":"`+env+`"`) {
		t.Fatalf("stored entry %s", raw)
	}
}

// TestScriptsTouchOneSlot: every script of the store, as the store calls
// it (alone and pipelined), is given keys of one Redis Cluster slot.
func TestScriptsTouchOneSlot(t *testing.T) {
	r := testkit.StartRedis(t)
	rdb := r.Client(t)
	slots := testkit.WatchScriptSlots(rdb)
	testkit.SeedRoom(t, rdb, roomID, time.Now().Add(time.Minute), "tok-alice")
	svc := message.NewService(redisstore.NewMessages(rdb), &recorder{}, 1000)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 32 { // concurrent sends share pipelines
		wg.Go(func() {
			if _, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-alice", Sender: "a", Text: "m", ClientID: fmt.Sprint("c", i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := svc.List(ctx, roomID, "tok-alice", 0); err != nil {
		t.Fatal(err)
	}
	slots.RequireOneSlotEach(t, "lua")
}
