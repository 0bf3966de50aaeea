// Package redisbatch runs Lua scripts for many goroutines, coalescing
// those that arrive while a round trip is in flight into the next pipeline.
// Under load one write, one read and one pool checkout (and on Redis's
// side one read and one write) serve a whole batch instead of each call;
// with nothing in flight a script goes alone at once, so an idle system
// pays no delay. The stores that use it (messages, rooms) test it with
// their scripts against a real Redis.
package redisbatch

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Batcher coalesces script calls into pipelines on one client.
type Batcher struct {
	rdb redis.UniversalClient

	mu      sync.Mutex
	pending []*scriptCall
	running bool
	// wake hands the round trip to the sender goroutine, kept for the
	// process's life: it keeps the stack it grew in the Redis client, where
	// a new goroutine per batch grew its own every time.
	wake chan struct{}
}

// New returns a batcher on rdb, with its sender goroutine waiting.
func New(rdb redis.UniversalClient) *Batcher {
	p := &Batcher{rdb: rdb, wake: make(chan struct{}, 1)}
	go p.sender()
	return p
}

type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
	done   chan struct{}
}

// maxPipeline bounds one batch, so one slow batch holds few callers.
const maxPipeline = 128

// Run runs script and returns its reply, as Script.Run would. A caller
// that finds nothing in flight runs its script itself, with no hand-off;
// callers that arrive meanwhile queue for the next pipeline, which the
// batcher's sender goroutine sends.
func (p *Batcher) Run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	p.mu.Lock()
	if !p.running {
		p.running = true
		p.mu.Unlock()
		cmd := script.Run(ctx, p.rdb, keys, args...)
		p.handOver()
		return cmd
	}
	c := &scriptCall{script: script, keys: keys, args: args, done: make(chan struct{})}
	p.pending = append(p.pending, c)
	p.mu.Unlock()
	select {
	case <-c.done:
		return c.cmd
	case <-ctx.Done():
		// The script may still run; the caller's deadline has passed either way.
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(ctx.Err())
		return cmd
	}
}

// handOver ends a round trip: whatever queued meanwhile goes next. Only
// the holder of running hands over, so wake never holds two.
func (p *Batcher) handOver() {
	p.mu.Lock()
	if len(p.pending) == 0 {
		p.running = false
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.wake <- struct{}{}
}

// sender sends the batches that wait each time it is woken; it lives as
// long as the process.
func (p *Batcher) sender() {
	var batch []*scriptCall
	for range p.wake {
		batch = p.loop(batch)
	}
}

// loop sends batches until none is waiting. A batch's own deadline comes
// from the client's read and write timeouts.
func (p *Batcher) loop(batch []*scriptCall) []*scriptCall {
	ctx := context.Background()
	for {
		p.mu.Lock()
		n := min(len(p.pending), maxPipeline)
		if n == 0 {
			p.running = false
			p.mu.Unlock()
			return batch
		}
		batch = append(batch[:0], p.pending[:n]...)
		rest := copy(p.pending, p.pending[n:])
		clear(p.pending[rest:])
		p.pending = p.pending[:rest]
		p.mu.Unlock()
		p.send(ctx, batch)
		clear(batch)
	}
}

func (p *Batcher) send(ctx context.Context, batch []*scriptCall) {
	if len(batch) == 1 {
		c := batch[0]
		c.cmd = c.script.Run(ctx, p.rdb, c.keys, c.args...)
		close(c.done)
		return
	}
	cmds := make([]*redis.Cmd, len(batch))
	pipe := p.rdb.Pipeline()
	for i, c := range batch {
		cmds[i] = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	for i, c := range batch {
		c.cmd = cmds[i]
		if err := c.cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			// Redis lost its script cache (a restart): Run loads it again.
			c.cmd = c.script.Run(ctx, p.rdb, c.keys, c.args...)
		}
		close(c.done)
	}
}
