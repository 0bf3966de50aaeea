// Package keyspace listens to Redis's keyspace notifications: it turns the
// "expired" events of room keys into batches of due rooms for the expiry
// service, on every master of a Redis Cluster (each publishes only its own
// keys' events), and switches those events on where Redis allows it.
//
// The events are the second way a room is found due, next to the service's
// deadline timer: whichever claims a room first announces it, once. They
// are a hint, never relied on: Redis fires one only when its expiry cycle
// gets to the key, and drops those published while nobody listened.
package keyspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"wisp/contract"
	"wisp/services/expiry/internal/expiry"
)

const (
	notifyParam = "notify-keyspace-events"
	// eventBuffer absorbs a burst of expired events while a batch is being
	// finished.
	eventBuffer = 10000
	// maxBatch bounds the rooms handed to one Expired call, as the sweep
	// bounds its claim batches.
	maxBatch = expiry.DefaultBatch
)

// Defaults for a Listener; tests shrink them.
const (
	// DefaultWindow is how long events are gathered into one batch: rooms
	// ending together cost one claim round trip, not one each.
	DefaultWindow = 10 * time.Millisecond
	// DefaultRefresh is how often the masters are listed again (a failover
	// or a resharding changes them) and their notification setting checked.
	DefaultRefresh = 10 * time.Second
)

// Handlers are what Listen calls.
type Handlers struct {
	// Expired receives the room ids of expired room keys, in batches; it
	// must not keep the slice.
	Expired func(ctx context.Context, roomIDs []string)
	// Subscribed runs after every (re)subscription to a node. Events
	// published while nobody listened are lost, so this is the moment to
	// sweep.
	Subscribed func()
}

// Listener follows the expired events of every master of rdb.
type Listener struct {
	rdb     redis.UniversalClient
	metrics *expiry.Metrics
	log     *slog.Logger
	window  time.Duration
	refresh time.Duration

	mu     sync.Mutex
	warned map[string]bool // nodes already reported as refusing the setting
}

// NewListener returns a listener on rdb (one node, or a cluster client:
// then it follows each master).
func NewListener(rdb redis.UniversalClient, metrics *expiry.Metrics, log *slog.Logger, window, refresh time.Duration) *Listener {
	return &Listener{rdb: rdb, metrics: metrics, log: log, window: window, refresh: refresh, warned: map[string]bool{}}
}

// Listen serves h until ctx ends. Subscriptions survive restarts of a node
// (the client reconnects and resubscribes); on a cluster, masters that
// appear are subscribed to and those gone are left at the next refresh.
func (l *Listener) Listen(ctx context.Context, h Handlers) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ids := make(chan string, eventBuffer)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { l.batch(ctx, ids, h.Expired) })

	subs := map[string]context.CancelFunc{} // node address -> its subscription's cancel
	t := time.NewTicker(l.refresh)
	defer t.Stop()
	for {
		nodes, err := l.nodes(ctx)
		if err != nil && ctx.Err() == nil {
			l.metrics.Error("keyspace_nodes")
			l.log.Debug("cannot list the Redis masters for keyspace events", "err", err)
		}
		for addr, node := range nodes {
			l.ensureNotifications(ctx, addr, node)
			if subs[addr] == nil {
				sctx, scancel := context.WithCancel(ctx)
				subs[addr] = scancel
				wg.Go(func() { l.follow(sctx, node, ids, h.Subscribed) })
			}
		}
		for addr, stop := range subs {
			if _, ok := nodes[addr]; !ok && err == nil {
				stop()
				delete(subs, addr)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// nodes returns the client of each master by address: the one node of a
// plain client, every master of a cluster client.
func (l *Listener) nodes(ctx context.Context) (map[string]*redis.Client, error) {
	switch c := l.rdb.(type) {
	case *redis.Client:
		return map[string]*redis.Client{c.Options().Addr: c}, nil
	case *redis.ClusterClient:
		var mu sync.Mutex
		out := map[string]*redis.Client{}
		err := c.ForEachMaster(ctx, func(_ context.Context, node *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			out[node.Options().Addr] = node
			return nil
		})
		return out, err
	default:
		return nil, fmt.Errorf("keyspace events: unsupported client %T", l.rdb)
	}
}

// follow subscribes to one node's expired events and passes room ids on.
func (l *Listener) follow(ctx context.Context, node *redis.Client, ids chan<- string, subscribed func()) {
	ps := node.Subscribe(ctx, fmt.Sprintf("__keyevent@%d__:expired", node.Options().DB))
	defer func() { _ = ps.Close() }()
	msgs := ps.ChannelWithSubscriptions(redis.WithChannelSize(eventBuffer))
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" && subscribed != nil {
					subscribed()
				}
			case *redis.Message:
				if id, ok := contract.RoomIDFromKey(m.Payload); ok {
					select {
					case ids <- id:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}
}

// batch gathers the ids that arrive within a window of the first and hands
// them on together.
func (l *Listener) batch(ctx context.Context, ids <-chan string, expired func(context.Context, []string)) {
	batch := make([]string, 0, maxBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-ids:
			batch = append(batch[:0], id)
		}
		window := time.NewTimer(l.window)
	gather:
		for len(batch) < maxBatch {
			select {
			case id := <-ids:
				batch = append(batch, id)
			case <-window.C:
				break gather
			case <-ctx.Done():
				window.Stop()
				return
			}
		}
		window.Stop()
		expired(ctx, batch)
	}
}

// ensureNotifications makes a node fire keyevent "expired" notifications,
// adding E and x to its setting and keeping the flags set for others.
// Where CONFIG is refused (managed Redis) it says once what an operator
// may set; rooms still end on time through the deadline timer.
func (l *Listener) ensureNotifications(ctx context.Context, addr string, node *redis.Client) {
	err := l.enable(ctx, node)
	if ctx.Err() != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil && !l.warned[addr]:
		l.warned[addr] = true
		l.metrics.Error("notify_config")
		l.log.Warn("keyspace expired events are not on; rooms still end through the deadline sweep", "node", addr, "err", err)
	case err == nil && l.warned[addr]:
		delete(l.warned, addr)
		l.log.Info("keyspace expired events are on", "node", addr)
	}
}

func (l *Listener) enable(ctx context.Context, node *redis.Client) error {
	cur, err := node.ConfigGet(ctx, notifyParam).Result()
	if err != nil {
		return fmt.Errorf("read %s: %w", notifyParam, err)
	}
	flags := cur[notifyParam]
	want := WithExpiredEvents(flags)
	if want == flags {
		return nil
	}
	if err := node.ConfigSet(ctx, notifyParam, want).Err(); err != nil {
		var reply redis.Error
		if errors.As(err, &reply) {
			return fmt.Errorf("%s is %q and CONFIG SET is refused (%w): set it to %q in the Redis settings", notifyParam, flags, err, want)
		}
		return fmt.Errorf("set %s: %w", notifyParam, err)
	}
	l.log.Info("enabled keyspace expired events", "node", node.Options().Addr, "was", flags, "now", want)
	return nil
}

// WithExpiredEvents returns flags plus what keyevent "expired"
// notifications need: E (keyevent channel) and x (expired), for which A
// ("all") also counts.
func WithExpiredEvents(flags string) string {
	out := flags
	if !strings.Contains(flags, "E") {
		out += "E"
	}
	if !strings.ContainsAny(flags, "xA") {
		out += "x"
	}
	return out
}
