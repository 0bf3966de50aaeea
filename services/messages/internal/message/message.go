// Package message is the messages domain: members of a live room append
// messages, numbered 1, 2, 3… per room, and read them back; each message is
// announced to the room as it is stored.
package message

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
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

// Errors the store classifies and the API maps to codes.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrRoomGone     = errors.New("room gone")
	ErrRoomFull     = errors.New("room message limit reached")
)

// InvalidError is a request that breaks a validation rule.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return e.Reason }

// Draft is a message before the store numbers it.
type Draft struct {
	ID        string
	RoomID    string
	Sender    string
	Text      string
	Timestamp time.Time
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

// PageSize is the most messages one List returns: a page of the longest
// messages stays well under NATS's default 1 MB payload limit.
const PageSize = 200

// Send validates, stores and announces a message; the reply carries the
// caller's own marker as its token.
func (s *Service) Send(ctx context.Context, roomID, token, sender, text string) (contract.Message, error) {
	if err := Validate(sender, text); err != nil {
		return contract.Message{}, err
	}
	if !contract.ValidRoomID(roomID) || token == "" {
		return contract.Message{}, ErrUnauthorized
	}
	d := Draft{ID: contract.RandomID(idLen), RoomID: roomID, Sender: sender, Text: text, Timestamp: s.now()}
	st, err := s.store.Append(ctx, d, contract.TokenHash(token), s.perRoom)
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

// List returns the room's messages after seq `after`, oldest first, with
// token set only on the caller's own.
func (s *Service) List(ctx context.Context, roomID, token string, after int64) ([]contract.Message, error) {
	if !contract.ValidRoomID(roomID) || token == "" {
		return nil, ErrUnauthorized
	}
	if after < 0 {
		return nil, &InvalidError{Reason: "after must not be negative"}
	}
	st, marker, err := s.store.List(ctx, roomID, contract.TokenHash(token), after, s.pageSize)
	if err != nil {
		return nil, err
	}
	out := make([]contract.Message, len(st))
	for i, m := range st {
		out[i] = toContract(m, marker)
	}
	return out, nil
}

// toContract shows the author marker only when it is the caller's.
func toContract(m Stored, callerMarker string) contract.Message {
	c := contract.Message{ID: m.ID, Seq: m.Seq, Sender: m.Sender, Text: m.Text,
		Timestamp: m.Timestamp.UnixMilli(), RoomID: m.RoomID}
	if m.Author != "" && m.Author == callerMarker {
		c.Token = m.Author
	}
	return c
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
	if strings.TrimSpace(text) == "" {
		return &InvalidError{Reason: "text must not be empty"}
	}
	if n := utf16Len(text); n > MaxText {
		return &InvalidError{Reason: fmt.Sprintf("text is %d characters long; the limit is %d", n, MaxText)}
	}
	return nil
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}
