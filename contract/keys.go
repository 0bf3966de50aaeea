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
//	wisp:deadlines           zset  room id scored by its deadline (ms); the
//	                               expiry service claims a room by ZREM-ing it
//	wisp:expiry:probe:<random>     string, 1 ms TTL: the expiry service's check
//	                               that expired events arrive where CONFIG is refused
const (
	roomKeyPrefix = "wisp:room:{"
	DeadlinesKey  = "wisp:deadlines"
)

// RoomKey is the room's metadata hash; its expiry is the room's lifetime.
func RoomKey(roomID string) string { return roomKeyPrefix + roomID + "}" }

// MembersKey maps a member's token hash to its public marker.
func MembersKey(roomID string) string { return roomKeyPrefix + roomID + "}:members" }

// MessagesKey is the room's message list.
func MessagesKey(roomID string) string { return roomKeyPrefix + roomID + "}:messages" }

// RoomIDFromKey returns the room id of a RoomKey, and false for any other key
// (a room's member or message key included).
func RoomIDFromKey(key string) (string, bool) {
	if !strings.HasPrefix(key, roomKeyPrefix) || !strings.HasSuffix(key, "}") {
		return "", false
	}
	id := key[len(roomKeyPrefix) : len(key)-1]
	return id, ValidRoomID(id)
}

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
	if len(id) < RoomIDLen || len(id) > maxRoomIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
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
