package redisstore_test

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"wisp/contract"
	"wisp/services/messages/internal/message"
)

// TestConcurrentSendsArePipelinedWithoutGapsOrRepeats: many sends at once
// (batched into pipelines) get seqs 1..n exactly once, and each sender sees
// its own classification (a stranger is refused inside the same batches).
func TestConcurrentSendsArePipelinedWithoutGapsOrRepeats(t *testing.T) {
	svc, r, _ := setup(t, time.Now().Add(time.Minute), 100000)
	ctx := context.Background()
	// Redis forgets its scripts (as after a restart): the first batch must
	// load them again rather than fail.
	if err := r.Client(t).ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	const workers, each = 16, 50
	var mu sync.Mutex
	var seqs []int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				m, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-alice", Sender: "a", Text: "x"})
				if err != nil {
					t.Errorf("send: %v", err)
					return
				}
				mu.Lock()
				seqs = append(seqs, m.Seq)
				mu.Unlock()
				if w == 0 {
					if _, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-mallory", Sender: "m", Text: "x"}); !errors.Is(err, message.ErrUnauthorized) {
						t.Errorf("stranger in a batch: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("seq %d at position %d", s, i)
		}
	}
	if len(seqs) != workers*each {
		t.Fatalf("%d seqs", len(seqs))
	}
}
