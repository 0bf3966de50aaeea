package testkit

import (
	"sync"
	"time"
)

// Stalled is what callers saw while a dependency of one replica stalled.
type Stalled struct {
	Aside   time.Duration // since the stall, when the last failed or slow call ended
	Longest time.Duration // the longest call
	Failed  int           // calls that failed or took longer than slow
}

// CallDuringStall makes n calls, one every `every`, each on its own, from
// the moment a stall began, and reports when the failed or slow ones (over
// slow) stopped: how long the stalled replica took to step aside.
func CallDuringStall(n int, every, slow time.Duration, call func() (time.Duration, error)) Stalled {
	start := time.Now()
	type result struct {
		at, took time.Duration
		err      error
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * every)
			at := time.Since(start)
			took, err := call()
			results <- result{at, took, err}
		})
	}
	wg.Wait()
	close(results)
	var s Stalled
	for r := range results {
		s.Longest = max(s.Longest, r.took)
		if r.err != nil || r.took > slow {
			s.Failed++
			s.Aside = max(s.Aside, r.at+r.took)
		}
	}
	return s
}
