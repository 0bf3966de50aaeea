package natsrpc_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/test"

	"wisp/platform/natsrpc"
)

// TestWorkersEndWhenIdle: a burst's workers serve the next requests while
// they come, end once none came for the idle time, and a request after
// that is served by a new one — with the idle time shortened, and at its
// real value (outlived twice).
func TestWorkersEndWhenIdle(t *testing.T) {
	for _, idle := range []time.Duration{200 * time.Millisecond, natsrpc.WorkerIdle} {
		t.Run(idle.String(), func(t *testing.T) {
			t.Parallel()
			ns := test.RunRandClientPortServer()
			t.Cleanup(ns.Shutdown)
			s, nc := newServer(t, ns, "test")
			natsrpc.SetWorkerIdle(s, idle)
			release := make(chan struct{})
			if err := natsrpc.Handle(s, "wait", "test.wait", func(ctx context.Context, n int) (int, error) {
				if n == 1 {
					<-release
				}
				return n, nil
			}); err != nil {
				t.Fatal(err)
			}
			call := func(n int) error {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_, err := natsrpc.Call[int](ctx, nc, "test.wait", n)
				return err
			}

			// Three requests at once: three workers.
			done := make(chan error, 3)
			for range 3 {
				go func() { done <- call(1) }()
			}
			for natsrpc.Workers(s) < 3 {
				time.Sleep(time.Millisecond)
			}
			close(release)
			for range 3 {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			// Requests that keep coming within the idle time keep them.
			for range 5 {
				if err := call(2); err != nil {
					t.Fatal(err)
				}
				time.Sleep(idle / 10)
			}
			// (A request that comes while its worker is still between its
			// reply and its next receive may start one more: at least 3.)
			if n := natsrpc.Workers(s); n < 3 {
				t.Fatalf("%d workers while requests kept coming; none of the burst's 3 should have ended", n)
			}
			time.Sleep(2 * idle)
			if n := natsrpc.Workers(s); n != 0 {
				t.Fatalf("%d workers after %v idle, want 0", n, 2*idle)
			}
			if err := call(2); err != nil {
				t.Fatalf("request after the workers ended: %v", err)
			}
		})
	}
}
