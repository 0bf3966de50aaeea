package natsclient_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"wisp/contract"
	"wisp/services/gateway/internal/natsclient"
	"wisp/testkit"
)

// replica answers subject: the first `fail` requests with 503 (a replica
// cut off from Redis), the rest with reply. It counts what it was asked.
func replica(t *testing.T, nc *nats.Conn, subject string, fail int32, reply string) *atomic.Int32 {
	t.Helper()
	var asked atomic.Int32
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		if asked.Add(1) <= fail {
			_ = m.RespondMsg(&nats.Msg{Header: nats.Header{contract.HeaderErrorCode: {contract.CodeUnavailable},
				contract.HeaderError: {"service unavailable"}}})
			return
		}
		_ = m.Respond([]byte(reply))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &asked
}

func code(err error) string {
	if ce, ok := errors.AsType[*contract.Error](err); ok {
		return ce.Code
	}
	return ""
}

// TestCallsThatMayRepeatAreTriedOnceMore: a read, or a send with a
// clientId, that a replica answers 503 is tried once more and succeeds; a
// send without a clientId is not repeated (it could be stored twice).
func TestCallsThatMayRepeatAreTriedOnceMore(t *testing.T) {
	ns := testkit.StartNATS(t)
	b := natsclient.NewBackend(testkit.Connect(t, ns), 2*time.Second)
	ctx := context.Background()

	ttl := replica(t, testkit.Connect(t, ns), contract.SubjectRoomTTL, 1, `{"ttl":42}`)
	got, err := b.TTL(ctx, "room", "tok")
	if err != nil || string(got) != `{"ttl":42}` || ttl.Load() != 2 {
		t.Fatalf("TTL = %s, %v after %d requests; want the second try's answer", got, err, ttl.Load())
	}

	sends := replica(t, testkit.Connect(t, ns), contract.SubjectMessageSend, 1, `{"message":{}}`)
	if _, err := b.Send(ctx, contract.SendRequest{RoomID: "room", Token: "tok", Text: "hi"}); code(err) != contract.CodeUnavailable || sends.Load() != 1 {
		t.Fatalf("send without clientId: %v after %d requests; want 503 after one", err, sends.Load())
	}
	sends.Store(0)
	if _, err := b.Send(ctx, contract.SendRequest{RoomID: "room", Token: "tok", Text: "hi", ClientID: "c-1"}); err != nil || sends.Load() != 2 {
		t.Fatalf("send with clientId: %v after %d requests; want it stored on the second try", err, sends.Load())
	}
}

// TestEveryCallIsTriedAgainWhenNoReplicaGotIt: a room creation, which is
// never repeated once a replica had it, is sent again when no replica was
// there to receive it (one that just started, not yet known to this
// gateway's NATS node), and succeeds once one is.
func TestEveryCallIsTriedAgainWhenNoReplicaGotIt(t *testing.T) {
	ns := testkit.StartNATS(t)
	b := natsclient.NewBackend(testkit.Connect(t, ns), 2*time.Second)
	requests := func() int64 {
		v, err := ns.Varz(nil)
		if err != nil {
			t.Error(err)
			return 0
		}
		return v.InMsgs
	}
	before := requests()
	var asked *atomic.Int32
	started := make(chan struct{})
	go func() {
		defer close(started)
		// The replica comes once the first try has found nobody.
		for requests() == before {
			time.Sleep(time.Millisecond)
		}
		asked = replica(t, testkit.Connect(t, ns), contract.SubjectRoomCreate, 0, `{"roomId":"r1"}`)
	}()
	rep, err := b.CreateRoom(context.Background(), contract.CreateRoomRequest{})
	<-started
	if err != nil || rep.RoomID != "r1" || asked.Load() != 1 {
		t.Fatalf("create = %+v, %v; want the room from the second try, the replica asked once", rep, err)
	}
}

// TestUnavailableAtOnceWithoutNATS: with no replica listening a call is
// 503 after one retry, and with NATS away it is 503 at once, not after the
// call's timeout.
func TestUnavailableAtOnceWithoutNATS(t *testing.T) {
	ns := testkit.StartNATS(t)
	nc, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b := natsclient.NewBackend(nc, 10*time.Second)
	ctx := context.Background()

	start := time.Now()
	if _, err := b.Authorize(ctx, "room", "tok"); code(err) != contract.CodeUnavailable {
		t.Fatalf("authorize with no replica: %v, want 503", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("no replica: answered after %v", took)
	}

	ns.Shutdown()
	testkit.Eventually(t, 5*time.Second, func() error {
		if nc.IsConnected() {
			return errors.New("still connected")
		}
		return nil
	})
	start = time.Now()
	if _, err := b.Authorize(ctx, "room", "tok"); code(err) != contract.CodeUnavailable {
		t.Fatalf("authorize with NATS away: %v, want 503", err)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("NATS away: answered after %v, want at once", took)
	}
}
