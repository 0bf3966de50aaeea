package natsrpc_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/test"

	"wisp/contract"
	"wisp/platform/natsrpc"
)

// held is an endpoint whose requests with N > 0 wait for release; worked
// counts the requests it was called for.
type held struct {
	entered chan int
	release chan struct{}
	worked  atomic.Int64
	call    func(n int, timeout time.Duration) (echo, error)
	srv     *natsrpc.Server
}

func newHeld(t *testing.T, workers, queued int) *held {
	t.Helper()
	ns := test.RunRandClientPortServer()
	t.Cleanup(ns.Shutdown)
	srv, nc := newServer(t, ns, "test")
	natsrpc.SetLimits(srv, workers, queued)
	h := &held{entered: make(chan int, 16), release: make(chan struct{}), srv: srv}
	if err := natsrpc.Handle(srv, "slow", "test.slow", func(_ context.Context, req echo) (echo, error) {
		h.worked.Add(1)
		if req.N > 0 {
			h.entered <- req.N
			<-h.release
		}
		return req, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	client := connect(t, ns)
	h.call = func(n int, timeout time.Duration) (echo, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		rep, err := natsrpc.Call[echo](ctx, client, "test.slow", echo{N: n})
		if err == nil && rep.N != n {
			err = fmt.Errorf("answer %d to request %d", rep.N, n)
		}
		return rep, err
	}
	return h
}

// waitQueued waits until n requests wait for a worker.
func (h *held) waitQueued(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); natsrpc.Queued(h.srv) != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", natsrpc.Queued(h.srv), n)
		}
	}
}

// start sends request n, whose caller waits timeout for the answer, and
// returns where its outcome will come.
func (h *held) start(n int, timeout time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() { _, err := h.call(n, timeout); done <- err }()
	return done
}

func busy(err error) bool {
	ce, ok := errors.AsType[*contract.Error](err)
	return ok && ce.Code == contract.CodeUnavailable
}

// A replica whose workers are all busy and whose queue is full answers the
// next request 503 at once, rather than leaving it in NATS past its
// caller's timeout; a queued request whose caller stopped waiting is not
// worked on (a send would be stored after its sender was told it failed);
// and the replica takes requests again as soon as a worker is free.
func TestABusyReplicaAnswersAtOnceAndRecovers(t *testing.T) {
	h := newHeld(t, 2, 1)
	first, second := h.start(1, 5*time.Second), h.start(2, 5*time.Second)
	<-h.entered
	<-h.entered
	impatient := h.start(0, 300*time.Millisecond)
	h.waitQueued(t, 1)

	start := time.Now()
	if _, err := h.call(0, 5*time.Second); !busy(err) {
		t.Fatalf("a request with both workers busy and the queue full: %v, want 503", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("the busy answer took %v: it waited for a worker", took)
	}
	if err := <-impatient; !busy(err) {
		t.Fatalf("a queued request whose caller gave up after 300 ms: %v, want 503", err)
	}

	close(h.release)
	for _, done := range []<-chan error{first, second} {
		if err := <-done; err != nil {
			t.Fatalf("a request being worked on when the replica got busy: %v", err)
		}
	}
	h.waitQueued(t, 0)
	if _, err := h.call(0, 5*time.Second); err != nil {
		t.Fatalf("after the workers were free: %v", err)
	}
	if n := h.worked.Load(); n != 3 {
		t.Fatalf("%d requests worked on, want 3: the 2 held ones and the last, not the one given up on", n)
	}
}

// Requests that find every worker busy wait for one, and are served with
// their own answers once it is free within the limit.
func TestQueuedRequestsAreServedWhenAWorkerFrees(t *testing.T) {
	h := newHeld(t, 1, 8)
	first := h.start(1, 5*time.Second)
	<-h.entered
	var queued []<-chan error
	for range 5 {
		queued = append(queued, h.start(0, 5*time.Second))
	}
	h.waitQueued(t, 5)
	select {
	case err := <-queued[0]:
		t.Fatalf("a queued request was answered (%v) while the only worker was busy", err)
	default:
	}
	close(h.release)
	for _, done := range append(queued, first) {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := h.worked.Load(); n != 6 {
		t.Fatalf("%d requests worked on, want 6", n)
	}
}
