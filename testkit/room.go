package testkit

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"wisp/contract"
)

// Room is a room as wisp's services leave it in Redis, for tests (and
// benchmarks) of services that read rooms someone else wrote.
type Room struct {
	ID       string    // "" draws a fresh room id
	Deadline time.Time // the room ends then; every key expires with it
	// Tokens become the members, in order; member i's marker is "m-<i>".
	Tokens []string
	// Messages are entries of the room's message list as the messages
	// service stores them (one JSON message each; entry i has seq i+1).
	Messages []string
	// Clients are idempotent sends as the messages service records them:
	// "<author marker>:<clientId>" -> the seq that send stored.
	Clients map[string]int64
}

// seedChunk bounds one pipeline, so seeding 10,000 rooms neither builds one
// huge request nor takes 10,000 round trips.
const seedChunk = 1000

// WriteRooms writes rooms in the key layout of wisp/contract, in the order
// the rooms service creates one: the deadline entry first, then the room
// hash, so a room never exists without the entry the expiry service finds.
// It returns the room ids, drawn where Room.ID is empty.
func WriteRooms(ctx context.Context, rdb redis.Cmdable, rooms ...Room) ([]string, error) {
	ids := make([]string, len(rooms))
	for start := 0; start < len(rooms); start += seedChunk {
		end := min(start+seedChunk, len(rooms))
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := start; i < end; i++ {
				ids[i] = writeRoom(ctx, p, rooms[i])
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("seed rooms: %w", err)
		}
	}
	return ids, nil
}

func writeRoom(ctx context.Context, p redis.Pipeliner, r Room) string {
	id := r.ID
	if id == "" {
		id = contract.RandomID(contract.RoomIDLen)
	}
	ms := r.Deadline.UnixMilli()
	p.ZAdd(ctx, contract.DeadlinesKeyOf(id), redis.Z{Score: float64(ms), Member: id})
	p.HSet(ctx, contract.RoomKey(id), "createdAt", time.Now().UnixMilli(), "deadline", ms)
	p.PExpireAt(ctx, contract.RoomKey(id), r.Deadline)
	for i, tok := range r.Tokens {
		p.HSet(ctx, contract.MembersKey(id), contract.TokenHash(tok), "m-"+strconv.Itoa(i))
	}
	if len(r.Tokens) > 0 {
		p.PExpireAt(ctx, contract.MembersKey(id), r.Deadline)
	}
	for _, m := range r.Messages {
		p.RPush(ctx, contract.MessagesKey(id), m)
	}
	if len(r.Messages) > 0 {
		p.PExpireAt(ctx, contract.MessagesKey(id), r.Deadline)
	}
	for k, seq := range r.Clients {
		p.HSet(ctx, contract.ClientsKey(id), k, seq)
	}
	if len(r.Clients) > 0 {
		p.PExpireAt(ctx, contract.ClientsKey(id), r.Deadline)
	}
	return id
}

// SeedRooms is WriteRooms for a test: an error fails it.
func SeedRooms(tb testing.TB, rdb redis.Cmdable, rooms ...Room) []string {
	tb.Helper()
	ids, err := WriteRooms(context.Background(), rdb, rooms...)
	if err != nil {
		tb.Fatal(err)
	}
	return ids
}

// SeedRoom writes one live room whose members hold tokens.
func SeedRoom(tb testing.TB, rdb redis.Cmdable, roomID string, deadline time.Time, tokens ...string) {
	tb.Helper()
	SeedRooms(tb, rdb, Room{ID: roomID, Deadline: deadline, Tokens: tokens})
}

// claimDestroyed is the rooms service's claim of a destroyed room: out of
// its shard of the deadline set, into the shard's ending set under a lease (Redis's clock).
var claimDestroyed = redis.NewScript(`
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[3]), ARGV[2])
return 1`)

// DestroyRoom does to Redis what the rooms service's destroy does before it
// announces: it claims the room (moving it into the ending set with reason
// destroyed, leased for lease), then deletes every key of the room. It
// returns whether the claim was this call's, the one that decides who
// announces the room's end. A caller that announces removes the entry
// with EndAnnounced; one that does not plays a replica that died, and the
// expiry service announces the end once the lease runs out.
func DestroyRoom(tb testing.TB, rdb redis.Cmdable, roomID string, lease time.Duration) (claimed bool) {
	tb.Helper()
	ctx := context.Background()
	shard := contract.DeadlinesKeyOf(roomID)
	n, err := claimDestroyed.Run(ctx, rdb, []string{shard, contract.EndingKeyOf(shard)},
		roomID, contract.EndingMember(contract.ReasonDestroyed, roomID), lease.Milliseconds()).Int()
	if err != nil {
		tb.Fatalf("claim room: %v", err)
	}
	if err := rdb.Del(ctx, contract.RoomKeys(roomID)...).Err(); err != nil {
		tb.Fatalf("destroy room: %v", err)
	}
	return n == 1
}

// EndAnnounced removes an announced end from the ending set, as its
// announcer does.
func EndAnnounced(tb testing.TB, rdb redis.Cmdable, reason, roomID string) {
	tb.Helper()
	ending := contract.EndingKeyOf(contract.DeadlinesKeyOf(roomID))
	if err := rdb.ZRem(context.Background(), ending, contract.EndingMember(reason, roomID)).Err(); err != nil {
		tb.Fatal(err)
	}
}
