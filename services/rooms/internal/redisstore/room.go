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

	createScript    = redis.NewScript(createSrc)
	joinScript      = redis.NewScript(joinSrc)
	authorizeScript = redis.NewScript(authorizeSrc)
	destroyScript   = redis.NewScript(destroySrc)
)

// Rooms implements room.Store.
type Rooms struct {
	rdb redis.UniversalClient
}

// NewRooms returns a store on rdb.
func NewRooms(rdb redis.UniversalClient) *Rooms { return &Rooms{rdb: rdb} }

var _ room.Store = (*Rooms)(nil)

// errIDTaken is a create on an existing id: 126 random bits make it
// practically impossible, so it is an internal error, not a retry loop.
var errIDTaken = errors.New("room id already taken")

// Create records the deadline first, then the room: a room never exists
// without an entry the expiry service will find.
func (s *Rooms) Create(ctx context.Context, r room.Room) error {
	deadline := r.ExpiresAt.UnixMilli()
	if err := s.rdb.ZAdd(ctx, contract.DeadlinesKey, redis.Z{Score: float64(deadline), Member: r.ID}).Err(); err != nil {
		return err
	}
	n, err := createScript.Run(ctx, s.rdb, []string{contract.RoomKey(r.ID)},
		r.CreatedAt.UnixMilli(), deadline).Int()
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
	res, err := joinScript.Run(ctx, s.rdb, []string{contract.RoomKey(roomID), contract.MembersKey(roomID)},
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
func (s *Rooms) Authorize(ctx context.Context, roomID, tokenHash string) (time.Time, time.Duration, error) {
	res, err := authorizeScript.Run(ctx, s.rdb, []string{contract.RoomKey(roomID), contract.MembersKey(roomID)}, tokenHash).Slice()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, 0, room.ErrUnauthorized
	}
	if err != nil {
		return time.Time{}, 0, err
	}
	if len(res) != 2 {
		return time.Time{}, 0, fmt.Errorf("authorize: unexpected reply %v", res)
	}
	deadline, err := millis(res[0])
	if err != nil {
		return time.Time{}, 0, err
	}
	pttl, _ := res[1].(int64)
	return deadline, time.Duration(max(pttl, 0)) * time.Millisecond, nil
}

// Destroy runs the destroy script.
func (s *Rooms) Destroy(ctx context.Context, roomID, tokenHash string) error {
	n, err := destroyScript.Run(ctx, s.rdb,
		[]string{contract.RoomKey(roomID), contract.MembersKey(roomID), contract.MessagesKey(roomID)}, tokenHash).Int()
	if err != nil {
		return err
	}
	if n == 0 {
		return room.ErrUnauthorized
	}
	return nil
}

// Claim removes the room from the deadline set; ZREM answers 1 to exactly
// one caller.
func (s *Rooms) Claim(ctx context.Context, roomID string) (bool, error) {
	n, err := s.rdb.ZRem(ctx, contract.DeadlinesKey, roomID).Result()
	return n == 1, err
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
