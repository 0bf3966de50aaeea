package testkit

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"wisp/contract"
)

// SeedRoom writes a live room the way the rooms service does (metadata,
// deadline entry, members), for tests of services that only read rooms.
// Each token becomes a member whose marker is "m-" + its index.
func SeedRoom(tb testing.TB, rdb *redis.Client, roomID string, deadline time.Time, tokens ...string) {
	tb.Helper()
	ctx := context.Background()
	ms := deadline.UnixMilli()
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, contract.RoomKey(roomID), "createdAt", time.Now().UnixMilli(), "deadline", ms)
		p.PExpireAt(ctx, contract.RoomKey(roomID), deadline)
		p.ZAdd(ctx, contract.DeadlinesKey, redis.Z{Score: float64(ms), Member: roomID})
		for i, tok := range tokens {
			p.HSet(ctx, contract.MembersKey(roomID), contract.TokenHash(tok), "m-"+string(rune('0'+i)))
		}
		if len(tokens) > 0 {
			p.PExpireAt(ctx, contract.MembersKey(roomID), deadline)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("seed room: %v", err)
	}
}
