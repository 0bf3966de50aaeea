package room

import (
	"context"
	"errors"
	"testing"
	"time"

	"wisp/contract"
)

// fakeStore answers with what a test sets and records what it was asked.
type fakeStore struct {
	createErr error
	created   []Room

	joined    bool
	joinErr   error
	candidate Candidate
	capacity  int

	access  Access
	authErr error
	hashes  []string // token hashes Authorize and Destroy were given

	destroyErr error
	claimed    bool
	claimErr   error
	claims     int
	announced  int
}

func (f *fakeStore) Create(_ context.Context, r Room) error {
	f.created = append(f.created, r)
	return f.createErr
}

func (f *fakeStore) Join(_ context.Context, _ string, c Candidate, capacity int) (bool, time.Time, error) {
	f.candidate, f.capacity = c, capacity
	return f.joined, time.UnixMilli(1_000), f.joinErr
}

func (f *fakeStore) Authorize(_ context.Context, _, tokenHash string) (Access, error) {
	f.hashes = append(f.hashes, tokenHash)
	return f.access, f.authErr
}

func (f *fakeStore) Destroy(_ context.Context, _, tokenHash string) error {
	f.hashes = append(f.hashes, tokenHash)
	return f.destroyErr
}

func (f *fakeStore) Claim(context.Context, string, time.Duration) (bool, error) {
	f.claims++
	return f.claimed, f.claimErr
}

func (f *fakeStore) Announced(context.Context, string) error {
	f.announced++
	return nil
}

type fakePublisher struct {
	err     error
	reasons []string
}

func (p *fakePublisher) Destroyed(_ context.Context, _, reason string) error {
	p.reasons = append(p.reasons, reason)
	return p.err
}

var (
	errRedis = errors.New("redis down")
	validID  = contract.RandomID(contract.RoomIDLen)
)

func TestCreate(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	for _, tc := range []struct {
		name     string
		storeErr error
		wantErr  error
	}{
		{"stored", nil, nil},
		{"store fails", errRedis, errRedis},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &fakeStore{createErr: tc.storeErr}
			s := NewService(store, &fakePublisher{}, 10*time.Minute, time.Second)
			s.now = func() time.Time { return now }
			r, err := s.Create(context.Background())
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if len(store.created) != 1 {
				t.Fatalf("store asked %d times", len(store.created))
			}
			if tc.wantErr != nil {
				if r != (Room{}) {
					t.Fatalf("a failed create returned %+v", r)
				}
				return
			}
			if !contract.ValidRoomID(r.ID) || !r.CreatedAt.Equal(now) || !r.ExpiresAt.Equal(now.Add(10*time.Minute)) {
				t.Fatalf("room %+v, want a valid id created now, ending in 10m", r)
			}
			if store.created[0] != r {
				t.Fatalf("stored %+v, returned %+v", store.created[0], r)
			}
		})
	}
}

func TestJoin(t *testing.T) {
	for _, tc := range []struct {
		name       string
		roomID     string
		token      string
		joined     bool
		storeErr   error
		wantErr    error
		askStore   bool
		wantFresh  bool // the member gets the freshly minted token
		wantHashed bool // the presented token reached the store, hashed
	}{
		{name: "malformed id", roomID: "../etc", wantErr: ErrNotFound},
		{name: "newcomer takes a slot", roomID: validID, joined: true, askStore: true, wantFresh: true},
		{name: "member keeps their token", roomID: validID, token: "tok-a", askStore: true, wantHashed: true},
		{name: "stale cookie, new slot", roomID: validID, token: "old", joined: true, askStore: true, wantFresh: true, wantHashed: true},
		{name: "full", roomID: validID, storeErr: ErrFull, wantErr: ErrFull, askStore: true},
		{name: "gone", roomID: validID, token: "tok-a", storeErr: ErrNotFound, wantErr: ErrNotFound, askStore: true, wantHashed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &fakeStore{joined: tc.joined, joinErr: tc.storeErr}
			s := NewService(store, &fakePublisher{}, time.Minute, time.Second)
			m, err := s.Join(context.Background(), tc.roomID, tc.token)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if asked := store.capacity != 0; asked != tc.askStore {
				t.Fatalf("store asked: %v, want %v", asked, tc.askStore)
			}
			if !tc.askStore {
				return
			}
			c := store.candidate
			if store.capacity != Capacity || c.NewHash == "" || len(c.NewMarker) != markerLen {
				t.Fatalf("candidate %+v, capacity %d", c, store.capacity)
			}
			if hashed := c.PresentedHash == contract.TokenHash(tc.token); tc.wantHashed != (hashed && tc.token != "") {
				t.Fatalf("presented hash %q for token %q", c.PresentedHash, tc.token)
			}
			if tc.wantErr != nil {
				return
			}
			if m.Joined != tc.joined || !m.ExpiresAt.Equal(time.UnixMilli(1_000)) {
				t.Fatalf("membership %+v", m)
			}
			if tc.wantFresh {
				if len(m.Token) != tokenLen || m.Token == tc.token || contract.TokenHash(m.Token) != c.NewHash {
					t.Fatalf("token %q is not the freshly minted one (hash %s)", m.Token, c.NewHash)
				}
			} else if m.Token != tc.token {
				t.Fatalf("token %q, want the member's own %q", m.Token, tc.token)
			}
		})
	}
}

func TestAuthorizeAndTTL(t *testing.T) {
	for _, tc := range []struct {
		name     string
		roomID   string
		token    string
		left     time.Duration
		storeErr error
		wantErr  error
		wantTTL  int64
	}{
		{name: "malformed id", roomID: "x", token: "tok", wantErr: ErrUnauthorized},
		{name: "no token", roomID: validID, wantErr: ErrUnauthorized},
		{name: "stranger", roomID: validID, token: "tok", storeErr: ErrUnauthorized, wantErr: ErrUnauthorized},
		{name: "store fails", roomID: validID, token: "tok", storeErr: errRedis, wantErr: errRedis},
		{name: "whole seconds", roomID: validID, token: "tok", left: 597 * time.Second, wantTTL: 597},
		// Rounded up: a client counting down never leaves early.
		{name: "a millisecond over", roomID: validID, token: "tok", left: 596*time.Second + time.Millisecond, wantTTL: 597},
		{name: "last nanosecond", roomID: validID, token: "tok", left: time.Nanosecond, wantTTL: 1},
		{name: "past the deadline", roomID: validID, token: "tok", left: -time.Second, wantTTL: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &fakeStore{access: Access{Member: "m-0", Left: tc.left}, authErr: tc.storeErr}
			s := NewService(store, &fakePublisher{}, time.Minute, time.Second)
			ttl, err := s.TTL(context.Background(), tc.roomID, tc.token)
			if !errors.Is(err, tc.wantErr) || ttl != tc.wantTTL {
				t.Fatalf("TTL = %d, %v; want %d, %v", ttl, err, tc.wantTTL, tc.wantErr)
			}
			a, err := s.Authorize(context.Background(), tc.roomID, tc.token)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Authorize err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && a.Member != "m-0" {
				t.Fatalf("access %+v", a)
			}
			for _, h := range store.hashes {
				if h != contract.TokenHash(tc.token) {
					t.Fatalf("store got %q, not the token's hash", h)
				}
			}
			if stopped := tc.roomID != validID || tc.token == ""; stopped != (len(store.hashes) == 0) {
				t.Fatalf("store asked %d times", len(store.hashes))
			}
		})
	}
}

func TestDestroy(t *testing.T) {
	for _, tc := range []struct {
		name       string
		roomID     string
		token      string
		authErr    error
		destroyErr error
		claimed    bool
		claimErr   error
		pubErr     error
		wantErr    error
		wantClaim  bool
		wantPublic bool
	}{
		{name: "malformed id", roomID: "x", token: "tok", wantErr: ErrUnauthorized},
		{name: "no token", roomID: validID, wantErr: ErrUnauthorized},
		{name: "stranger or gone", roomID: validID, token: "tok", authErr: ErrUnauthorized, wantErr: ErrUnauthorized},
		{name: "destroyed and claimed", roomID: validID, token: "tok", claimed: true, wantClaim: true, wantPublic: true},
		// Expiry claimed it first: it announces, so this call stays silent.
		{name: "expiry won the claim", roomID: validID, token: "tok", wantClaim: true},
		// The other member's destroy claimed it and deleted the keys first.
		{name: "the other member won", roomID: validID, token: "tok", destroyErr: ErrUnauthorized, wantErr: ErrUnauthorized, wantClaim: true},
		// The claim is ours though the keys went meanwhile (their TTL ran out).
		{name: "claimed, keys gone", roomID: validID, token: "tok", claimed: true, destroyErr: ErrUnauthorized, wantClaim: true, wantPublic: true},
		// Claimed but not deleted: the expiry service finishes it after the lease.
		{name: "delete fails after the claim", roomID: validID, token: "tok", claimed: true, destroyErr: errRedis, wantErr: errRedis, wantClaim: true},
		{name: "claim fails", roomID: validID, token: "tok", claimErr: errRedis, wantErr: errRedis, wantClaim: true},
		{name: "announce fails", roomID: validID, token: "tok", claimed: true, pubErr: errRedis, wantErr: errRedis, wantClaim: true, wantPublic: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &fakeStore{authErr: tc.authErr, destroyErr: tc.destroyErr, claimed: tc.claimed, claimErr: tc.claimErr}
			pub := &fakePublisher{err: tc.pubErr}
			err := NewService(store, pub, time.Minute, time.Second).Destroy(context.Background(), tc.roomID, tc.token)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if (store.claims == 1) != tc.wantClaim || store.claims > 1 {
				t.Fatalf("claimed %d times", store.claims)
			}
			want := 0
			if tc.wantPublic {
				want = 1
			}
			if len(pub.reasons) != want || (want == 1 && pub.reasons[0] != contract.ReasonDestroyed) {
				t.Fatalf("announced %v, want %d %q", pub.reasons, want, contract.ReasonDestroyed)
			}
			// Out of the ending set only once NATS has the announcement.
			if done := tc.wantPublic && tc.pubErr == nil; (store.announced == 1) != done {
				t.Fatalf("Announced called %d times", store.announced)
			}
		})
	}
}
