package expiry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"wisp/testkit"
)

// fakeStore is an in-memory deadline set with failure injection.
type fakeStore struct {
	mu         sync.Mutex
	deadlines  map[string]time.Time
	cleaned    []string
	dueErrs    int // DueRooms fails this many more times
	cleanupErr error
	releaseErr error
}

func newFakeStore() *fakeStore { return &fakeStore{deadlines: map[string]time.Time{}} }

func (f *fakeStore) add(id string, deadline time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deadlines[id] = deadline
}

func (f *fakeStore) has(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.deadlines[id]
	return ok
}

func (f *fakeStore) DueRooms(ctx context.Context, limit int) ([]string, error) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dueErrs > 0 {
		f.dueErrs--
		return nil, errors.New("connection refused")
	}
	var ids []string
	for id, d := range f.deadlines {
		if !d.After(now) {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return f.deadlines[ids[i]].Before(f.deadlines[ids[j]]) })
	return ids[:min(limit, len(ids))], nil
}

func (f *fakeStore) Claim(ctx context.Context, ids []string) ([]Claimed, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Claimed
	for _, id := range ids {
		if d, ok := f.deadlines[id]; ok {
			delete(f.deadlines, id)
			out = append(out, Claimed{ID: id, Deadline: d})
		}
	}
	return out, nil
}

func (f *fakeStore) Cleanup(ctx context.Context, ids []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleaned = append(f.cleaned, ids...)
	return f.cleanupErr
}

func (f *fakeStore) Release(ctx context.Context, rooms []Claimed) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.releaseErr != nil {
		return f.releaseErr
	}
	for _, r := range rooms {
		f.deadlines[r.ID] = r.Deadline
	}
	return nil
}

type fakePublisher struct {
	mu   sync.Mutex
	sent []string
	fail map[string]bool
}

func (p *fakePublisher) Expired(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail[id] {
		return errors.New("nats: connection closed")
	}
	p.sent = append(p.sent, id)
	return nil
}

func (p *fakePublisher) announced() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Sorted(slices.Values(p.sent))
}

func newTestService(t *testing.T) (*Service, *fakeStore, *fakePublisher, *Metrics) {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	store, pub := newFakeStore(), &fakePublisher{fail: map[string]bool{}}
	return NewService(store, pub, m, slog.New(slog.NewTextHandler(io.Discard, nil))), store, pub, m
}

func roomID(i int) string { return fmt.Sprintf("room-%016d", i) }

func TestFinishAnnouncesOnlyWhatItClaims(t *testing.T) {
	past := time.Now().Add(-time.Second)
	cases := []struct {
		name     string
		inSet    []string
		finish   []string
		want     []string
		leftover []string
	}{
		{name: "claimed rooms", inSet: []string{roomID(1), roomID(2)}, finish: []string{roomID(1), roomID(2)}, want: []string{roomID(1), roomID(2)}},
		{name: "claimed elsewhere first", inSet: []string{roomID(1)}, finish: []string{roomID(1), roomID(2)}, want: []string{roomID(1)}},
		{name: "nothing to claim", finish: []string{roomID(3)}},
		{name: "only the named rooms", inSet: []string{roomID(1), roomID(2)}, finish: []string{roomID(2)}, want: []string{roomID(2)}, leftover: []string{roomID(1)}},
		{name: "malformed id is dropped, never published", inSet: []string{"bad.id.*", roomID(1)}, finish: []string{"bad.id.*", roomID(1)}, want: []string{roomID(1)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc, store, pub, _ := newTestService(t)
			for _, id := range tc.inSet {
				store.add(id, past)
			}
			n, err := svc.Finish(context.Background(), PathEvent, tc.finish...)
			if err != nil {
				t.Fatal(err)
			}
			if got := pub.announced(); n != len(tc.want) || !slices.Equal(got, tc.want) {
				t.Fatalf("announced %v (n=%d), want %v", got, n, tc.want)
			}
			if !slices.Equal(slices.Sorted(slices.Values(store.cleaned)), tc.want) {
				t.Fatalf("cleaned %v, want %v", store.cleaned, tc.want)
			}
			for _, id := range tc.leftover {
				if !store.has(id) {
					t.Fatalf("%s was claimed without being named", id)
				}
			}
		})
	}
}

func TestFinishAnnouncesWhenCleanupFails(t *testing.T) {
	svc, store, pub, m := newTestService(t)
	store.cleanupErr = errors.New("timeout")
	store.add(roomID(1), time.Now())
	if n, err := svc.Finish(context.Background(), PathSweep, roomID(1)); n != 1 || err != nil {
		t.Fatalf("Finish = %d, %v; want 1, nil", n, err)
	}
	if len(pub.announced()) != 1 {
		t.Fatal("a failed cleanup stopped the announcement")
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues("cleanup")); got != 1 {
		t.Fatalf("cleanup errors = %v", got)
	}
}

func TestFinishReleasesWhatItCouldNotAnnounce(t *testing.T) {
	svc, store, pub, m := newTestService(t)
	store.add(roomID(1), time.Now())
	store.add(roomID(2), time.Now())
	pub.fail[roomID(2)] = true
	n, err := svc.Finish(context.Background(), PathSweep, roomID(1), roomID(2))
	if n != 1 || err == nil {
		t.Fatalf("Finish = %d, %v; want 1 and an error", n, err)
	}
	if !store.has(roomID(2)) || store.has(roomID(1)) {
		t.Fatal("the unannounced room was not handed back, or the announced one was")
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues("publish")); got != 1 {
		t.Fatalf("publish errors = %v", got)
	}
	pub.fail[roomID(2)] = false
	if n, err := svc.Sweep(context.Background()); n != 1 || err != nil {
		t.Fatalf("retrying sweep = %d, %v", n, err)
	}
	if got := pub.announced(); !slices.Equal(got, []string{roomID(1), roomID(2)}) {
		t.Fatalf("announced %v", got)
	}
}

func TestFinishReportsAFailedRelease(t *testing.T) {
	svc, store, pub, m := newTestService(t)
	store.add(roomID(1), time.Now())
	store.releaseErr = errors.New("redis down")
	pub.fail[roomID(1)] = true
	if _, err := svc.Finish(context.Background(), PathSweep, roomID(1)); err == nil {
		t.Fatal("lost room not reported")
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues("release")); got != 1 {
		t.Fatalf("release errors = %v", got)
	}
}

// TestFinishIsNotCutOffByCancel: a caller shutting down must not leave a
// claimed room unannounced.
func TestFinishIsNotCutOffByCancel(t *testing.T) {
	svc, store, pub, _ := newTestService(t)
	store.add(roomID(1), time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := svc.Finish(ctx, PathEvent, roomID(1)); n != 1 || err != nil {
		t.Fatalf("Finish on a cancelled context = %d, %v", n, err)
	}
	if len(pub.announced()) != 1 {
		t.Fatal("not announced")
	}
}

func TestSweepTakesEveryDueRoomBatchByBatch(t *testing.T) {
	svc, store, pub, m := newTestService(t)
	svc.batch = 3
	now := time.Now()
	var due []string
	for i := range 10 {
		store.add(roomID(i), now.Add(-time.Duration(i)*time.Second))
		due = append(due, roomID(i))
	}
	store.add("future-room-000000000", now.Add(time.Hour))
	n, err := svc.Sweep(context.Background())
	if err != nil || n != 10 {
		t.Fatalf("Sweep = %d, %v; want 10", n, err)
	}
	if got := pub.announced(); !slices.Equal(got, due) {
		t.Fatalf("announced %v", got)
	}
	if !store.has("future-room-000000000") {
		t.Fatal("a room was taken before its deadline")
	}
	if got := testutil.ToFloat64(m.rooms.WithLabelValues("sweep")); got != 10 {
		t.Fatalf("wisp_expiry_rooms_total{path=sweep} = %v", got)
	}
	if got := testutil.CollectAndCount(m.lag); got != 1 {
		t.Fatalf("lag series = %d", got)
	}
}

// TestRunSurvivesStoreOutage: failing sweeps are counted and retried; the
// loop goes on and catches up.
func TestRunSurvivesStoreOutage(t *testing.T) {
	svc, store, pub, m := newTestService(t)
	store.dueErrs = 5
	store.add(roomID(1), time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx, 5*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	testkit.Eventually(t, 5*time.Second, func() error {
		if len(pub.announced()) != 1 {
			return errors.New("room not announced")
		}
		return nil
	})
	if got := testutil.ToFloat64(m.errors.WithLabelValues("due")); got != 5 {
		t.Fatalf("due errors = %v, want 5", got)
	}
}

func TestKickSweepsWithoutWaitingForTheTick(t *testing.T) {
	svc, store, pub, _ := newTestService(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx, time.Hour); close(done) }()
	defer func() { cancel(); <-done }()
	store.add(roomID(1), time.Now())
	testkit.Eventually(t, 5*time.Second, func() error {
		svc.Kick() // the first sweep may have run before the room was added
		if len(pub.announced()) != 1 {
			return errors.New("room not announced")
		}
		return nil
	})
}
