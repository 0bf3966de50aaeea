package testkit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// RunFunc is a service's testable entry point.
type RunFunc func(ctx context.Context, getenv func(string) string, stdout io.Writer) error

// Running is a service started in-process by StartService.
type Running struct {
	OpsURL string
	cancel context.CancelFunc
	done   chan error
	logs   *SyncBuffer
}

// StartService runs a service's run function with env (OPS_ADDR is set to a
// free port) and waits until its /readyz answers 200.
func StartService(tb testing.TB, run RunFunc, env map[string]string) *Running {
	tb.Helper()
	port, err := FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	vars := map[string]string{"OPS_ADDR": "127.0.0.1:" + strconv.Itoa(port), "SHUTDOWN_TIMEOUT": "5s"}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Running{OpsURL: "http://" + vars["OPS_ADDR"], cancel: cancel, done: make(chan error, 1), logs: &SyncBuffer{}}
	go func() { s.done <- run(ctx, func(k string) string { return vars[k] }, s.logs) }()
	tb.Cleanup(func() { s.cancel() })
	Eventually(tb, 10*time.Second, func() error {
		select {
		case err := <-s.done:
			tb.Fatalf("service exited early: %v\n%s", err, s.logs.String())
		default:
		}
		return s.Ready()
	})
	return s
}

// Ready returns nil when /readyz answers 200.
func (s *Running) Ready() error {
	resp, err := http.Get(s.OpsURL + "/readyz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz %d: %s", resp.StatusCode, body)
	}
	return nil
}

// Stop cancels the service's context and returns what run returned; it
// fails the test if run does not return within timeout.
func (s *Running) Stop(tb testing.TB, timeout time.Duration) error {
	tb.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		return err
	case <-time.After(timeout):
		tb.Fatalf("service did not stop within %v\n%s", timeout, s.logs.String())
		return nil
	}
}

// Logs returns what the service has logged so far.
func (s *Running) Logs() string { return s.logs.String() }

// SyncBuffer is a bytes.Buffer safe for concurrent writers, for capturing
// a service's logs in a test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
