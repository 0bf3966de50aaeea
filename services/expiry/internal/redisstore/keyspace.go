package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"wisp/contract"
	"wisp/services/expiry/internal/expiry"
)

const (
	notifyParam = "notify-keyspace-events"
	// eventBuffer absorbs a burst of expired events (a sweep deleting a
	// thousand overdue keys fires a thousand) while a batch is being finished.
	eventBuffer = 10000
	// maxEventBatch bounds the rooms handed to one Expired call, as the sweep
	// bounds its claim batches.
	maxEventBatch = expiry.DefaultBatch
	// notifyRecheck is how often the notification setting is checked again
	// besides after every reconnect: an operator or a failover may reset it.
	notifyRecheck = 30 * time.Second
	// probeKeyPrefix names the short-lived keys that test whether expired
	// events arrive when CONFIG cannot be read.
	probeKeyPrefix = "wisp:expiry:probe:"
	probeTimeout   = 2 * time.Second
)

// NotifyStatus is whether Redis is known to fire the "expired" events the
// expiry service listens for. The zero value is "not checked yet". Its
// Check is a readiness check.
type NotifyStatus struct {
	state atomic.Pointer[notifyState]
}

type notifyState struct{ err error }

var (
	errNotChecked = errors.New("keyspace notifications not checked yet")
	// errUnreachable marks a check that could not talk to Redis: it says
	// nothing about the setting (the "redis" readiness check covers the link).
	errUnreachable = errors.New("redis unreachable")
)

// Check returns nil when expired events are known to be on.
func (s *NotifyStatus) Check(context.Context) error {
	st := s.state.Load()
	if st == nil {
		return errNotChecked
	}
	return st.err
}

// set records the outcome of a check and returns the previous one.
func (s *NotifyStatus) set(err error) (prev error, checked bool) {
	old := s.state.Swap(&notifyState{err: err})
	if old == nil {
		return nil, false
	}
	return old.err, true
}

// Keyspace turns Redis's expired-key events into due rooms and keeps those
// events switched on.
type Keyspace struct {
	rdb     *redis.Client
	status  *NotifyStatus
	metrics *expiry.Metrics
	log     *slog.Logger
	probes  sync.Map // probe key -> chan struct{}, closed when its event arrives
}

// NewKeyspace returns a subscriber on rdb that records the notification
// setting in status. It needs a single-node client: on Redis Cluster each
// node publishes only its own keys' events.
func NewKeyspace(rdb *redis.Client, status *NotifyStatus, metrics *expiry.Metrics, log *slog.Logger) *Keyspace {
	return &Keyspace{rdb: rdb, status: status, metrics: metrics, log: log}
}

// Handlers are what Listen calls.
type Handlers struct {
	// Expired receives the room ids of expired room keys, in batches; it
	// must not keep the slice.
	Expired func(ctx context.Context, roomIDs []string)
	// Subscribed runs after every subscription and resubscription, once the
	// notification setting was checked. Events published while the
	// subscriber was away are lost, so this is the moment to sweep.
	Subscribed func()
}

// Listen subscribes to expired-key events of the client's database and
// serves h until ctx ends. The subscription survives Redis restarts: the
// client reconnects and resubscribes by itself, and each resubscription
// runs the notification check and h.Subscribed again.
func (k *Keyspace) Listen(ctx context.Context, h Handlers) error {
	channel := fmt.Sprintf("__keyevent@%d__:expired", k.rdb.Options().DB)
	ps := k.rdb.Subscribe(ctx, channel) // a failure here is retried by the client's reconnect loop
	defer ps.Close()
	msgs := ps.ChannelWithSubscriptions(redis.WithChannelSize(eventBuffer))

	ctx, cancel := context.WithCancel(ctx)
	resync := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() { k.keepNotifications(ctx, resync, h.Subscribed) })
	defer wg.Wait()
	defer cancel()

	batch := make([]string, 0, maxEventBatch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-msgs:
			if !ok {
				return errors.New("keyspace subscription closed")
			}
			batch = k.take(batch[:0], m, resync)
			// Finish what already queued up together: one claim round trip for
			// many events.
		drain:
			for len(batch) < maxEventBatch {
				select {
				case m, ok := <-msgs:
					if !ok {
						break drain
					}
					batch = k.take(batch, m, resync)
				default:
					break drain
				}
			}
			if len(batch) > 0 {
				h.Expired(ctx, batch)
			}
		}
	}
}

// take appends the room id of an expired room key to batch. Other keys
// (members, messages, anything else in the database) are ignored; a
// (re)subscription asks for a resync.
func (k *Keyspace) take(batch []string, m any, resync chan<- struct{}) []string {
	switch m := m.(type) {
	case *redis.Subscription:
		select {
		case resync <- struct{}{}:
		default:
		}
	case *redis.Message:
		if id, ok := contract.RoomIDFromKey(m.Payload); ok {
			return append(batch, id)
		}
		if strings.HasPrefix(m.Payload, probeKeyPrefix) {
			if got, ok := k.probes.LoadAndDelete(m.Payload); ok {
				close(got.(chan struct{}))
			}
		}
	}
	return batch
}

// keepNotifications checks the notification setting after every
// (re)subscription and every notifyRecheck.
func (k *Keyspace) keepNotifications(ctx context.Context, resync <-chan struct{}, subscribed func()) {
	t := time.NewTicker(notifyRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-resync:
			k.checkNotifications(ctx)
			if subscribed != nil {
				subscribed()
			}
		case <-t.C:
			k.checkNotifications(ctx)
		}
	}
}

func (k *Keyspace) checkNotifications(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 2*probeTimeout)
	err := k.EnsureNotifications(cctx)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: the outcome says nothing about Redis
	}
	if errors.Is(err, errUnreachable) {
		// Keep the last verdict; the next resubscription checks again.
		k.metrics.Error("notify_config")
		k.log.Debug("cannot check keyspace notifications", "err", err)
		return
	}
	prev, checked := k.status.set(err)
	switch {
	case err != nil:
		k.metrics.Error("notify_config")
		if !checked || prev == nil {
			k.log.Warn("keyspace expired events are NOT on: rooms still end through the sweep, "+
				"but /readyz reports not ready until notify-keyspace-events includes E and x", "err", err)
		}
	case !checked || prev != nil:
		k.log.Info("keyspace expired events are on")
	}
}

// EnsureNotifications makes Redis fire keyevent "expired" notifications:
// it adds E and x to notify-keyspace-events, keeping the flags already set
// for others. Where CONFIG is disabled (managed Redis) it cannot read the
// setting, so it checks that a probe key's expiry reaches the subscription.
// It returns an error saying what an operator must change when the events
// are off and it cannot turn them on.
func (k *Keyspace) EnsureNotifications(ctx context.Context) error {
	cur, err := k.rdb.ConfigGet(ctx, notifyParam).Result()
	if err != nil {
		if !isReply(err) {
			return fmt.Errorf("read %s: %w: %w", notifyParam, errUnreachable, err)
		}
		if perr := k.probe(ctx); perr != nil {
			if errors.Is(perr, errUnreachable) {
				return perr
			}
			return fmt.Errorf("CONFIG GET refused (%v) and %w: set %s to include Ex in the Redis settings", err, perr, notifyParam)
		}
		return nil
	}
	flags := cur[notifyParam]
	want := withExpiredEvents(flags)
	if want == flags {
		return nil
	}
	if err := k.rdb.ConfigSet(ctx, notifyParam, want).Err(); err != nil {
		if !isReply(err) {
			return fmt.Errorf("set %s: %w: %w", notifyParam, errUnreachable, err)
		}
		return fmt.Errorf("%s is %q (E and x needed) and CONFIG SET is refused (%v): set it to %q in the Redis settings",
			notifyParam, flags, err, want)
	}
	k.log.Info("enabled keyspace expired events", "was", flags, "now", want)
	return nil
}

// isReply reports whether err is Redis answering with an error (a refused
// or unknown command) rather than a failed connection or a timeout.
func isReply(err error) bool {
	var reply redis.Error
	return errors.As(err, &reply)
}

// withExpiredEvents returns flags plus what keyevent "expired"
// notifications need: E (keyevent channel) and x (expired), for which A
// ("all") also counts.
func withExpiredEvents(flags string) string {
	out := flags
	if !strings.Contains(flags, "E") {
		out += "E"
	}
	if !strings.ContainsAny(flags, "xA") {
		out += "x"
	}
	return out
}

// probe sets a key with a 1 ms TTL and waits for its expired event.
func (k *Keyspace) probe(ctx context.Context) error {
	key := probeKeyPrefix + contract.RandomID(16)
	got := make(chan struct{})
	k.probes.Store(key, got)
	defer k.probes.Delete(key)
	if err := k.rdb.Set(ctx, key, "1", time.Millisecond).Err(); err != nil {
		if !isReply(err) {
			return fmt.Errorf("probe: %w: %w", errUnreachable, err)
		}
		return fmt.Errorf("probe refused: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	// Reading a key past its TTL deletes it, and fires the event, at once
	// rather than at Redis's next active-expiry cycle.
	touch := time.NewTicker(5 * time.Millisecond)
	defer touch.Stop()
	for {
		select {
		case <-got:
			return nil
		case <-ctx.Done():
			return errors.New("no expired event arrived for a probe key")
		case <-touch.C:
			_ = k.rdb.Exists(ctx, key).Err()
		}
	}
}
