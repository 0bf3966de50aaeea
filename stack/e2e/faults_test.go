package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"wisp/contract"
	"wisp/stack/client"
	"wisp/testkit"
)

// TestSurvivesNATSAndRedisRestarts: a NATS restart keeps open sockets
// working (subscriptions come back with the connection), and a Redis
// restart — which loses every room, Redis being memory-only — tells the
// members on their sockets and leaves the system serving new rooms.
func TestSurvivesNATSAndRedisRestarts(t *testing.T) {
	s := startStack(t, 1, map[string]string{"ROOM_TTL": "30s"})
	ctx := context.Background()
	gw := s.Gateways()[0]
	p := openRoom(t, ctx, gw, gw)

	if err := s.RestartNATS(500 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// The services reconnect; a send then reaches the socket opened before.
	testkit.Eventually(t, 15*time.Second, func() error {
		_, err := p.a.Send(ctx, p.id, "alice", "after nats restart")
		return err
	})
	expectMessages(t, p.wsB, "after nats restart")

	if err := s.RestartRedis(); err != nil {
		t.Fatal(err)
	}
	// The expiry service notices the loss and asks the gateways to resync:
	// the members' sockets are told at once, not at the UI's next TTL poll.
	// The catch-up after NATS came back may repeat the message first.
	expectDestroy(t, p.wsB, contract.ReasonDestroyed, 10*time.Second, "after nats restart")
	for {
		f, err := p.wsA.Next(10 * time.Second) // alice's socket still holds her own message
		if err != nil {
			t.Fatalf("alice's socket, after Redis came back empty: %v", err)
		}
		if f.Event == contract.EventDestroy {
			break
		}
	}
	// The old room is gone with Redis's memory; the API says so plainly.
	testkit.Eventually(t, 10*time.Second, func() error {
		_, err := p.a.TTL(ctx, p.id)
		var se *client.StatusError
		if errors.As(err, &se) && se.Status == 401 {
			return nil
		}
		if err == nil {
			return errors.New("a room lost with Redis still answers ttl")
		}
		return fmt.Errorf("ttl of a room lost with Redis: %w", err)
	})
	// New rooms work.
	testkit.Eventually(t, 10*time.Second, func() error {
		_, err := client.New(gw).Create(ctx)
		return err
	})
	fresh := openRoom(t, ctx, gw, gw)
	if _, err := fresh.b.Send(ctx, fresh.id, "bob", "after redis restart"); err != nil {
		t.Fatal(err)
	}
	expectMessages(t, fresh.wsA, "after redis restart")
	expectMessages(t, fresh.wsB, "after redis restart") // the sender's own socket too
	if err := fresh.a.Destroy(ctx, fresh.id); err != nil {
		t.Fatal(err)
	}
	expectDestroy(t, fresh.wsB, contract.ReasonDestroyed, 3*time.Second)
}
