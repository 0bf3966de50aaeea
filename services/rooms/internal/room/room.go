// Package room is the rooms domain: a room lives for a fixed time, admits at
// most Capacity members, each holding a secret token, and ends once,
// announced to its members, when its time is up or a member destroys it.
package room

import (
	"context"
	"errors"
	"fmt"
	"time"

	"wisp/contract"
)

// Capacity is how many members a room admits.
const Capacity = 2

// Token and marker sizes: a token is the member's credential (192 bits); a
// marker is its public, per-room pseudonym (96 bits).
const (
	tokenLen  = 32
	markerLen = 16
)

// Errors the store classifies and the API maps to codes.
var (
	ErrNotFound     = errors.New("room not found")
	ErrFull         = errors.New("room is full")
	ErrUnauthorized = errors.New("unauthorized")
	ErrInvalidID    = errors.New("malformed room id")
)

// Room is a room's metadata.
type Room struct {
	ID        string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Membership is the outcome of a join.
type Membership struct {
	Token     string // the secret to hand the member (their cookie)
	Joined    bool   // a new slot was taken
	ExpiresAt time.Time
}

// Candidate is a would-be member: the hash of the token they presented (or
// "") and the credentials minted for them should they take a slot.
type Candidate struct {
	PresentedHash string
	NewHash       string
	NewMarker     string
}

// Store keeps rooms. Each method is atomic on its own.
type Store interface {
	// Create stores a new room and records its deadline.
	Create(ctx context.Context, r Room) error
	// Join admits c as in the package doc: ErrNotFound, ErrFull, or whether a
	// new slot was taken, with the room's deadline.
	Join(ctx context.Context, roomID string, c Candidate, capacity int) (joined bool, expiresAt time.Time, err error)
	// Authorize returns the deadline and time left of a live room of which
	// tokenHash is a member, or ErrUnauthorized.
	Authorize(ctx context.Context, roomID, tokenHash string) (expiresAt time.Time, left time.Duration, err error)
	// Destroy deletes every key of the room if tokenHash is a member
	// (ErrUnauthorized otherwise).
	Destroy(ctx context.Context, roomID, tokenHash string) error
	// Claim removes the room from the deadline set; exactly one caller of all
	// replicas and services gets true, and that caller announces the end.
	Claim(ctx context.Context, roomID string) (bool, error)
}

// Publisher announces a room's end to its members.
type Publisher interface {
	Destroyed(ctx context.Context, roomID, reason string) error
}

// Service is the rooms use cases.
type Service struct {
	store Store
	pub   Publisher
	ttl   time.Duration
	now   func() time.Time
}

// NewService returns the rooms service; rooms live for ttl.
func NewService(store Store, pub Publisher, ttl time.Duration) *Service {
	return &Service{store: store, pub: pub, ttl: ttl, now: time.Now}
}

// Create makes a room with an unguessable id and no members.
func (s *Service) Create(ctx context.Context) (Room, error) {
	now := s.now()
	r := Room{ID: contract.RandomID(contract.RoomIDLen), CreatedAt: now, ExpiresAt: now.Add(s.ttl)}
	if err := s.store.Create(ctx, r); err != nil {
		return Room{}, fmt.Errorf("create room: %w", err)
	}
	return r, nil
}

// Join admits the caller: a current member keeps their token and slot; a
// newcomer gets a fresh token while the room has room.
func (s *Service) Join(ctx context.Context, roomID, token string) (Membership, error) {
	if !contract.ValidRoomID(roomID) {
		return Membership{}, ErrNotFound
	}
	c := Candidate{NewMarker: contract.RandomID(markerLen)}
	fresh := contract.RandomID(tokenLen)
	c.NewHash = contract.TokenHash(fresh)
	if token != "" {
		c.PresentedHash = contract.TokenHash(token)
	}
	joined, expiresAt, err := s.store.Join(ctx, roomID, c, Capacity)
	if err != nil {
		return Membership{}, err
	}
	m := Membership{Token: token, Joined: joined, ExpiresAt: expiresAt}
	if joined {
		m.Token = fresh
	}
	return m, nil
}

// Authorize checks that token belongs to a member of the live room.
func (s *Service) Authorize(ctx context.Context, roomID, token string) (time.Time, error) {
	exp, _, err := s.authorize(ctx, roomID, token)
	return exp, err
}

// TTL returns the whole seconds the room has left, rounded up so a client
// counting down never leaves before the room ends; never negative.
func (s *Service) TTL(ctx context.Context, roomID, token string) (int64, error) {
	_, left, err := s.authorize(ctx, roomID, token)
	if err != nil {
		return 0, err
	}
	return ceilSeconds(left), nil
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

func (s *Service) authorize(ctx context.Context, roomID, token string) (time.Time, time.Duration, error) {
	if !contract.ValidRoomID(roomID) || token == "" {
		return time.Time{}, 0, ErrUnauthorized
	}
	return s.store.Authorize(ctx, roomID, contract.TokenHash(token))
}

// Destroy ends the room now on a member's request: its keys go first, then
// whoever claims it (this call or an expiry racing it) announces the end,
// so members hear of it exactly once. Destroying a gone room is
// ErrUnauthorized, and harmless.
func (s *Service) Destroy(ctx context.Context, roomID, token string) error {
	if !contract.ValidRoomID(roomID) || token == "" {
		return ErrUnauthorized
	}
	if err := s.store.Destroy(ctx, roomID, contract.TokenHash(token)); err != nil {
		return err
	}
	claimed, err := s.store.Claim(ctx, roomID)
	if err != nil {
		return fmt.Errorf("claim destroyed room: %w", err)
	}
	if !claimed {
		return nil
	}
	if err := s.pub.Destroyed(ctx, roomID, contract.ReasonDestroyed); err != nil {
		return fmt.Errorf("announce destroy: %w", err)
	}
	return nil
}
