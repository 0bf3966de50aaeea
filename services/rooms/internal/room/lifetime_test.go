package room

import (
	"context"
	"errors"
	"testing"
	"time"
)

// lifetimeStore records the rooms created; the other methods are not used.
type lifetimeStore struct {
	Store
	created []Room
}

func (s *lifetimeStore) Create(_ context.Context, r Room) error {
	s.created = append(s.created, r)
	return nil
}

func TestCreateForBoundsTheLifetime(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		ask, want time.Duration // want 0: refused
	}{
		{0, 10 * time.Minute},
		{MinTTL, MinTTL},
		{15 * time.Minute, 15 * time.Minute},
		{MaxTTL, MaxTTL},
		{MinTTL - time.Nanosecond, 0},
		{MaxTTL + time.Second, 0},
		{-time.Minute, 0},
	} {
		st := &lifetimeStore{}
		s := NewService(st, nil, 10*time.Minute, time.Second)
		s.now = func() time.Time { return now }
		r, err := s.CreateFor(context.Background(), tc.ask)
		if tc.want == 0 {
			if !errors.Is(err, ErrInvalidTTL) || len(st.created) != 0 {
				t.Errorf("CreateFor(%v) = %v with %d rooms stored, want ErrInvalidTTL and none", tc.ask, err, len(st.created))
			}
			continue
		}
		if err != nil || !r.ExpiresAt.Equal(now.Add(tc.want)) || len(st.created) != 1 || st.created[0] != r {
			t.Errorf("CreateFor(%v) = %+v, %v; want a room expiring at %v, stored", tc.ask, r, err, now.Add(tc.want))
		}
	}
	if got := ErrInvalidTTL.Error(); got != "ttl must be between 60 and 3600 seconds" {
		t.Errorf("ErrInvalidTTL says %q", got)
	}
}
