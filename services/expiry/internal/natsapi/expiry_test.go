package natsapi_test

import (
	"context"
	"testing"
	"time"

	"wisp/contract"
	"wisp/services/expiry/internal/natsapi"
	"wisp/testkit"
)

// TestPublishesTheContractFrames: chat.destroy of either reason on the
// room's subject, the resync on its subject, and Flush confirms them.
func TestPublishesTheContractFrames(t *testing.T) {
	ns := testkit.StartNATS(t)
	subConn := testkit.Connect(t, ns)
	sub, err := subConn.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	if err := subConn.Flush(); err != nil {
		t.Fatal(err)
	}
	nc := testkit.Connect(t, ns)
	pub := natsapi.NewPublisher(nc, nc, time.Second)
	ctx := context.Background()
	id := "V1StGXR8_Z5jdHi6B-myT"
	for _, reason := range []string{contract.ReasonExpired, contract.ReasonDestroyed} {
		if err := pub.Ended(ctx, id, reason); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ subject, data string }{
		{contract.DestroySubject(id), string(contract.DestroyEvent(contract.ReasonExpired))},
		{contract.DestroySubject(id), string(contract.DestroyEvent(contract.ReasonDestroyed))},
		{contract.SubjectResync, ""},
	} {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != want.subject || string(m.Data) != want.data {
			t.Fatalf("got %s %q, want %s %q", m.Subject, m.Data, want.subject, want.data)
		}
	}
}

// TestFlushFailsAtOnceWhileDisconnected: an announcement buffered for a
// reconnect is not confirmed, and saying so takes no time.
func TestFlushFailsAtOnceWhileDisconnected(t *testing.T) {
	ns := testkit.StartNATS(t)
	nc := testkit.Connect(t, ns)
	ns.Shutdown()
	testkit.Eventually(t, 5*time.Second, func() error {
		if nc.IsConnected() {
			return context.DeadlineExceeded
		}
		return nil
	})
	pub := natsapi.NewPublisher(nc, nc, 5*time.Second)
	start := time.Now()
	if err := pub.Flush(context.Background()); err == nil {
		t.Fatal("Flush succeeded with NATS down")
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("Flush took %v to fail", d)
	}
}
