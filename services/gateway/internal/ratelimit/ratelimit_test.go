package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"wisp/services/gateway/internal/ratelimit"
	"wisp/testkit"
)

// TestRedisSharesOneBudgetInOneSlot: two limiters on one Redis (two
// gateways) spend one budget, and the script is given keys of one Redis
// Cluster slot.
func TestRedisSharesOneBudgetInOneSlot(t *testing.T) {
	r := testkit.StartRedis(t)
	rdb := r.Client(t)
	slots := testkit.WatchScriptSlots(rdb)
	a, b := ratelimit.NewRedis(rdb), ratelimit.NewRedis(rdb)
	ctx := context.Background()
	for i, l := range []*ratelimit.Redis{a, b, a} {
		if ok, _ := l.Take(ctx, "api|127.0.0.1", 3, time.Minute); !ok {
			t.Fatalf("request %d refused within the budget", i+1)
		}
	}
	if ok, retry := b.Take(ctx, "api|127.0.0.1", 3, time.Minute); ok || retry <= 0 || retry > time.Minute {
		t.Fatalf("fourth request: ok %v, retry %v", ok, retry)
	}
	if a.Errors.Load()+b.Errors.Load() != 0 {
		t.Fatal("checks failed")
	}
	slots.RequireOneSlotEach(t, "lua")
}
