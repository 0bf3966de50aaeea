package natsrpc_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/test"

	"wisp/platform/natsrpc"
)

// A handler works until its caller stops waiting: the caller's own
// timeout when it sent one, the server's (at its real value, outlived
// twice) when it did not; either way the call is answered 503.
func TestAHandlersDeadlineIsItsCallers(t *testing.T) {
	t.Parallel()
	ns := test.RunRandClientPortServer()
	t.Cleanup(ns.Shutdown)
	srv, nc := newServer(t, ns, "test")
	left := make(chan time.Duration, 1)
	if err := natsrpc.Handle(srv, "wait", "test.wait", func(ctx context.Context, _ echo) (echo, error) {
		d, _ := ctx.Deadline()
		left <- time.Until(d)
		<-ctx.Done()
		return echo{}, ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	client := connect(t, ns)

	// The caller waits 1 s: the handler has that, not the server's 5 s.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := natsrpc.Call[echo](ctx, client, "test.wait", echo{}); !busy(err) {
		t.Fatalf("a call whose handler outlived its timeout: %v, want 503", err)
	}
	if d := <-left; d > time.Second || d < 800*time.Millisecond {
		t.Fatalf("the handler had %v for a caller waiting 1 s", d)
	}

	// No timeout from the caller: the server's own, twice in a row.
	limit := natsrpc.ServerTimeout(srv)
	for range 2 {
		start := time.Now()
		if _, err := natsrpc.Call[echo](context.Background(), client, "test.wait", echo{}); !busy(err) {
			t.Fatalf("a call without a timeout whose handler never finished: %v, want 503", err)
		}
		if d := <-left; d > limit || d < limit-200*time.Millisecond {
			t.Fatalf("the handler had %v without a caller timeout, want the server's %v", d, limit)
		}
		if took := time.Since(start); took < limit || took > limit+2*time.Second {
			t.Fatalf("answered after %v, want the server's timeout %v", took, limit)
		}
	}
}
