package contract

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// The Redis key layout, in one place. Every key of a room carries the room
// id as a {hash tag}, so the scripts that touch several of them stay valid on
// Redis Cluster. All of them expire at the room's deadline.
//
//	wisp:room:{ID}           hash  createdAt, deadline (ms since the epoch)
//	wisp:room:{ID}:members   hash  TokenHash(token) -> member marker
//	wisp:room:{ID}:messages  list  one JSON message per entry; entry i has seq i+1
//	wisp:room:{ID}:clients   hash  "<author marker>:<clientId>" -> seq of the
//	                               message that send stored (idempotent retries)
//	wisp:{deadlines.I.N}     zset  shard I (DeadlinesKeyOf) of the deadline set:
//	                               room id scored by its deadline (ms); a
//	                               room's end is claimed by moving it out
//	wisp:{deadlines.I.N}:ending  zset  the shard's outbox of claimed ends:
//	                               EndingMember (reason and id) scored by
//	                               the claim's lease end (ms, Redis's
//	                               clock). The claimer removes it once
//	                               announced; when the lease runs out any
//	                               expiry replica claims and announces it
//	wisp:{deadlines.I.N}:epoch   string, no TTL: written by the expiry
//	                               service when missing; missing again means
//	                               the Redis node holding it lost its data,
//	                               and every gateway is told to resync
//	wisp:{deadlines}         zset  the unsharded deadline set (and its
//	                               :ending) of wisp before the sharding:
//	                               nothing new is written there, the expiry
//	                               service still drains it
//	wisp:limit:<group>|<client>    string, a request count expiring with its
//	                               window: the gateways' shared rate limits
//
// A shard's deadline set, its outbox and its epoch share one hash tag, so
// the scripts that move a room from one to the other stay in one Redis
// Cluster slot. The DeadlineShards shards spread over the slot space (shard
// I's slot falls in the I-th sixteenth of it), so a cluster's masters share
// the creates and the sweeps; a room's shard is the sixteenth its own keys
// hash to, so on an evenly split cluster a room and its deadline entry are
// mostly on one master.
const (
	roomKeyPrefix = "wisp:room:{"
	// DeadlinesKey is the unsharded deadline set wisp used before
	// DeadlinesKeyOf: read (drained) by the expiry service, never written.
	DeadlinesKey = "wisp:{deadlines}"
	EndingKey    = DeadlinesKey + ":ending"
	EpochKey     = DeadlinesKey + ":epoch"
)

// DeadlineShards is how many shards the deadline set has.
const DeadlineShards = 16

// deadlineShardKeys are the shards' keys. Their hash tags were chosen, once,
// so that shard I's slot lies in [I*1024, (I+1)*1024); renaming one strands
// the rooms in it (a test pins them).
var deadlineShardKeys = [DeadlineShards]string{
	"wisp:{deadlines.0.10}", "wisp:{deadlines.1.103}", "wisp:{deadlines.2.23}", "wisp:{deadlines.3.28}",
	"wisp:{deadlines.4.60}", "wisp:{deadlines.5.78}", "wisp:{deadlines.6.0}", "wisp:{deadlines.7.3}",
	"wisp:{deadlines.8.2}", "wisp:{deadlines.9.1}", "wisp:{deadlines.10.62}", "wisp:{deadlines.11.69}",
	"wisp:{deadlines.12.2}", "wisp:{deadlines.13.1}", "wisp:{deadlines.14.12}", "wisp:{deadlines.15.19}",
}

// DeadlineShardKeys returns the key of every shard of the deadline set, in
// shard order.
func DeadlineShardKeys() []string { return deadlineShardKeys[:] }

// DeadlineShardOf is the shard of the deadline set that holds the room: the
// sixteenth of the slot space its keys hash to.
func DeadlineShardOf(roomID string) int {
	return Slot(RoomKey(roomID)) / (ClusterSlots / DeadlineShards)
}

// DeadlinesKeyOf is the shard of the deadline set that holds the room.
func DeadlinesKeyOf(roomID string) string { return deadlineShardKeys[DeadlineShardOf(roomID)] }

// EndingKeyOf is the outbox of the deadline set (or shard) at deadlines.
func EndingKeyOf(deadlines string) string { return deadlines + ":ending" }

// EpochKeyOf is the data-loss sentinel of the deadline set (or shard) at
// deadlines.
func EpochKeyOf(deadlines string) string { return deadlines + ":epoch" }

// EndingResync is the reason of an ending set entry that announces no room
// but a resync on SubjectResync (its id is the new epoch): Redis came back
// without its data.
const EndingResync = "resync"

// EndingMember is the ending set's member for a claimed end: "<reason>:<id>",
// reason being ReasonExpired, ReasonDestroyed or EndingResync.
func EndingMember(reason, id string) string { return reason + ":" + id }

// ParseEndingMember splits an ending set member; ok is false for anything
// EndingMember would not have written.
func ParseEndingMember(m string) (reason, id string, ok bool) {
	reason, id, ok = strings.Cut(m, ":")
	switch {
	case !ok || !inAlphabet(id) || id == "":
		return "", "", false
	case reason == ReasonExpired, reason == ReasonDestroyed, reason == EndingResync:
		return reason, id, true
	}
	return "", "", false
}

// RoomKey is the room's metadata hash; its expiry is the room's lifetime.
func RoomKey(roomID string) string { return roomKeyPrefix + roomID + "}" }

// MembersKey maps a member's token hash to its public marker.
func MembersKey(roomID string) string { return roomKeyPrefix + roomID + "}:members" }

// MessagesKey is the room's message list.
func MessagesKey(roomID string) string { return roomKeyPrefix + roomID + "}:messages" }

// ClientsKey maps a member's client-chosen send id to the seq it stored.
func ClientsKey(roomID string) string { return roomKeyPrefix + roomID + "}:clients" }

// RoomKeys is every key of a room, RoomKey and MembersKey first: what
// destroying a room or cleaning up after its expiry deletes. A new per-room
// key belongs here.
func RoomKeys(roomID string) []string {
	return []string{RoomKey(roomID), MembersKey(roomID), MessagesKey(roomID), ClientsKey(roomID)}
}

// RoomIDFromKey returns the room id of a RoomKey, and false for any other key
// (a room's member, message or clients key included).
func RoomIDFromKey(key string) (string, bool) {
	if !strings.HasPrefix(key, roomKeyPrefix) || !strings.HasSuffix(key, "}") {
		return "", false
	}
	id := key[len(roomKeyPrefix) : len(key)-1]
	return id, ValidRoomID(id)
}

// RateLimitKey is the counter of one rate-limit bucket.
func RateLimitKey(bucket string) string { return "wisp:limit:" + bucket }

// TokenHash is how a member token is stored: a leaked Redis dump holds no
// usable credential.
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Room ids are nanoid-style: RoomIDLen characters of RoomIDAlphabet.
const (
	RoomIDLen      = 21
	maxRoomIDLen   = 64
	RoomIDAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
)

// ValidRoomID reports whether id has the form of a room id. Anything else is
// refused before it reaches Redis or a NATS subject.
func ValidRoomID(id string) bool {
	return len(id) >= RoomIDLen && len(id) <= maxRoomIDLen && inAlphabet(id)
}

// MaxClientIDLen is the longest clientId a send may carry.
const MaxClientIDLen = 64

// ValidClientID reports whether id can be a send's clientId: 1 to
// MaxClientIDLen characters of RoomIDAlphabet (so it needs no escaping in
// JSON and never holds the ':' that joins it to a member marker in Redis).
func ValidClientID(id string) bool {
	return id != "" && len(id) <= MaxClientIDLen && inAlphabet(id)
}

func inAlphabet(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// RandomID returns n characters of RoomIDAlphabet from crypto/rand: 6 bits
// each, so 21 characters carry 126 bits and 32 carry 192.
func RandomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("contract: crypto/rand failed: " + err.Error())
	}
	for i := range b {
		b[i] = RoomIDAlphabet[b[i]&63]
	}
	return string(b)
}
