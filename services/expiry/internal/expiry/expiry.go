// Package expiry is the expiry domain: every room whose deadline has passed
// is finished exactly once across all replicas (claimed, its leftover keys
// deleted, its end announced to its members with reason "expired").
package expiry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"wisp/contract"
)

// Path says how a replica learnt that a room is due.
type Path string

// The two ways a room reaches Finish.
const (
	// PathSweep is the periodic read of the deadline set; it does not depend
	// on Redis noticing that a key expired.
	PathSweep Path = "sweep"
	// PathEvent is a keyspace "expired" event for the room's key.
	PathEvent Path = "event"
)

// Claimed is a room this caller won the right to announce.
type Claimed struct {
	ID       string
	Deadline time.Time
}

// Store keeps the deadline set and the rooms' keys.
type Store interface {
	// DueRooms returns up to limit rooms whose deadline has passed, earliest
	// first. "Now" is the store's clock, the one that expires the room keys.
	DueRooms(ctx context.Context, limit int) ([]string, error)
	// Claim removes the rooms from the deadline set and returns those this
	// call removed, with their deadlines. Of all callers (expiry replicas and
	// the rooms service's destroy) exactly one gets a given room.
	Claim(ctx context.Context, roomIDs []string) ([]Claimed, error)
	// Cleanup deletes whatever keys of the rooms are left.
	Cleanup(ctx context.Context, roomIDs []string) error
	// Release puts claimed rooms back in the deadline set, so that a later
	// sweep announces them; it undoes a claim whose announcement failed.
	Release(ctx context.Context, rooms []Claimed) error
}

// Publisher announces a room's end to its members.
type Publisher interface {
	Expired(ctx context.Context, roomID string) error
}

// Defaults for a Service; tests shrink them.
const (
	// DefaultBatch is how many due rooms one sweep step reads and claims: one
	// claim script of this size keeps Redis busy for about a millisecond.
	DefaultBatch = 1000
	// finishTimeout bounds one Finish. It is not tied to the caller's context:
	// once a room is claimed, no one else will announce it, so shutdown must
	// not cut the announcement off.
	finishTimeout = 5 * time.Second
)

// Service is the expiry use cases.
type Service struct {
	store   Store
	pub     Publisher
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time
	batch   int
	kick    chan struct{}
}

// NewService returns the expiry service.
func NewService(store Store, pub Publisher, metrics *Metrics, log *slog.Logger) *Service {
	return &Service{store: store, pub: pub, metrics: metrics, log: log, now: time.Now,
		batch: DefaultBatch, kick: make(chan struct{}, 1)}
}

// Finish ends the given rooms, whose deadline has passed: it claims them,
// deletes the leftover keys of those it won and announces them. It returns
// how many rooms this call announced. Rooms another caller claimed first are
// skipped silently: that is the exactly-once rule at work, not an error.
func (s *Service) Finish(ctx context.Context, path Path, roomIDs ...string) (int, error) {
	if len(roomIDs) == 0 {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()

	claimed, err := s.store.Claim(ctx, roomIDs)
	if err != nil {
		s.metrics.errors.WithLabelValues("claim").Inc()
		return 0, fmt.Errorf("claim: %w", err)
	}
	// An id that is not a room id (a corrupt deadline entry) is dropped with
	// its claim: it must never become a NATS subject or a key.
	won := claimed[:0]
	for _, c := range claimed {
		if !contract.ValidRoomID(c.ID) {
			s.metrics.errors.WithLabelValues("invalid_id").Inc()
			s.log.Warn("dropped malformed id from the deadline set", "id", c.ID)
			continue
		}
		won = append(won, c)
	}
	if len(won) == 0 {
		return 0, nil
	}
	ids := make([]string, len(won))
	for i, c := range won {
		ids[i] = c.ID
	}
	if err := s.store.Cleanup(ctx, ids); err != nil {
		// Every key of a room expires at its deadline anyway; announcing the
		// end matters more than deleting early.
		s.metrics.errors.WithLabelValues("cleanup").Inc()
		s.log.Warn("cleanup of finished rooms failed; their keys expire by TTL", "rooms", len(ids), "err", err)
	}

	var failed []Claimed
	var pubErr error
	for _, c := range won {
		if err := s.pub.Expired(ctx, c.ID); err != nil {
			failed = append(failed, c)
			pubErr = err
			continue
		}
		s.metrics.lag.WithLabelValues(string(path)).Observe(max(s.now().Sub(c.Deadline), 0).Seconds())
		s.metrics.rooms.WithLabelValues(string(path)).Inc()
	}
	announced := len(won) - len(failed)
	if len(failed) == 0 {
		return announced, nil
	}
	s.metrics.errors.WithLabelValues("publish").Add(float64(len(failed)))
	err = fmt.Errorf("announce %d rooms: %w", len(failed), pubErr)
	if rerr := s.store.Release(ctx, failed); rerr != nil {
		s.metrics.errors.WithLabelValues("release").Inc()
		s.log.Error("rooms claimed but neither announced nor released; their members will not hear of the end",
			"rooms", len(failed), "err", rerr)
		return announced, errors.Join(err, fmt.Errorf("release: %w", rerr))
	}
	return announced, err
}

// Expired finishes rooms whose key Redis reported expired. A failure is
// only logged: the rooms stay in the deadline set and the sweep retries.
func (s *Service) Expired(ctx context.Context, roomIDs []string) {
	if _, err := s.Finish(ctx, PathEvent, roomIDs...); err != nil {
		s.log.Warn("finishing expired rooms failed; the sweep retries", "rooms", len(roomIDs), "err", err)
	}
}

// Sweep finishes every room whose deadline has passed, a batch at a time,
// and returns how many this call announced.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	total := 0
	for ctx.Err() == nil {
		ids, err := s.store.DueRooms(ctx, s.batch)
		if err != nil {
			if ctx.Err() != nil {
				return total, nil // shutting down, not a Redis failure
			}
			s.metrics.errors.WithLabelValues("due").Inc()
			return total, fmt.Errorf("due rooms: %w", err)
		}
		n, err := s.Finish(ctx, PathSweep, ids...)
		total += n
		if err != nil {
			return total, err
		}
		// A full batch may hide more due rooms; every id read is now out of the
		// set (claimed by this replica or another), so the loop makes progress.
		if len(ids) < s.batch {
			return total, nil
		}
	}
	return total, nil
}

// Kick asks Run for a sweep now rather than at the next tick (after a Redis
// reconnect, when events may have been lost).
func (s *Service) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run sweeps at once, then every interval and on Kick, until ctx ends. A
// failing Redis does not stop it: the error is counted, logged once per
// outage, and the next sweep retries.
func (s *Service) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		n, err := s.Sweep(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && !failing:
			failing = true
			s.log.Warn("sweep failed; retrying", "every", every.String(), "err", err)
		case err == nil && failing:
			failing = false
			s.log.Info("sweep recovered", "announced", n)
		}
		if n > 0 {
			s.log.Debug("sweep", "announced", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
	}
}
