package contract

// Realtime signals between a room's two members. They are never stored:
// a gateway publishes them on the room's subjects (so every gateway that
// holds a socket of the room hears them) and relays them to the other
// member's sockets. The payload of typing and read is the exact frame the
// other member receives; HeaderMember says which member sent it.
const (
	EventTyping   = "chat.typing"
	EventRead     = "chat.read"
	EventPresence = "chat.presence"
	// EventKey carries a member's public key in an end-to-end room.
	EventKey = "chat.key"

	// HeaderMember carries the sending member's public marker.
	HeaderMember = "Wisp-Member"
)

// SubjectResync is where a service says that events may have been lost
// for every room (Redis came back without its data): each gateway then
// checks its rooms and catches its sockets up.
const SubjectResync = "wisp.resync"

// TypingSubject is where a room's typing signals are published.
func TypingSubject(roomID string) string { return EventTyping + "." + roomID }

// ReadSubject is where a room's read receipts are published.
func ReadSubject(roomID string) string { return EventRead + "." + roomID }

// KeySubject is where a room's public keys are published.
func KeySubject(roomID string) string { return EventKey + "." + roomID }

// PresenceSubject is where gateways tell each other which members of a
// room hold a socket on them.
func PresenceSubject(roomID string) string { return EventPresence + "." + roomID }

// SubjectPresenceRefresh is where each gateway renews, every interval, the
// leases of everything it holds: one message per batch of rooms, not one
// per member and room, so that idle sockets cost no steady stream of
// messages. HeaderGateway names the sender, so it drops its own unread.
const (
	SubjectPresenceRefresh = "wisp.presence.refresh"
	HeaderGateway          = "Wisp-Gateway"
)

// PresenceRefresh is one batch of a gateway's refresh: every listed member
// has a socket on Gateway, for LeaseMS more unless refreshed again.
type PresenceRefresh struct {
	Gateway string        `json:"gateway"`
	LeaseMS int64         `json:"leaseMs"`
	Rooms   []RoomHolding `json:"rooms"`
}

// RoomHolding is the members of one room a gateway holds sockets of.
type RoomHolding struct {
	Room    string   `json:"room"`
	Members []string `json:"members"`
}

// Presence is what a gateway publishes on PresenceSubject: Member has (or
// no longer has) a socket on Gateway. Sync marks an answer to another
// gateway's news, which is itself never answered. An online entry
// lasts LeaseMS unless refreshed, so a gateway that dies is forgotten.
type Presence struct {
	Member  string `json:"member"`
	Gateway string `json:"gateway"`
	Online  bool   `json:"online"`
	Sync    bool   `json:"sync,omitempty"`
	LeaseMS int64  `json:"leaseMs,omitempty"`
}

// PresenceData is the data of the chat.presence frame a client receives
// about the other member.
type PresenceData struct {
	Online bool `json:"online"`
}

// ReadData is the data of a chat.read frame.
type ReadData struct {
	Seq int64 `json:"seq"`
}

// PresenceEvent encodes the chat.presence frame.
func PresenceEvent(online bool) []byte {
	return encodeEvent(EventPresence, PresenceData{Online: online})
}

// ReadEvent encodes the chat.read frame.
func ReadEvent(seq int64) []byte { return encodeEvent(EventRead, ReadData{Seq: seq}) }

// TypingEvent is the chat.typing frame.
var TypingEvent = []byte(`{"event":"chat.typing","data":{}}`)

// KeyData is the data of a chat.key frame: the other member's public key
// (Alg "X25519" or "P-256", Key its raw form in base64url) and, in Peer,
// the fingerprint of the key it holds for the receiver (base64url; "" when
// it holds none yet).
type KeyData struct {
	Alg  string `json:"alg"`
	Key  string `json:"key"`
	Peer string `json:"peer,omitempty"`
}

// KeyEvent encodes the chat.key frame.
func KeyEvent(d KeyData) []byte { return encodeEvent(EventKey, d) }
