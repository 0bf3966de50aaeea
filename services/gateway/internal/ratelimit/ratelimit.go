// Package ratelimit counts requests per client and route group in fixed
// windows, in Redis so that every gateway replica shares one budget, or in
// memory for a single gateway. It fails open: a limit that cannot be
// checked lets the request through rather than take the service down.
package ratelimit

import (
	"context"
	_ "embed"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"wisp/contract"
)

// Limiter takes one request from key's budget of max per window; when it
// is spent, ok is false and retry says when the window ends.
type Limiter interface {
	Take(ctx context.Context, key string, max int, window time.Duration) (ok bool, retry time.Duration)
}

var (
	//go:embed lua/take.lua
	takeSrc    string
	takeScript = redis.NewScript(takeSrc)
)

// Redis keeps the counts in Redis, one key per bucket expiring with its
// window.
type Redis struct {
	rdb redis.UniversalClient
	// Errors counts checks that failed (and let the request through).
	Errors atomic.Int64
}

// NewRedis returns a limiter on rdb.
func NewRedis(rdb redis.UniversalClient) *Redis { return &Redis{rdb: rdb} }

// checkTimeout bounds one check, so a slow Redis costs a request little.
const checkTimeout = 200 * time.Millisecond

// Take implements Limiter.
func (r *Redis) Take(ctx context.Context, key string, max int, window time.Duration) (bool, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	res, err := takeScript.Run(ctx, r.rdb, []string{contract.RateLimitKey(key)}, window.Milliseconds()).Int64Slice()
	if err != nil || len(res) != 2 {
		r.Errors.Add(1)
		return true, 0
	}
	if res[0] > int64(max) {
		return false, time.Duration(res[1]) * time.Millisecond
	}
	return true, 0
}

// Memory keeps the counts in this process.
type Memory struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	now     func() time.Time
	swept   time.Time
}

type bucket struct {
	n   int
	end time.Time
}

// NewMemory returns an in-process limiter.
func NewMemory() *Memory { return &Memory{buckets: map[string]*bucket{}, now: time.Now} }

// Take implements Limiter.
func (m *Memory) Take(_ context.Context, key string, max int, window time.Duration) (bool, time.Duration) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.swept) > time.Minute {
		// Forget ended windows, so idle clients cost nothing.
		for k, b := range m.buckets {
			if !now.Before(b.end) {
				delete(m.buckets, k)
			}
		}
		m.swept = now
	}
	b := m.buckets[key]
	if b == nil || !now.Before(b.end) {
		b = &bucket{end: now.Add(window)}
		m.buckets[key] = b
	}
	b.n++
	if b.n > max {
		return false, b.end.Sub(now)
	}
	return true, 0
}
