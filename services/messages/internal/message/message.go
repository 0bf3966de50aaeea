// Package message is the messages domain: members of a live room append
// messages, numbered 1, 2, 3… per room, and read them back; each message is
// announced to the room as it is stored.
package message

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"

	"wisp/contract"
)

// Limits. Lengths are UTF-16 code units, as the original's JavaScript
// counted them, so a browser's maxlength and the server agree.
const (
	MaxSender = 100
	MaxText   = 1000
	idLen     = 21
)

// MaxClientID is the longest clientId a send may carry. A clientId is made
// of the room id alphabet only (A-Za-z0-9_-), so it never holds the ':' that
// joins it to the author's marker in the store.
const MaxClientID = 64

// Errors the store classifies and the API maps to codes.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrRoomGone     = errors.New("room gone")
	ErrRoomFull     = errors.New("room message limit reached")
	// ErrSealedOnly is plain text sent to an end-to-end room (a downgrade).
	ErrSealedOnly = &InvalidError{Reason: "this room is end-to-end encrypted: send an envelope, not sender and text"}
	// ErrPlainOnly is an envelope sent to a room that is not end-to-end.
	ErrPlainOnly = &InvalidError{Reason: "this room is not end-to-end encrypted: send sender and text"}
)

// Envelope bounds, in bytes after base64url decoding: the header of a
// sealed message (version, two key fingerprints, counter, IV) and its
// authentication tag at the least; a longest name and text, padded, with
// room to spare at the most. EnvelopeVersion is the first byte.
const (
	MinEnvelope     = 65
	MaxEnvelope     = 4096
	EnvelopeVersion = 1
)

// InvalidError is a request that breaks a validation rule.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return e.Reason }

// Draft is a message before the store numbers it. ClientID is the sender's
// key for retries of this send ("" for none); it is not part of the message.
type Draft struct {
	ID        string
	RoomID    string
	Sender    string
	Text      string
	Timestamp time.Time
	ClientID  string
	// Envelope is the sealed sender and text of an end-to-end room's
	// message (Sender and Text are then ""); the store refuses a draft
	// whose kind is not its room's.
	Envelope string
}

// Stored is a message as kept: the draft plus its seq and the author's
// member marker.
type Stored struct {
	Draft
	Seq    int64
	Author string
}

// Store keeps messages. Append and List check membership atomically with
// their work.
type Store interface {
	// Append stores d if tokenHash is a member of the live room, as the next
	// seq, expiring with the room. ErrUnauthorized, ErrRoomGone, ErrRoomFull.
	// When this member already sent d.ClientID, nothing is stored and the
	// message stored then is returned, as it was (its id, text, timestamp).
	// A draft with an envelope in a room that is not end-to-end is
	// ErrPlainOnly, one without in an end-to-end room ErrSealedOnly.
	Append(ctx context.Context, d Draft, tokenHash string, limit int) (Stored, error)
	// List returns the messages with seq > after (at most max of them),
	// oldest first, and the caller's marker; ErrUnauthorized otherwise.
	List(ctx context.Context, roomID, tokenHash string, after int64, max int) (msgs []Stored, marker string, err error)
}

// Publisher announces stored messages to the room.
type Publisher interface {
	Published(ctx context.Context, m contract.Message) error
}

// Service is the messages use cases.
type Service struct {
	store    Store
	pub      Publisher
	perRoom  int
	pageSize int
	now      func() time.Time
}

// NewService returns the service; a room holds at most perRoom messages.
func NewService(store Store, pub Publisher, perRoom int) *Service {
	return &Service{store: store, pub: pub, perRoom: perRoom, pageSize: PageSize, now: time.Now}
}

// A page holds at most PageSize messages and PageBytes of their JSON, so
// that the reply stays well under NATS's default 1 MiB payload whatever
// the text (escape-heavy text is up to 6 bytes a character in JSON).
const (
	PageSize  = 200
	PageBytes = 256 << 10
)

// Send validates, stores and announces a message; the reply carries the
// caller's own marker as its token. A retry of a send (same member, same
// ClientID) returns the message the first one stored and announces it
// again: members drop what they already have by id, and a retry after a
// lost announcement still delivers it.
func (s *Service) Send(ctx context.Context, req contract.SendRequest) (contract.Message, error) {
	if err := validateSend(req); err != nil {
		return contract.Message{}, err
	}
	if err := ValidateClientID(req.ClientID); err != nil {
		return contract.Message{}, err
	}
	if !contract.ValidRoomID(req.RoomID) || req.Token == "" {
		return contract.Message{}, ErrUnauthorized
	}
	d := Draft{ID: contract.RandomID(idLen), RoomID: req.RoomID, Sender: req.Sender, Text: req.Text,
		Timestamp: s.now(), ClientID: req.ClientID, Envelope: req.Envelope}
	st, err := s.store.Append(ctx, d, contract.TokenHash(req.Token), s.perRoom)
	if err != nil {
		return contract.Message{}, err
	}
	m := toContract(st, st.Author)
	if err := s.pub.Published(ctx, m); err != nil {
		// Stored but not announced: members get it on their next fetch.
		return m, fmt.Errorf("announce message: %w", err)
	}
	return m, nil
}

// List returns the first page of the room's messages after seq `after`.
func (s *Service) List(ctx context.Context, roomID, token string, after int64) ([]contract.Message, error) {
	p, err := s.Page(ctx, roomID, token, after)
	return p.Messages, err
}

// Page returns the room's messages after seq `after`, oldest first, with
// token set only on the caller's own, as many as fit a page; More says
// there are later ones to ask for.
func (s *Service) Page(ctx context.Context, roomID, token string, after int64) (contract.ListReply, error) {
	if !contract.ValidRoomID(roomID) || token == "" {
		return contract.ListReply{}, ErrUnauthorized
	}
	if after < 0 {
		return contract.ListReply{}, &InvalidError{Reason: "after must not be negative"}
	}
	// No room holds more than perRoom messages; a larger after (even one
	// Lua's numbers cannot hold exactly) finds nothing, but still checks
	// the caller's membership.
	after = min(after, int64(s.perRoom))
	st, marker, err := s.store.List(ctx, roomID, contract.TokenHash(token), after, s.pageSize)
	if err != nil {
		return contract.ListReply{}, err
	}
	out := make([]contract.Message, 0, len(st))
	size := 0
	for _, m := range st {
		c := toContract(m, marker)
		if size += encodedSize(c); size > PageBytes && len(out) > 0 {
			return contract.ListReply{Messages: out, More: true}, nil
		}
		out = append(out, c)
	}
	return contract.ListReply{Messages: out, More: len(st) == s.pageSize}, nil
}

// encodedSize is the length of m's JSON in a reply (with its comma).
func encodedSize(m contract.Message) int {
	b, _ := json.Marshal(m) // a fixed struct always encodes
	return len(b) + 1
}

// toContract shows the author marker only when it is the caller's.
func toContract(m Stored, callerMarker string) contract.Message {
	c := contract.Message{ID: m.ID, Seq: m.Seq, Sender: m.Sender, Text: m.Text, Envelope: m.Envelope,
		Timestamp: m.Timestamp.UnixMilli(), RoomID: m.RoomID}
	if m.Author != "" && m.Author == callerMarker {
		c.Token = m.Author
	}
	return c
}

// validateSend checks a send by its kind: an envelope alone, or a sender
// and a text.
func validateSend(req contract.SendRequest) error {
	if req.Envelope == "" {
		return Validate(req.Sender, req.Text)
	}
	if req.Sender != "" || req.Text != "" {
		return &InvalidError{Reason: "a send with an envelope carries no sender or text"}
	}
	return ValidateEnvelope(req.Envelope)
}

// ValidateEnvelope checks a sealed message as far as the server can see
// it: unpadded base64url (RFC 4648 §5) of MinEnvelope to MaxEnvelope bytes
// whose first is EnvelopeVersion. What it hides is the members' to check.
func ValidateEnvelope(env string) error {
	if len(env) > base64.RawURLEncoding.EncodedLen(MaxEnvelope) {
		return &InvalidError{Reason: fmt.Sprintf("envelope is over %d bytes", MaxEnvelope)}
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(env)
	if err != nil {
		return &InvalidError{Reason: "envelope must be unpadded base64url"}
	}
	if len(raw) < MinEnvelope || len(raw) > MaxEnvelope {
		return &InvalidError{Reason: fmt.Sprintf("envelope is %d bytes; it must be %d to %d", len(raw), MinEnvelope, MaxEnvelope)}
	}
	if raw[0] != EnvelopeVersion {
		return &InvalidError{Reason: fmt.Sprintf("envelope version %d is not %d", raw[0], EnvelopeVersion)}
	}
	return nil
}

// Validate checks sender and text lengths in UTF-16 code units; blank ones
// are refused.
func Validate(sender, text string) error {
	if strings.TrimSpace(sender) == "" {
		return &InvalidError{Reason: "sender must not be empty"}
	}
	if n := utf16Len(sender); n > MaxSender {
		return &InvalidError{Reason: fmt.Sprintf("sender is %d characters long; the limit is %d", n, MaxSender)}
	}
	if strings.IndexFunc(sender, misleading) >= 0 {
		return &InvalidError{Reason: "sender must not contain control or text-direction characters"}
	}
	if strings.EqualFold(strings.TrimSpace(sender), "YOU") {
		// The page labels one's own messages YOU: a peer must not look like us.
		return &InvalidError{Reason: "sender must not be YOU"}
	}
	if strings.TrimSpace(text) == "" {
		return &InvalidError{Reason: "text must not be empty"}
	}
	if n := utf16Len(text); n > MaxText {
		return &InvalidError{Reason: fmt.Sprintf("text is %d characters long; the limit is %d", n, MaxText)}
	}
	return nil
}

// ValidateClientID checks a send's clientId: none at all (old clients), or
// 1 to MaxClientID characters of A-Za-z0-9_-.
func ValidateClientID(id string) error {
	if strings.IndexFunc(id, func(r rune) bool { return !strings.ContainsRune(contract.RoomIDAlphabet, r) }) >= 0 {
		return &InvalidError{Reason: "clientId may hold only the characters A-Z, a-z, 0-9, _ and -"}
	}
	// Only ASCII is left, so bytes are characters.
	if n := len(id); n > MaxClientID {
		return &InvalidError{Reason: fmt.Sprintf("clientId is %d characters long; the limit is %d", n, MaxClientID)}
	}
	return nil
}

// misleading: a character that would let a name hide or rearrange text
// around it on the other member's screen (controls, bidi overrides and
// isolates, zero-width and line/paragraph separators).
func misleading(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return true
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F, r == 0x061C:
		return true
	case r == 0x2028 || r == 0x2029 || r == 0x200B || r == 0xFEFF:
		return true
	}
	return false
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}
