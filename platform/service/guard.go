package service

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Pausable is something that takes requests and can stop taking them for
// a while, such as a natsrpc.Server.
type Pausable interface {
	Pause() error
	Resume() error
}

// Guard pauses what a service serves while its store fails a probe (a
// real round trip, every interval, each bounded by a timeout) and resumes
// it once a probe passes again. A paused replica leaves its queue groups,
// so requests go to the healthy replicas, or, with none, the caller hears
// "no responders" at once instead of waiting out its timeout.
type Guard struct {
	probe    func(context.Context) error
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger
	serving  prometheus.Gauge

	mu      sync.Mutex
	healthy bool
	guarded []*guarded
}

type guarded struct {
	p      Pausable
	paused bool
}

// NewGuard returns a guard running probe; nil probe guards nothing.
func NewGuard(probe func(context.Context) error, interval, timeout time.Duration, log *slog.Logger, reg prometheus.Registerer) (*Guard, error) {
	g := &Guard{probe: probe, interval: interval, timeout: timeout, log: log, healthy: true,
		serving: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wisp_serving",
			Help: "1 while this replica takes requests, 0 while it is paused because its store fails its probe.",
		})}
	g.serving.Set(1)
	if err := reg.Register(g.serving); err != nil {
		return nil, err
	}
	return g, nil
}

// Add puts p under the guard: paused at once if the store is failing now.
func (g *Guard) Add(p Pausable) {
	g.mu.Lock()
	defer g.mu.Unlock()
	gp := &guarded{p: p}
	g.guarded = append(g.guarded, gp)
	g.apply(gp)
}

// Run probes until ctx ends.
func (g *Guard) Run(ctx context.Context) {
	if g.probe == nil {
		return
	}
	t := time.NewTicker(g.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, g.timeout)
		err := g.probe(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		g.set(err)
	}
}

func (g *Guard) set(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	healthy := err == nil
	switch {
	case !healthy && g.healthy:
		g.log.Warn("store unreachable: not taking requests until it answers again", "err", err)
		g.serving.Set(0)
	case healthy && !g.healthy:
		g.log.Info("store answers again: taking requests")
		g.serving.Set(1)
	}
	g.healthy = healthy
	for _, gp := range g.guarded {
		g.apply(gp)
	}
}

// apply pauses or resumes gp to match the store's health; one that fails
// (NATS away, say) is tried again after the next probe.
func (g *Guard) apply(gp *guarded) {
	if gp.paused == !g.healthy {
		return
	}
	op, verb := gp.p.Resume, "resume"
	if !g.healthy {
		op, verb = gp.p.Pause, "pause"
	}
	if err := op(); err != nil {
		g.log.Warn(verb+" failed; retrying after the next probe", "err", err)
		return
	}
	gp.paused = !g.healthy
}
