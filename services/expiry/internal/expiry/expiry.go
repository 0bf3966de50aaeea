// Package expiry is the expiry domain: every room whose deadline has passed
// is finished once across all replicas (claimed under a lease, its leftover
// keys deleted, its end announced to its members with reason "expired"),
// ends whose claimer died are announced by another replica, and a Redis
// that lost its data is noticed and announced as a resync.
package expiry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"wisp/contract"
)

// Path says how a replica learnt that a room is due (the "path" label of
// the expiry metrics).
type Path string

// The two ways a room reaches Finish.
const (
	// PathSweep is the read of the deadline set, at every sweep and when the
	// next deadline falls: it does not depend on Redis noticing that a key
	// expired.
	PathSweep Path = "sweep"
	// PathEvent is a keyspace "expired" event of the room's key.
	PathEvent Path = "event"
)

// Claimed is a room this caller won the right to announce.
type Claimed struct {
	ID       string
	Deadline time.Time
}

// Ending is a claimed end in the ending set, the outbox of ends to
// announce: a room's end (Reason contract.ReasonExpired or ReasonDestroyed,
// ID the room) or a resync after Redis lost its data (contract.EndingResync,
// ID the new epoch).
type Ending struct {
	Reason string
	ID     string
}

// Store keeps the deadline set, its ending set and the rooms' keys. A store
// may be sharded: then a method may answer for the shards that answered
// together with an error for those that failed, and the service uses the
// answer and reports the error.
type Store interface {
	// DueRooms returns up to limit rooms whose deadline has passed, earliest
	// first, and how long until the earliest deadline still ahead (NoneAhead
	// if there is none). "Now" is the store's clock, the one that expires the
	// room keys.
	DueRooms(ctx context.Context, limit int) (ids []string, next time.Duration, err error)
	// Claim moves the rooms from the deadline set into the ending set
	// (reason expired), leased to this caller for lease, and returns those
	// this call moved, with their deadlines. Of all callers (expiry replicas
	// and the rooms service's destroy) exactly one gets a given room.
	Claim(ctx context.Context, roomIDs []string, lease time.Duration) ([]Claimed, error)
	// Overdue leases anew to this caller, for lease, up to limit ends (per
	// shard) whose lease ran out unannounced, and returns them; one caller
	// gets each.
	Overdue(ctx context.Context, lease time.Duration, limit int) ([]Ending, error)
	// Done removes announced ends from the ending set.
	Done(ctx context.Context, ends []Ending) error
	// CheckEpoch reports whether Redis lost its data since the last check
	// (an epoch is missing). The caller that finds it so gets the resync to
	// announce, already in the ending set under its lease. (Of replicas
	// racing over several lost shards, more than one may; a second resync
	// costs the gateways one more check.)
	CheckEpoch(ctx context.Context, lease time.Duration) (Ending, bool, error)
	// Cleanup deletes whatever keys of the rooms are left.
	Cleanup(ctx context.Context, roomIDs []string) error
}

// Publisher announces ends.
type Publisher interface {
	// Ended publishes the room's chat.destroy with the reason.
	Ended(ctx context.Context, roomID, reason string) error
	// Resync asks every gateway to check its rooms (contract.SubjectResync).
	Resync(ctx context.Context) error
	// Flush returns once everything published before it has reached NATS.
	Flush(ctx context.Context) error
}

// NoneAhead is DueRooms' next when no deadline lies ahead.
const NoneAhead time.Duration = -1

// Defaults for a Service; tests shrink them.
const (
	// DefaultBatch is how many due rooms one sweep step reads and claims: one
	// claim script of this size keeps Redis busy for about a millisecond.
	DefaultBatch = 1000
	// DefaultLease is how long a claimer has to announce an end before any
	// replica's sweep takes it over: a few finishes' worth, so a slow but
	// live announcer is rarely doubled (a double is harmless), and members
	// of a room whose announcer died hear of it within seconds.
	DefaultLease = 3 * time.Second
	// minWake is the least time between two due passes: rooms whose
	// deadlines fall that close together are finished in one batch, which
	// bounds a replica's passes to a few hundred a second however many
	// rooms end.
	minWake = 5 * time.Millisecond
	// finishTimeout bounds one Finish. It is not tied to the caller's context:
	// a shutdown that cut an announcement off would leave it to another
	// replica a lease later.
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
	lease   time.Duration
	kick    chan struct{}
}

// NewService returns the expiry service; a claimed end not announced
// within lease is taken over by the next sweep of any replica.
func NewService(store Store, pub Publisher, metrics *Metrics, log *slog.Logger, lease time.Duration) *Service {
	return &Service{store: store, pub: pub, metrics: metrics, log: log, now: time.Now,
		batch: DefaultBatch, lease: lease, kick: make(chan struct{}, 1)}
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

	claimed, claimErr := s.store.Claim(ctx, roomIDs, s.lease)
	if claimErr != nil {
		s.metrics.errors.WithLabelValues("claim").Inc()
		claimErr = fmt.Errorf("claim: %w", claimErr)
	}
	ends := make([]Ending, len(claimed))
	deadlines := make(map[string]time.Time, len(claimed))
	for i, c := range claimed {
		ends[i] = Ending{Reason: contract.ReasonExpired, ID: c.ID}
		deadlines[c.ID] = c.Deadline
	}
	sent, err := s.finish(ctx, ends)
	for _, e := range sent {
		s.metrics.lag.WithLabelValues(string(path)).Observe(max(s.now().Sub(deadlines[e.ID]), 0).Seconds())
		s.metrics.rooms.WithLabelValues(string(path)).Inc()
	}
	return len(sent), errors.Join(claimErr, err)
}

// finish deletes the rooms' keys, announces the ends, and once NATS has the
// announcements takes them out of the ending set. An end it could not
// announce stays there, and a sweep announces it when its lease runs out.
func (s *Service) finish(ctx context.Context, ends []Ending) (sent []Ending, err error) {
	var rooms, malformed []Ending
	for _, e := range ends {
		switch {
		case e.Reason == contract.EndingResync:
		case !contract.ValidRoomID(e.ID):
			// A corrupt entry must never become a NATS subject or a key.
			s.metrics.errors.WithLabelValues("invalid_id").Inc()
			s.log.Warn("dropped malformed id from the deadline set", "id", e.ID)
			malformed = append(malformed, e)
			continue
		default:
			rooms = append(rooms, e)
		}
	}
	if len(malformed) > 0 {
		if err := s.store.Done(ctx, malformed); err != nil {
			s.metrics.errors.WithLabelValues("done").Inc()
		}
	}
	if len(rooms) > 0 {
		ids := make([]string, len(rooms))
		for i, e := range rooms {
			ids[i] = e.ID
		}
		if err := s.store.Cleanup(ctx, ids); err != nil {
			// Every key of a room expires at its deadline anyway; announcing the
			// end matters more than deleting early.
			s.metrics.errors.WithLabelValues("cleanup").Inc()
			s.log.Warn("cleanup of finished rooms failed; their keys expire by TTL", "rooms", len(ids), "err", err)
		}
	}

	var pubErr error
	failed := 0
	for _, e := range ends {
		if !contract.ValidRoomID(e.ID) && e.Reason != contract.EndingResync {
			continue
		}
		var err error
		if e.Reason == contract.EndingResync {
			err = s.pub.Resync(ctx)
		} else {
			err = s.pub.Ended(ctx, e.ID, e.Reason)
		}
		if err != nil {
			failed++
			pubErr = err
			continue
		}
		sent = append(sent, e)
	}
	if len(sent) > 0 {
		if err := s.pub.Flush(ctx); err != nil {
			// Not known to have reached NATS: the entries stay, and are
			// announced again when their lease runs out.
			s.metrics.errors.WithLabelValues("publish").Add(float64(len(sent) + failed))
			return nil, fmt.Errorf("announce %d ends: flush: %w", len(sent)+failed, err)
		}
		if err := s.store.Done(ctx, sent); err != nil {
			// Announced: an entry left behind is announced once more after
			// its lease, a duplicate members ignore.
			s.metrics.errors.WithLabelValues("done").Inc()
			s.log.Warn("announced ends left in the ending set; they will be announced again", "ends", len(sent), "err", err)
		}
	}
	if failed > 0 {
		s.metrics.errors.WithLabelValues("publish").Add(float64(failed))
		return sent, fmt.Errorf("announce %d ends (left for a later sweep): %w", failed, pubErr)
	}
	return sent, nil
}

// takeOver announces, batch by batch, the claimed ends whose claimer's
// lease ran out, and returns how many rooms it announced.
func (s *Service) takeOver(ctx context.Context) (int, error) {
	total := 0
	for ctx.Err() == nil {
		ends, oerr := s.store.Overdue(ctx, s.lease, s.batch)
		if oerr != nil {
			s.metrics.errors.WithLabelValues("overdue").Inc()
			oerr = fmt.Errorf("overdue ends: %w", oerr)
		}
		if len(ends) == 0 {
			return total, oerr
		}
		s.log.Info("announcing ends whose claimer did not", "ends", len(ends))
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
		sent, err := s.finish(fctx, ends)
		cancel()
		for _, e := range sent {
			s.metrics.takenOver.WithLabelValues(e.Reason).Inc()
			if e.Reason != contract.EndingResync {
				total++
			}
		}
		if err != nil || oerr != nil || len(ends) < s.batch {
			return total, errors.Join(oerr, err)
		}
	}
	return total, nil
}

// checkEpoch announces a resync when Redis lost its data: the rooms it
// held ended without a word, and every gateway must check its own.
func (s *Service) checkEpoch(ctx context.Context) error {
	e, lost, err := s.store.CheckEpoch(ctx, s.lease)
	if err != nil {
		s.metrics.errors.WithLabelValues("epoch").Inc()
		err = fmt.Errorf("epoch: %w", err)
	}
	if !lost {
		return err
	}
	s.log.Warn("redis has no epoch: it lost its data (or is new); asking every gateway to check its rooms", "epoch", e.ID)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	_, ferr := s.finish(fctx, []Ending{e})
	if ferr == nil {
		s.metrics.resyncs.Inc()
	}
	return errors.Join(err, ferr)
}

// Expired finishes rooms whose key Redis reported expired. A failure is
// only logged: the rooms stay in the deadline set and the sweep retries.
func (s *Service) Expired(ctx context.Context, roomIDs []string) {
	if _, err := s.Finish(ctx, PathEvent, roomIDs...); err != nil {
		s.log.Warn("finishing expired rooms failed; the sweep retries", "rooms", len(roomIDs), "err", err)
	}
}

// Sweep notices a Redis that lost its data (and asks for a resync),
// announces the ends whose claimer's lease ran out, then finishes every
// room whose deadline has passed, a batch at a time; it returns how many
// rooms this call announced. A step that fails (on a sharded store: for
// some shards) does not hold back the others; the errors are returned
// together.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	n, _, err := s.sweep(ctx, true)
	return n, err
}

// sweep is Sweep, or with full false only its last step (finishing due
// rooms); it also returns the wait until the next deadline.
func (s *Service) sweep(ctx context.Context, full bool) (int, time.Duration, error) {
	var epochErr, overdueErr error
	total := 0
	if full {
		epochErr = s.checkEpoch(ctx)
		total, overdueErr = s.takeOver(ctx)
	}
	var dueErr error
	next := NoneAhead
	for ctx.Err() == nil {
		ids, ahead, err := s.store.DueRooms(ctx, s.batch)
		next = ahead
		if err != nil && ctx.Err() == nil {
			s.metrics.errors.WithLabelValues("due").Inc()
			dueErr = fmt.Errorf("due rooms: %w", err)
		}
		n, err := s.Finish(ctx, PathSweep, ids...)
		total += n
		if err != nil {
			dueErr = errors.Join(dueErr, err)
		}
		// A full batch may hide more due rooms; every id read is now out of the
		// set (claimed by this replica or another), so the loop makes progress.
		// A room claimed but not announced stays in the ending set, for takeOver.
		if dueErr != nil || len(ids) < s.batch {
			break
		}
		next = 0
	}
	if ctx.Err() != nil {
		return total, next, nil // shutting down, not a Redis failure
	}
	return total, next, errors.Join(epochErr, overdueErr, dueErr)
}

// Kick asks Run for a full sweep now rather than at the next tick.
func (s *Service) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run sweeps at once, then every interval and on Kick, until ctx ends; in
// between it wakes when the next deadline falls (at most every minWake) to
// finish the rooms then due, so a room ends milliseconds after its
// deadline, not up to an interval later. A room created meanwhile is not
// missed: a room lives longer than an interval, so a full sweep sees its
// deadline before it falls. A failing Redis does not stop Run: the error
// is counted, logged once per outage, and the next sweep retries.
func (s *Service) Run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	wake := time.NewTimer(every)
	defer wake.Stop()
	failing, full := false, true
	for {
		n, next, err := s.sweep(ctx, full)
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
		wait := every
		if next != NoneAhead && err == nil {
			wait = min(max(next, minWake), every)
		}
		wake.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			full = true
		case <-s.kick:
			full = true
		case <-wake.C:
			full = false
		}
	}
}
