package contract

import (
	"bytes"
	"encoding/json"
)

// Message is one chat message as the API returns it. Token is the author's
// opaque member marker, set only on the caller's own messages; it is never
// the member's secret cookie token.
type Message struct {
	ID     string `json:"id"`
	Seq    int64  `json:"seq"`
	Sender string `json:"sender"`
	Text   string `json:"text"`
	// Envelope is the sealed sender and text of a message in an end-to-end
	// room (base64url; Sender and Text are then empty); "" elsewhere.
	Envelope  string `json:"envelope,omitempty"`
	Timestamp int64  `json:"timestamp"`
	RoomID    string `json:"roomId"`
	Token     string `json:"token,omitempty"`
}

// Event is one realtime frame. Events are published on NATS in exactly the
// form browsers receive them, so a gateway relays the bytes untouched.
type Event struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// DestroyData is the data of a chat.destroy event.
type DestroyData struct {
	IsDestroyed bool   `json:"isDestroyed"`
	Reason      string `json:"reason"`
}

// MessageEvent encodes the chat.message frame for m, without its token.
func MessageEvent(m Message) []byte {
	m.Token = ""
	return encodeEvent(EventMessage, m)
}

// SeqOf reads the seq of a chat.message frame as MessageEvent writes it,
// without decoding the rest; ok is false for any other frame.
func SeqOf(frame []byte) (seq int64, ok bool) {
	return seqAfter(frame, `{"event":"`+EventMessage+`","data":{`)
}

// ReplySeq reads the seq of the message in a SendReply as JSON encodes it.
func ReplySeq(reply []byte) (seq int64, ok bool) {
	return seqAfter(reply, `{"message":{`)
}

// seqAfter reads the first "seq" field after prefix, which b must start
// with. Only an id (no quotes in it) comes before seq in a Message, so the
// first one is the message's own, whatever its text.
func seqAfter(b []byte, prefix string) (seq int64, ok bool) {
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return 0, false
	}
	i := bytes.Index(b[len(prefix):], []byte(`"seq":`))
	if i < 0 {
		return 0, false
	}
	digits := b[len(prefix)+i+len(`"seq":`):]
	n := 0
	for n < len(digits) && n < 19 && digits[n] >= '0' && digits[n] <= '9' {
		seq = seq*10 + int64(digits[n]-'0')
		n++
	}
	return seq, n > 0
}

// DestroyEvent encodes the chat.destroy frame for the given reason.
func DestroyEvent(reason string) []byte {
	return encodeEvent(EventDestroy, DestroyData{IsDestroyed: true, Reason: reason})
}

// encodeEvent writes the Event envelope around data's JSON directly: going
// through json.Marshal(Event{…}) would scan and copy the data a second time
// (RawMessage is re-validated), on every message's path. Event names are
// constants that need no escaping.
func encodeEvent(name string, data any) []byte {
	raw, err := json.Marshal(data)
	if err != nil {
		// Only fixed struct types reach here; they always encode.
		panic("contract: encode event: " + err.Error())
	}
	out := make([]byte, 0, len(`{"event":"","data":}`)+len(name)+len(raw))
	out = append(out, `{"event":"`...)
	out = append(out, name...)
	out = append(out, `","data":`...)
	out = append(out, raw...)
	return append(out, '}')
}

// CreateRoomRequest asks for a room that lives TTL seconds; 0 (or an empty
// body, as old gateways send) means the rooms service's default lifetime.
// E2E makes the room end-to-end: it then stores only envelopes.
type CreateRoomRequest struct {
	TTL int64 `json:"ttl,omitempty"`
	E2E bool  `json:"e2e,omitempty"`
}

// CreateRoomReply answers SubjectRoomCreate. ExpiresAt is the room's
// deadline in ms since the epoch.
type CreateRoomReply struct {
	RoomID    string `json:"roomId"`
	CreatedAt int64  `json:"createdAt"`
	ExpiresAt int64  `json:"expiresAt"`
}

// RoomRequest names a room and the caller's token; it is the request of
// join (token optional), authorize, ttl and destroy.
type RoomRequest struct {
	RoomID string `json:"roomId"`
	Token  string `json:"token,omitempty"`
}

// JoinReply answers SubjectRoomJoin. Token is the member's secret, to be put
// in the member's cookie; Joined says whether a new slot was taken.
type JoinReply struct {
	Token     string `json:"token"`
	Joined    bool   `json:"joined"`
	ExpiresAt int64  `json:"expiresAt"`
}

// AuthorizeReply answers SubjectRoomAuth for a member of a live room.
// Member is the caller's public marker, the token its own messages carry
// (never the secret token): it tells a room's two members apart.
type AuthorizeReply struct {
	ExpiresAt int64  `json:"expiresAt"`
	Member    string `json:"member"`
	// LastSeq is the seq of the room's newest message (0: none yet): where
	// a gateway that must catch its sockets up starts from.
	LastSeq int64 `json:"lastSeq"`
	// E2E says the room is end-to-end: it stores only envelopes.
	E2E bool `json:"e2e,omitempty"`
}

// TTLReply answers SubjectRoomTTL: whole seconds left, never negative, and
// whether the room is end-to-end (the page's cue to encrypt).
type TTLReply struct {
	TTL int64 `json:"ttl"`
	E2E bool  `json:"e2e,omitempty"`
}

// DestroyReply answers SubjectRoomDestroy.
type DestroyReply struct{}

// SendRequest asks the messages service to append a message. ClientID,
// when set, makes the send idempotent: a retry with the same ClientID by the
// same member stores nothing and is answered with the message stored first.
type SendRequest struct {
	RoomID   string `json:"roomId"`
	Token    string `json:"token"`
	Sender   string `json:"sender"`
	Text     string `json:"text"`
	ClientID string `json:"clientId,omitempty"`
	// Envelope, for an end-to-end room, replaces Sender and Text.
	Envelope string `json:"envelope,omitempty"`
}

// SendReply answers SubjectMessageSend with the stored message (Token set:
// it is the caller's own), also when a retry found it already stored.
type SendReply struct {
	Message Message `json:"message"`
}

// ListRequest asks for a room's messages with a seq above After.
type ListRequest struct {
	RoomID string `json:"roomId"`
	Token  string `json:"token"`
	After  int64  `json:"after,omitempty"`
}

// ListReply answers SubjectMessageList, oldest first. A reply holds one
// page; More says to ask again with After set to the last seq.
type ListReply struct {
	Messages []Message `json:"messages"`
	More     bool      `json:"more,omitempty"`
}
