// Package redisstore is the expiry service's store: the shards of the
// deadline set, each with its ending set (the outbox of claimed ends) and
// its epoch, and the room keys of wisp/contract's key layout, each
// read-modify-write one Lua script on one shard (one Cluster slot).
package redisstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"wisp/contract"
	"wisp/services/expiry/internal/expiry"
)

var (
	//go:embed lua/due.lua
	dueSrc string
	//go:embed lua/claim.lua
	claimSrc string
	//go:embed lua/overdue.lua
	overdueSrc string
	//go:embed lua/epoch.lua
	epochSrc string

	dueScript     = redis.NewScript(dueSrc)
	claimScript   = redis.NewScript(claimSrc)
	overdueScript = redis.NewScript(overdueSrc)
	epochScript   = redis.NewScript(epochSrc)
)

// shard is one deadline set with the ending set and epoch beside it (one
// hash tag: one Cluster slot).
type shard struct{ deadlines, ending, epoch string }

func newShard(deadlines string) shard {
	return shard{deadlines: deadlines, ending: contract.EndingKeyOf(deadlines), epoch: contract.EpochKeyOf(deadlines)}
}

// Rooms implements expiry.Store on every shard of the deadline set
// (contract.DeadlineShardKeys), plus the unsharded set of wisp before the
// sharding (contract.DeadlinesKey), which it drains but never checks an
// epoch of. A call that spans shards sends one script per shard in one
// pipeline (on Redis Cluster: one per master, in parallel); shards that fail
// (a master failing over) are reported as an error next to what the others
// answered, so one failing master holds back only its own rooms.
type Rooms struct {
	rdb    redis.UniversalClient
	shards []shard
	legacy shard
	// legacyDue is set while the last DueRooms found due rooms in the
	// unsharded set: only then do claims look there too.
	legacyDue atomic.Bool
}

// NewRooms returns a store on rdb and the shards of contract's key layout.
func NewRooms(rdb redis.UniversalClient) *Rooms {
	s := &Rooms{rdb: rdb, legacy: newShard(contract.DeadlinesKey)}
	for _, k := range contract.DeadlineShardKeys() {
		s.shards = append(s.shards, newShard(k))
	}
	return s
}

var _ expiry.Store = (*Rooms)(nil)

func (s *Rooms) shardOf(roomID string) shard { return s.shards[contract.DeadlineShardOf(roomID)] }

// all is every shard, the unsharded set last.
func (s *Rooms) all() []shard { return append(slices.Clip(s.shards), s.legacy) }

// call is one run of a script.
type call struct {
	keys []string
	args []any
}

// evalEach runs script once per call, all in one pipeline, and returns each
// call's reply. When a node answers NOSCRIPT (its script cache is empty: a
// restart, or a replica promoted before it ever ran the script), the script
// is loaded on every node and those calls go again, still in one pipeline,
// so that racing replicas' batches do not interleave call by call.
func (s *Rooms) evalEach(ctx context.Context, script *redis.Script, calls []call) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(calls))
	send := func(idx []int) {
		pipe := s.rdb.Pipeline()
		for _, i := range idx {
			cmds[i] = script.EvalSha(ctx, pipe, calls[i].keys, calls[i].args...)
		}
		_, _ = pipe.Exec(ctx) // each command carries its own error
	}
	all := make([]int, len(calls))
	for i := range all {
		all[i] = i
	}
	send(all)
	var again []int
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		if err := script.Load(ctx, s.rdb).Err(); err != nil {
			return cmds
		}
		send(again)
	}
	return cmds
}

// shardErrors joins the errors of failed calls, naming each call's first key.
func shardErrors(calls []call, errs []error) error {
	var out []error
	for i, err := range errs {
		if err != nil {
			out = append(out, fmt.Errorf("%s: %w", calls[i].keys[0], err))
		}
	}
	return errors.Join(out...)
}

// DueRooms runs the due script on every shard: the earliest limit rooms,
// across shards, whose deadline has passed by Redis's clock, and the wait
// until the earliest deadline still ahead in any shard that answered.
func (s *Rooms) DueRooms(ctx context.Context, limit int) ([]string, time.Duration, error) {
	shards := s.all()
	calls := make([]call, len(shards))
	for i, sh := range shards {
		calls[i] = call{keys: []string{sh.deadlines}, args: []any{limit}}
	}
	var rooms []expiry.Claimed
	next := expiry.NoneAhead
	errs := make([]error, len(calls))
	for i, cmd := range s.evalEach(ctx, dueScript, calls) {
		got, wait, err := parseDue(cmd)
		if errs[i] = err; err == nil && i == len(shards)-1 {
			s.legacyDue.Store(len(got) > 0)
		}
		if wait != expiry.NoneAhead && (next == expiry.NoneAhead || wait < next) {
			next = wait
		}
		rooms = append(rooms, got...)
	}
	slices.SortStableFunc(rooms, func(a, b expiry.Claimed) int { return a.Deadline.Compare(b.Deadline) })
	ids := make([]string, 0, min(len(rooms), limit))
	for _, r := range rooms[:min(len(rooms), limit)] {
		ids = append(ids, r.ID)
	}
	return ids, next, shardErrors(calls, errs)
}

// parseDue reads the due script's {{id, deadline, ...}, wait ms} reply.
func parseDue(cmd *redis.Cmd) ([]expiry.Claimed, time.Duration, error) {
	res, err := cmd.Slice()
	if err != nil {
		return nil, expiry.NoneAhead, err
	}
	if len(res) != 2 {
		return nil, expiry.NoneAhead, fmt.Errorf("due: reply of %d parts, want 2", len(res))
	}
	pairs, ok1 := res[0].([]any)
	wait, ok2 := res[1].(int64)
	if !ok1 || !ok2 {
		return nil, expiry.NoneAhead, fmt.Errorf("due: reply of %T and %T", res[0], res[1])
	}
	flat := make([]string, len(pairs))
	for i, v := range pairs {
		if flat[i], ok1 = v.(string); !ok1 {
			return nil, expiry.NoneAhead, fmt.Errorf("due: reply entry of %T", v)
		}
	}
	rooms, err := roomDeadlines("due", flat)
	next := expiry.NoneAhead
	if wait >= 0 {
		next = time.Duration(wait) * time.Millisecond
	}
	return rooms, next, err
}

// Claim runs the claim script on each shard the rooms are in: one round
// trip for the whole batch. Rooms not found in their shard are tried in the
// unsharded set while it has due rooms.
func (s *Rooms) Claim(ctx context.Context, roomIDs []string, lease time.Duration) ([]expiry.Claimed, error) {
	if len(roomIDs) == 0 {
		return nil, nil
	}
	byShard := map[shard][]string{}
	for _, id := range roomIDs {
		byShard[s.shardOf(id)] = append(byShard[s.shardOf(id)], id)
	}
	out, err := s.claim(ctx, byShard, lease)
	if !s.legacyDue.Load() {
		return out, err
	}
	won := make(map[string]bool, len(out))
	for _, c := range out {
		won[c.ID] = true
	}
	var rest []string
	for _, id := range roomIDs {
		if !won[id] {
			rest = append(rest, id)
		}
	}
	if len(rest) == 0 {
		return out, err
	}
	more, lerr := s.claim(ctx, map[shard][]string{s.legacy: rest}, lease)
	return append(out, more...), errors.Join(err, lerr)
}

func (s *Rooms) claim(ctx context.Context, byShard map[shard][]string, lease time.Duration) ([]expiry.Claimed, error) {
	calls := make([]call, 0, len(byShard))
	for sh, ids := range byShard {
		args := make([]any, 0, len(ids)+2)
		args = append(args, lease.Milliseconds(), contract.EndingMember(contract.ReasonExpired, ""))
		for _, id := range ids {
			args = append(args, id)
		}
		calls = append(calls, call{keys: []string{sh.deadlines, sh.ending}, args: args})
	}
	var out []expiry.Claimed
	errs := make([]error, len(calls))
	for i, cmd := range s.evalEach(ctx, claimScript, calls) {
		var got []expiry.Claimed
		var res []string
		if res, errs[i] = cmd.StringSlice(); errs[i] == nil {
			got, errs[i] = roomDeadlines("claim", res)
		}
		out = append(out, got...)
	}
	return out, shardErrors(calls, errs)
}

// roomDeadlines reads a script's {id, deadline, id, deadline, ...} reply.
func roomDeadlines(script string, res []string) ([]expiry.Claimed, error) {
	if len(res)%2 != 0 {
		return nil, fmt.Errorf("%s: odd reply length %d", script, len(res))
	}
	out := make([]expiry.Claimed, 0, len(res)/2)
	for j := 0; j < len(res); j += 2 {
		ms, err := strconv.ParseFloat(res[j+1], 64)
		if err != nil {
			return out, fmt.Errorf("%s: bad deadline %q of room %s", script, res[j+1], res[j])
		}
		out = append(out, expiry.Claimed{ID: res[j], Deadline: time.UnixMilli(int64(ms))})
	}
	return out, nil
}

// Overdue runs the overdue script on every shard's ending set (the
// unsharded one's too), up to limit ends each. A member it cannot read
// (nothing wisp writes) is removed rather than handed out again every
// lease.
func (s *Rooms) Overdue(ctx context.Context, lease time.Duration, limit int) ([]expiry.Ending, error) {
	shards := s.all()
	calls := make([]call, len(shards))
	for i, sh := range shards {
		calls[i] = call{keys: []string{sh.ending}, args: []any{lease.Milliseconds(), limit}}
	}
	var out []expiry.Ending
	errs := make([]error, len(calls))
	for i, cmd := range s.evalEach(ctx, overdueScript, calls) {
		members, err := cmd.StringSlice()
		if errs[i] = err; err != nil {
			continue
		}
		var junk []any
		for _, m := range members {
			reason, id, ok := contract.ParseEndingMember(m)
			if !ok {
				junk = append(junk, m)
				continue
			}
			out = append(out, expiry.Ending{Reason: reason, ID: id})
		}
		if len(junk) > 0 {
			errs[i] = s.rdb.ZRem(ctx, shards[i].ending, junk...).Err()
		}
	}
	return out, shardErrors(calls, errs)
}

// Done removes announced ends from the ending sets: a room's from its
// shard's and the unsharded one (where a room an older rooms service wrote
// was claimed), a resync from every shard's (each shard that lost its epoch
// put it in its own). An entry another replica took over meanwhile goes
// too: it was announced all the same.
func (s *Rooms) Done(ctx context.Context, ends []expiry.Ending) error {
	if len(ends) == 0 {
		return nil
	}
	byKey := map[string][]any{}
	for _, e := range ends {
		m := contract.EndingMember(e.Reason, e.ID)
		if e.Reason == contract.EndingResync {
			for _, sh := range s.shards {
				byKey[sh.ending] = append(byKey[sh.ending], m)
			}
			continue
		}
		if contract.ValidRoomID(e.ID) {
			k := s.shardOf(e.ID).ending
			byKey[k] = append(byKey[k], m)
		}
		byKey[s.legacy.ending] = append(byKey[s.legacy.ending], m)
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, members := range byKey {
			p.ZRem(ctx, k, members...)
		}
		return nil
	})
	return err
}

// CheckEpoch runs the epoch script on every shard with one fresh epoch: on
// Redis Cluster a master that lost its data lost only its shards' epochs,
// and however many were lost, one resync (the same member in each of their
// ending sets) is announced.
func (s *Rooms) CheckEpoch(ctx context.Context, lease time.Duration) (expiry.Ending, bool, error) {
	e := expiry.Ending{Reason: contract.EndingResync, ID: contract.RandomID(contract.RoomIDLen)}
	calls := make([]call, len(s.shards))
	for i, sh := range s.shards {
		calls[i] = call{keys: []string{sh.epoch, sh.ending}, args: []any{e.ID, contract.EndingMember(e.Reason, e.ID), lease.Milliseconds()}}
	}
	lost := false
	errs := make([]error, len(calls))
	for i, cmd := range s.evalEach(ctx, epochScript, calls) {
		n, err := cmd.Int()
		errs[i] = err
		lost = lost || (err == nil && n == 1)
	}
	if !lost {
		return expiry.Ending{}, false, shardErrors(calls, errs)
	}
	return e, true, shardErrors(calls, errs)
}

// Cleanup deletes each room's keys with one DEL per room, all in one
// pipeline. The keys of one room share a hash tag, so each DEL stays in one
// Cluster slot; the deadline set is left alone (Claim already took the room
// out of it).
func (s *Rooms) Cleanup(ctx context.Context, roomIDs []string) error {
	if len(roomIDs) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range roomIDs {
			p.Del(ctx, contract.RoomKeys(id)...)
		}
		return nil
	})
	return err
}
