package natsrpc

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestWorkersBoundAndReuse: tasks run at most max at a time, all of them
// run, and workers are reused rather than one started per task.
func TestWorkersBoundAndReuse(t *testing.T) {
	const max, tasks = 4, 200
	w := newWorkers(max)
	var running, peak, done atomic.Int32
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range tasks {
		wg.Add(1)
		w.do(func() {
			defer wg.Done()
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			if i < max {
				<-gate // the first tasks hold every worker until the rest queue up
			}
			running.Add(-1)
			done.Add(1)
		})
		if i == max-1 {
			close(gate)
		}
	}
	wg.Wait()
	if done.Load() != tasks || peak.Load() > max {
		t.Fatalf("done %d, peak concurrency %d (max %d)", done.Load(), peak.Load(), max)
	}
	if n := len(w.slots); n > max {
		t.Fatalf("%d workers", n)
	}
}
