package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type fakeServer struct {
	mu       sync.Mutex
	paused   bool
	pauses   int
	failNext bool
}

func (f *fakeServer) Pause() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failNext {
		f.failNext = false
		return errors.New("nats: connection reconnecting")
	}
	f.paused = true
	f.pauses++
	return nil
}

func (f *fakeServer) Resume() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused = false
	return nil
}

func (f *fakeServer) state() (bool, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paused, f.pauses
}

// waitFor polls cond every millisecond for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// TestGuardPausesWhileTheProbeFailsAndResumes: a probe that hangs (a
// stalled store) pauses the server within interval + timeout; a passing
// probe resumes it; a pause that fails is retried after the next probe.
func TestGuardPausesWhileTheProbeFailsAndResumes(t *testing.T) {
	var stalled atomic.Bool
	probe := func(ctx context.Context) error {
		if stalled.Load() {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	const interval, timeout = 20 * time.Millisecond, 50 * time.Millisecond
	g, err := NewGuard(probe, interval, timeout, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv := &fakeServer{failNext: true}
	g.Add(srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	stalled.Store(true)
	took := waitFor(t, 2*time.Second, "paused", func() bool { p, _ := srv.state(); return p })
	if took > interval*2+timeout*2+100*time.Millisecond { // one failed pause retried
		t.Fatalf("paused after %v", took)
	}
	stalled.Store(false)
	waitFor(t, 2*time.Second, "resumed", func() bool { p, _ := srv.state(); return !p })
	if _, n := srv.state(); n != 1 {
		t.Fatalf("paused %d times for one outage", n)
	}
}
