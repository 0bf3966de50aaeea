// Package live wires the gateway's realtime side on one NATS connection:
// room feeds into the fan-out hub, presence between gateways, and the
// catch-up of every room after NATS was away or Redis lost its data.
// cmd/gateway and the tests build it the same way.
package live

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"wisp/contract"
	"wisp/services/gateway/internal/httpapi"
	"wisp/services/gateway/internal/natsclient"
	"wisp/services/gateway/internal/presence"
	"wisp/services/gateway/internal/relay"
	"wisp/services/gateway/internal/ws"
)

// Options are the realtime side's settings.
type Options struct {
	Socket           ws.Settings
	PresenceInterval time.Duration
	// GapWait is how long a gap in a room's messages stays open before
	// they are read back (relay.DefaultGapWait when 0).
	GapWait time.Duration
}

// Live is the running realtime side.
type Live struct {
	Realtime httpapi.Realtime
	Hub      *relay.Hub
	stop     context.CancelFunc
	unsub    func()
	catchUp  func(why string)
	done     sync.WaitGroup
}

// Start subscribes what the gateway needs on nc; history reads rooms back
// for catch-ups. Stop ends it.
func Start(nc *nats.Conn, history relay.History, opt Options, log *slog.Logger) (*Live, error) {
	feeds := natsclient.NewFeeds(nc)
	hub := relay.NewHub(feeds)
	if opt.GapWait <= 0 {
		opt.GapWait = relay.DefaultGapWait
	}
	hub.FillGaps(history, opt.GapWait)
	tracker := presence.NewTracker(contract.RandomID(16), opt.PresenceInterval, feeds, hub.DeliverTo)
	ctx, cancel := context.WithCancel(context.Background())
	l := &Live{Hub: hub, stop: cancel,
		Realtime: httpapi.Realtime{Hub: hub, Presence: tracker, Signals: feeds, Socket: opt.Socket}}
	l.catchUp = l.catchUpper(ctx, history, log)
	natsclient.OnOutage(nc, hub.Outage, func() { l.catchUp("nats reconnected") })
	unsubResync, err := natsclient.OnResync(nc, func() { l.catchUp("asked to resync") })
	if err != nil {
		cancel()
		return nil, err
	}
	unsubRefresh, err := feeds.SubscribeRefresh()
	if err != nil {
		unsubResync()
		cancel()
		return nil, err
	}
	l.unsub = func() { unsubResync(); unsubRefresh() }
	l.done.Add(2)
	go func() {
		defer l.done.Done()
		feeds.Run(ctx, natsclient.Handlers{Event: hub.Deliver, Signal: hub.DeliverExcept,
			Presence: tracker.Heard, Refresh: tracker.HeardRefresh})
	}()
	go func() { defer l.done.Done(); tracker.Run(ctx.Done()) }()
	return l, nil
}

// Stop ends the feeds, presence and catch-ups.
func (l *Live) Stop() {
	l.unsub()
	l.stop()
	l.done.Wait()
}

// A catch-up that could not read every room runs again after retryFirst,
// doubling up to retryMost.
const (
	retryFirst = 250 * time.Millisecond
	retryMost  = 4 * time.Second
)

// catchUpper returns a function that catches every room's sockets up, one
// catch-up at a time; a call while one runs makes it run once more after,
// and one that left rooms unread runs again after a wait.
func (l *Live) catchUpper(ctx context.Context, history relay.History, log *slog.Logger) func(why string) {
	var mu sync.Mutex
	running, again := false, false
	tries := 0 // catch-ups in a row that left rooms unread
	var run func(why string)
	run = func(why string) {
		mu.Lock()
		if running {
			again = true
			mu.Unlock()
			return
		}
		running = true
		mu.Unlock()
		go func() {
			start := time.Now()
			n, ended, failed := l.Hub.Resync(ctx, history)
			log.Info("rooms caught up", "why", why, "rooms", l.Hub.Rooms(), "messages", n, "ended", ended,
				"failed", failed, "took", time.Since(start).Round(time.Millisecond))
			mu.Lock()
			running = false
			rerun := again
			again = false
			if failed == 0 {
				tries = 0
			} else {
				tries++
			}
			wait := retryMost
			if tries > 0 {
				wait = min(retryFirst<<min(tries-1, 4), retryMost)
			}
			mu.Unlock()
			switch {
			case rerun:
				run(why)
			case failed > 0:
				// Rooms that could not be read yet (the messages replicas are
				// still reconnecting, or pausing for their Redis) are tried
				// again, with a growing wait, until they all could be.
				time.AfterFunc(wait, func() {
					if ctx.Err() == nil {
						run(strings.TrimSuffix(why, " (again)") + " (again)")
					}
				})
			}
		}()
	}
	return run
}
