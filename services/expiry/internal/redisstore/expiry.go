// Package redisstore is the expiry service's Redis side: the deadline set
// and room keys of wisp/contract's key layout, and the keyspace "expired"
// events that tell when Redis deleted a room.
package redisstore

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
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

	dueScript   = redis.NewScript(dueSrc)
	claimScript = redis.NewScript(claimSrc)
)

// Rooms implements expiry.Store.
type Rooms struct {
	rdb redis.UniversalClient
}

// NewRooms returns a store on rdb.
func NewRooms(rdb redis.UniversalClient) *Rooms { return &Rooms{rdb: rdb} }

var _ expiry.Store = (*Rooms)(nil)

// DueRooms runs the due script: the earliest rooms whose deadline has
// passed by Redis's clock.
func (s *Rooms) DueRooms(ctx context.Context, limit int) ([]string, error) {
	return dueScript.Run(ctx, s.rdb, []string{contract.DeadlinesKey}, limit).StringSlice()
}

// Claim runs the claim script: one round trip for the whole batch.
func (s *Rooms) Claim(ctx context.Context, roomIDs []string) ([]expiry.Claimed, error) {
	if len(roomIDs) == 0 {
		return nil, nil
	}
	args := make([]any, len(roomIDs))
	for i, id := range roomIDs {
		args[i] = id
	}
	res, err := claimScript.Run(ctx, s.rdb, []string{contract.DeadlinesKey}, args...).StringSlice()
	if err != nil {
		return nil, err
	}
	if len(res)%2 != 0 {
		return nil, fmt.Errorf("claim: odd reply length %d", len(res))
	}
	out := make([]expiry.Claimed, 0, len(res)/2)
	for i := 0; i < len(res); i += 2 {
		ms, err := strconv.ParseFloat(res[i+1], 64)
		if err != nil {
			return nil, fmt.Errorf("claim: bad deadline %q of room %s", res[i+1], res[i])
		}
		out = append(out, expiry.Claimed{ID: res[i], Deadline: time.UnixMilli(int64(ms))})
	}
	return out, nil
}

// Cleanup deletes each room's keys with one DEL per room, all in one
// pipeline. The keys of one room share a hash tag, so each DEL stays in one
// Cluster slot; the deadline set is left alone (Claim already took the room
// out of it). Deleting a room key that is past its TTL also makes Redis
// fire its "expired" event, which other replicas then find already claimed.
func (s *Rooms) Cleanup(ctx context.Context, roomIDs []string) error {
	if len(roomIDs) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range roomIDs {
			p.Del(ctx, contract.RoomKey(id), contract.MembersKey(id), contract.MessagesKey(id))
		}
		return nil
	})
	return err
}

// Release puts rooms back in the deadline set with their deadlines. NX keeps
// it from touching an entry that somehow came back meanwhile.
func (s *Rooms) Release(ctx context.Context, rooms []expiry.Claimed) error {
	if len(rooms) == 0 {
		return nil
	}
	zs := make([]redis.Z, len(rooms))
	for i, r := range rooms {
		zs[i] = redis.Z{Score: float64(r.Deadline.UnixMilli()), Member: r.ID}
	}
	return s.rdb.ZAddNX(ctx, contract.DeadlinesKey, zs...).Err()
}
