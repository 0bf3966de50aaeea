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
	ErrInvalidTTL   = fmt.Errorf("ttl must be between %d and %d seconds", int(MinTTL/time.Second), int(MaxTTL/time.Second))
)

// The lifetimes a creator may choose; the service's own default (ROOM_TTL)
// is the operator's and need not lie within them.
const (
	MinTTL = time.Minute
	MaxTTL = time.Hour
)

// Room is a room's metadata.
type Room struct {
	ID        string
	CreatedAt time.Time
	ExpiresAt time.Time
	// E2E marks an end-to-end room: its messages are envelopes only.
	E2E bool
}

// Membership is the outcome of a join.
type Membership struct {
	Token     string // the secret to hand the member (their cookie)
	Joined    bool   // a new slot was taken
	ExpiresAt time.Time
}

// Access is what a member's token admits to in a live room.
type Access struct {
	Member    string // the member's public marker, as on its own messages
	ExpiresAt time.Time
	Left      time.Duration
	LastSeq   int64 // the room's newest message (0: none)
	E2E       bool  // the room is end-to-end
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
	// Authorize returns the member's marker and the deadline and time left
	// of a live room of which tokenHash is a member, or ErrUnauthorized.
	Authorize(ctx context.Context, roomID, tokenHash string) (Access, error)
	// Destroy deletes every key of the room if tokenHash is a member
	// (ErrUnauthorized otherwise).
	Destroy(ctx context.Context, roomID, tokenHash string) error
	// Claim moves the room from the deadline set into the ending set (the
	// outbox of ends to announce), leased to this caller for lease. Exactly
	// one caller of all replicas and services gets true, and that caller
	// announces the end; should it die first, an expiry replica announces
	// it once the lease has run out.
	Claim(ctx context.Context, roomID string, lease time.Duration) (bool, error)
	// Announced takes the room's destroyed end out of the ending set.
	Announced(ctx context.Context, roomID string) error
}

// Publisher announces a room's end to its members.
type Publisher interface {
	// Destroyed returns once NATS has the room's chat.destroy.
	Destroyed(ctx context.Context, roomID, reason string) error
}

// DefaultLease is how long a destroy that claimed a room's end has to
// announce it before the expiry service does.
const DefaultLease = 3 * time.Second

// Service is the rooms use cases.
type Service struct {
	store Store
	pub   Publisher
	ttl   time.Duration
	lease time.Duration
	now   func() time.Time
}

// NewService returns the rooms service; rooms live for ttl, and a destroy
// has lease to announce the end it claimed.
func NewService(store Store, pub Publisher, ttl, lease time.Duration) *Service {
	return &Service{store: store, pub: pub, ttl: ttl, lease: lease, now: time.Now}
}

// Create makes a room with an unguessable id and no members that lives for
// the service's default lifetime.
func (s *Service) Create(ctx context.Context) (Room, error) {
	return s.CreateFor(ctx, 0)
}

// CreateFor makes a room that lives for ttl, which must lie within MinTTL
// and MaxTTL (ErrInvalidTTL); 0 is the service's default lifetime.
func (s *Service) CreateFor(ctx context.Context, ttl time.Duration) (Room, error) {
	return s.CreateWith(ctx, ttl, false)
}

// CreateWith is CreateFor for a room that is end-to-end when e2e is set.
func (s *Service) CreateWith(ctx context.Context, ttl time.Duration, e2e bool) (Room, error) {
	switch {
	case ttl == 0:
		ttl = s.ttl
	case ttl < MinTTL || ttl > MaxTTL:
		return Room{}, ErrInvalidTTL
	}
	now := s.now()
	r := Room{ID: contract.RandomID(contract.RoomIDLen), CreatedAt: now, ExpiresAt: now.Add(ttl), E2E: e2e}
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

// Authorize checks that token belongs to a member of the live room and
// says which member it is (its public marker, never the token).
func (s *Service) Authorize(ctx context.Context, roomID, token string) (Access, error) {
	if !contract.ValidRoomID(roomID) || token == "" {
		return Access{}, ErrUnauthorized
	}
	return s.store.Authorize(ctx, roomID, contract.TokenHash(token))
}

// TTL returns the whole seconds the room has left, rounded up so a client
// counting down never leaves before the room ends; never negative.
func (s *Service) TTL(ctx context.Context, roomID, token string) (int64, error) {
	ttl, _, err := s.TTLOf(ctx, roomID, token)
	return ttl, err
}

// TTLOf is TTL, and whether the room is end-to-end.
func (s *Service) TTLOf(ctx context.Context, roomID, token string) (ttl int64, e2e bool, err error) {
	a, err := s.Authorize(ctx, roomID, token)
	if err != nil {
		return 0, false, err
	}
	return ceilSeconds(a.Left), a.E2E, nil
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// Destroy ends the room now on a member's request. The end is claimed
// before the keys go, so that a replica dying at any step leaves a trace
// someone finishes: after the claim, the expiry service announces the end
// once the lease runs out; before it, the room is intact. Whoever claims
// the room (this call, the other member's, or an expiry racing it)
// announces the end, so members hear of it once. Destroying a gone room is
// ErrUnauthorized, and harmless.
func (s *Service) Destroy(ctx context.Context, roomID, token string) error {
	if !contract.ValidRoomID(roomID) || token == "" {
		return ErrUnauthorized
	}
	hash := contract.TokenHash(token)
	if _, err := s.store.Authorize(ctx, roomID, hash); err != nil {
		return err // only a member may claim the room's end
	}
	claimed, err := s.store.Claim(ctx, roomID, s.lease)
	if err != nil {
		return fmt.Errorf("claim destroyed room: %w", err)
	}
	if err := s.store.Destroy(ctx, roomID, hash); err != nil && (!claimed || !errors.Is(err, ErrUnauthorized)) {
		// Won the claim while the keys went (the TTL ran out, or the other
		// member's destroy took them): the end is still ours to announce.
		// Any other failure leaves the claimed end to the expiry service.
		return err
	}
	if !claimed {
		return nil
	}
	if err := s.pub.Destroyed(ctx, roomID, contract.ReasonDestroyed); err != nil {
		return fmt.Errorf("announce destroy: %w", err)
	}
	// Announced: an entry left behind (Redis failed just now) is announced
	// once more when its lease runs out, a duplicate members ignore.
	_ = s.store.Announced(ctx, roomID)
	return nil
}
