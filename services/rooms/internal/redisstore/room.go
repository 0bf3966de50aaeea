// Package redisstore keeps rooms in Redis with the key layout of
// wisp/contract. Every read-modify-write is one Lua script.
package redisstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"wisp/contract"
	"wisp/platform/redisbatch"
	"wisp/services/rooms/internal/room"
)

var (
	//go:embed lua/create.lua
	createSrc string
	//go:embed lua/join.lua
	joinSrc string
	//go:embed lua/authorize.lua
	authorizeSrc string
	//go:embed lua/destroy.lua
	destroySrc string
	//go:embed lua/claim.lua
	claimSrc string
	//go:embed lua/deadline.lua
	deadlineSrc string

	createScript    = redis.NewScript(createSrc)
	joinScript      = redis.NewScript(joinSrc)
	authorizeScript = redis.NewScript(authorizeSrc)
	destroyScript   = redis.NewScript(destroySrc)
	claimScript     = redis.NewScript(claimSrc)
	deadlineScript  = redis.NewScript(deadlineSrc)
)

// Rooms implements room.Store. Scripts that arrive while others are in
// flight go to Redis together, in one pipeline (see redisbatch).
type Rooms struct {
	rdb     redis.UniversalClient
	scripts *redisbatch.Batcher
}

// NewRooms returns a store on rdb.
func NewRooms(rdb redis.UniversalClient) *Rooms {
	return &Rooms{rdb: rdb, scripts: redisbatch.New(rdb)}
}

var _ room.Store = (*Rooms)(nil)

// errIDTaken is a create on an existing id: 126 random bits make it
// practically impossible, so it is an internal error, not a retry loop.
var errIDTaken = errors.New("room id already taken")

// Create records the deadline first, in the room's shard of the deadline
// set, then the room: a room never exists without an entry the expiry
// service will find.
func (s *Rooms) Create(ctx context.Context, r room.Room) error {
	deadline := r.ExpiresAt.UnixMilli()
	if err := s.scripts.Run(ctx, deadlineScript, []string{contract.DeadlinesKeyOf(r.ID)}, deadline, r.ID).Err(); err != nil {
		return err
	}
	e2e := ""
	if r.E2E {
		e2e = "1"
	}
	n, err := s.scripts.Run(ctx, createScript, []string{contract.RoomKey(r.ID)},
		r.CreatedAt.UnixMilli(), deadline, e2e).Int()
	if err != nil {
		return err
	}
	if n == 0 {
		return errIDTaken
	}
	return nil
}

// Join runs the join script.
func (s *Rooms) Join(ctx context.Context, roomID string, c room.Candidate, capacity int) (bool, time.Time, error) {
	res, err := s.scripts.Run(ctx, joinScript, []string{contract.RoomKey(roomID), contract.MembersKey(roomID)},
		c.PresentedHash, c.NewHash, c.NewMarker, capacity).Slice()
	if err != nil {
		return false, time.Time{}, err
	}
	if len(res) != 2 {
		return false, time.Time{}, fmt.Errorf("join: unexpected reply %v", res)
	}
	deadline, err := millis(res[1])
	if err != nil {
		return false, time.Time{}, err
	}
	switch res[0] {
	case "joined":
		return true, deadline, nil
	case "member":
		return false, deadline, nil
	case "full":
		return false, time.Time{}, room.ErrFull
	case "notfound":
		return false, time.Time{}, room.ErrNotFound
	}
	return false, time.Time{}, fmt.Errorf("join: unexpected status %v", res[0])
}

// Authorize runs the authorize script.
func (s *Rooms) Authorize(ctx context.Context, roomID, tokenHash string) (room.Access, error) {
	res, err := s.scripts.Run(ctx, authorizeScript,
		[]string{contract.RoomKey(roomID), contract.MembersKey(roomID), contract.MessagesKey(roomID)}, tokenHash).Slice()
	if errors.Is(err, redis.Nil) {
		return room.Access{}, room.ErrUnauthorized
	}
	if err != nil {
		return room.Access{}, err
	}
	if len(res) != 5 {
		return room.Access{}, fmt.Errorf("authorize: unexpected reply %v", res)
	}
	deadline, err := millis(res[0])
	if err != nil {
		return room.Access{}, err
	}
	pttl, _ := res[1].(int64)
	marker, _ := res[2].(string)
	last, _ := res[3].(int64)
	e2e, _ := res[4].(string)
	return room.Access{Member: marker, ExpiresAt: deadline, Left: time.Duration(max(pttl, 0)) * time.Millisecond,
		LastSeq: last, E2E: e2e == "1"}, nil
}

// Destroy runs the destroy script on every key of the room.
func (s *Rooms) Destroy(ctx context.Context, roomID, tokenHash string) error {
	n, err := s.scripts.Run(ctx, destroyScript, contract.RoomKeys(roomID), tokenHash).Int()
	if err != nil {
		return err
	}
	if n == 0 {
		return room.ErrUnauthorized
	}
	return nil
}

// Claim runs the claim script on the room's shard of the deadline set: the
// room's end moves into the shard's ending set under this caller's lease if
// no one claimed it before. A room an older rooms service put in the
// unsharded set (contract.DeadlinesKey) is claimed there.
func (s *Rooms) Claim(ctx context.Context, roomID string, lease time.Duration) (bool, error) {
	member := contract.EndingMember(contract.ReasonDestroyed, roomID)
	shard := contract.DeadlinesKeyOf(roomID)
	n, err := s.scripts.Run(ctx, claimScript, []string{shard, contract.EndingKeyOf(shard)}, roomID, member, lease.Milliseconds()).Int()
	if err != nil || n == 1 {
		return n == 1, err
	}
	n, err = s.scripts.Run(ctx, claimScript, []string{contract.DeadlinesKey, contract.EndingKey}, roomID, member, lease.Milliseconds()).Int()
	return n == 1, err
}

// Announced takes the room's destroyed end out of the ending set (its
// shard's, or the unsharded one's for a room claimed there).
func (s *Rooms) Announced(ctx context.Context, roomID string) error {
	member := contract.EndingMember(contract.ReasonDestroyed, roomID)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, contract.EndingKeyOf(contract.DeadlinesKeyOf(roomID)), member)
		p.ZRem(ctx, contract.EndingKey, member)
		return nil
	})
	return err
}

func millis(v any) (time.Time, error) {
	var ms int64
	switch x := v.(type) {
	case int64:
		ms = x
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("bad deadline %q", x)
		}
		ms = n
	default:
		return time.Time{}, fmt.Errorf("bad deadline %v", v)
	}
	return time.UnixMilli(ms), nil
}
