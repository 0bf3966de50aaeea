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

	"wisp/contract"
	"wisp/testkit"
)

// fakeStore is an in-memory deadline set and ending set with failure
// injection; leases run on the test's clock (now).
type fakeStore struct {
	mu         sync.Mutex
	now        func() time.Time
	deadlines  map[string]time.Time
	ending     map[Ending]time.Time // lease end
	epoch      bool
	cleaned    []string
	dueErrs    int // DueRooms fails this many more times
	cleanupErr error
	doneErr    error
}

func newFakeStore() *fakeStore {
	return &fakeStore{now: time.Now, deadlines: map[string]time.Time{}, ending: map[Ending]time.Time{}, epoch: true}
}

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

func (f *fakeStore) pending() []Ending {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Ending
	for e := range f.ending {
		out = append(out, e)
	}
	return out
}

func (f *fakeStore) DueRooms(ctx context.Context, limit int) ([]string, time.Duration, error) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dueErrs > 0 {
		f.dueErrs--
		return nil, NoneAhead, errors.New("connection refused")
	}
	var ids []string
	next := NoneAhead
	for id, d := range f.deadlines {
		if !d.After(now) {
			ids = append(ids, id)
		} else if wait := d.Sub(now); next == NoneAhead || wait < next {
			next = wait
		}
	}
	sort.Slice(ids, func(i, j int) bool { return f.deadlines[ids[i]].Before(f.deadlines[ids[j]]) })
	return ids[:min(limit, len(ids))], next, nil
}

func (f *fakeStore) Claim(ctx context.Context, ids []string, lease time.Duration) ([]Claimed, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Claimed
	for _, id := range ids {
		if d, ok := f.deadlines[id]; ok {
			delete(f.deadlines, id)
			f.ending[Ending{Reason: contract.ReasonExpired, ID: id}] = f.now().Add(lease)
			out = append(out, Claimed{ID: id, Deadline: d})
		}
	}
	return out, nil
}

func (f *fakeStore) Overdue(ctx context.Context, lease time.Duration, limit int) ([]Ending, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Ending
	for e, until := range f.ending {
		if len(out) < limit && !until.After(f.now()) {
			f.ending[e] = f.now().Add(lease)
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeStore) Done(ctx context.Context, ends []Ending) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.doneErr != nil {
		return f.doneErr
	}
	for _, e := range ends {
		delete(f.ending, e)
	}
	return nil
}

func (f *fakeStore) CheckEpoch(ctx context.Context, lease time.Duration) (Ending, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.epoch {
		return Ending{}, false, nil
	}
	f.epoch = true
	e := Ending{Reason: contract.EndingResync, ID: "epoch"}
	f.ending[e] = f.now().Add(lease)
	return e, true, nil
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

type fakePublisher struct {
	mu       sync.Mutex
	sent     []string
	reasons  map[string][]string
	resyncs  int
	fail     map[string]bool
	flushErr error
}

func (p *fakePublisher) Ended(ctx context.Context, id, reason string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail[id] {
		return errors.New("nats: connection closed")
	}
	p.sent = append(p.sent, id)
	p.reasons[id] = append(p.reasons[id], reason)
	return nil
}

func (p *fakePublisher) Resync(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resyncs++
	return nil
}

func (p *fakePublisher) Flush(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flushErr
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
	store, pub := newFakeStore(), &fakePublisher{fail: map[string]bool{}, reasons: map[string][]string{}}
	return NewService(store, pub, m, slog.New(slog.NewTextHandler(io.Discard, nil)), DefaultLease), store, pub, m
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
			n, err := svc.Finish(context.Background(), PathSweep, tc.finish...)
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

// clock is a settable now for a Service and its fake store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func withClock(svc *Service, store *fakeStore) *clock {
	c := &clock{t: time.Now()}
	svc.now, store.now = c.now, c.now
	return c
}

// TestFinishLeavesWhatItCouldNotAnnounce: a failed publish leaves the end
// in the ending set (not back in the deadline set); no sweep takes it
// within its lease, the first one after does.
func TestFinishLeavesWhatItCouldNotAnnounce(t *testing.T) {
	svc, store, pub, m := newTestService(t)
	c := withClock(svc, store)
	store.add(roomID(1), c.now())
	store.add(roomID(2), c.now())
	pub.fail[roomID(2)] = true
	n, err := svc.Finish(context.Background(), PathSweep, roomID(1), roomID(2))
	if n != 1 || err == nil {
		t.Fatalf("Finish = %d, %v; want 1 and an error", n, err)
	}
	if store.has(roomID(2)) || !slices.Equal(store.pending(), []Ending{{contract.ReasonExpired, roomID(2)}}) {
		t.Fatalf("pending ends %v; want only room 2's, out of the deadline set", store.pending())
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues("publish")); got != 1 {
		t.Fatalf("publish errors = %v", got)
	}
	pub.fail[roomID(2)] = false
	if n, err := svc.Sweep(context.Background()); n != 0 || err != nil {
		t.Fatalf("sweep within the lease = %d, %v; want nothing", n, err)
	}
	c.advance(DefaultLease)
	if n, err := svc.Sweep(context.Background()); n != 1 || err != nil {
		t.Fatalf("sweep after the lease = %d, %v", n, err)
	}
	if got := pub.announced(); !slices.Equal(got, []string{roomID(1), roomID(2)}) {
		t.Fatalf("announced %v", got)
	}
	if len(store.pending()) != 0 {
		t.Fatalf("ends left: %v", store.pending())
	}
	if got := testutil.ToFloat64(m.takenOver.WithLabelValues(contract.ReasonExpired)); got != 1 {
		t.Fatalf("taken over = %v", got)
	}
}

// TestFinishKeepsEndsNATSDidNotConfirm: published into a buffer but not
// flushed is not announced; the ends stay for a later sweep.
func TestFinishKeepsEndsNATSDidNotConfirm(t *testing.T) {
	svc, store, pub, _ := newTestService(t)
	store.add(roomID(1), time.Now())
	pub.flushErr = errors.New("nats: connection reconnecting")
	if n, err := svc.Finish(context.Background(), PathSweep, roomID(1)); n != 0 || err == nil {
		t.Fatalf("Finish = %d, %v; want 0 and an error", n, err)
	}
	if len(store.pending()) != 1 {
		t.Fatalf("pending %v, want room 1's end", store.pending())
	}
}

// TestSweepTakesOverEndsOfEveryReason: ends a dead claimer left (an expiry
// replica's or the rooms service's destroy) are announced with their own
// reason after the lease, their keys deleted.
func TestSweepTakesOverEndsOfEveryReason(t *testing.T) {
	svc, store, pub, _ := newTestService(t)
	c := withClock(svc, store)
	store.ending[Ending{contract.ReasonDestroyed, roomID(1)}] = c.now().Add(time.Second)
	store.ending[Ending{contract.ReasonExpired, roomID(2)}] = c.now().Add(-time.Millisecond)
	if n, err := svc.Sweep(context.Background()); n != 1 || err != nil {
		t.Fatalf("Sweep = %d, %v; want room 2 only", n, err)
	}
	c.advance(time.Second)
	if n, err := svc.Sweep(context.Background()); n != 1 || err != nil {
		t.Fatalf("Sweep = %d, %v; want room 1", n, err)
	}
	if !slices.Equal(pub.reasons[roomID(1)], []string{contract.ReasonDestroyed}) || !slices.Equal(pub.reasons[roomID(2)], []string{contract.ReasonExpired}) {
		t.Fatalf("reasons %v", pub.reasons)
	}
	if got := slices.Sorted(slices.Values(store.cleaned)); !slices.Equal(got, []string{roomID(1), roomID(2)}) {
		t.Fatalf("cleaned %v", got)
	}
}

// TestSweepAnnouncesDataLossOnce: a store without its epoch gets one
// resync, and none once the epoch is back.
func TestSweepAnnouncesDataLossOnce(t *testing.T) {
	svc, store, pub, m := newTestService(t)
	store.epoch = false
	for range 3 {
		if _, err := svc.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if pub.resyncs != 1 || len(store.pending()) != 0 {
		t.Fatalf("resyncs %d, pending %v; want one resync, done", pub.resyncs, store.pending())
	}
	if got := testutil.ToFloat64(m.resyncs); got != 1 {
		t.Fatalf("wisp_expiry_resyncs_total = %v", got)
	}
}

// TestFinishIsNotCutOffByCancel: a caller shutting down must not leave a
// claimed room unannounced.
func TestFinishIsNotCutOffByCancel(t *testing.T) {
	svc, store, pub, _ := newTestService(t)
	store.add(roomID(1), time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := svc.Finish(ctx, PathSweep, roomID(1)); n != 1 || err != nil {
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

// TestRunWakesAtTheNextDeadline: between sweeps an hour apart, a room is
// still ended when its deadline falls, not at the next sweep.
func TestRunWakesAtTheNextDeadline(t *testing.T) {
	svc, store, pub, _ := newTestService(t)
	deadline := time.Now().Add(300 * time.Millisecond)
	store.add(roomID(1), deadline)
	store.add(roomID(2), deadline.Add(200*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx, time.Hour); close(done) }()
	defer func() { cancel(); <-done }()
	testkit.Eventually(t, 5*time.Second, func() error {
		if n := len(pub.announced()); n != 2 {
			return fmt.Errorf("%d of 2 rooms announced", n)
		}
		return nil
	})
	if late := time.Since(deadline.Add(200 * time.Millisecond)); late > time.Second {
		t.Fatalf("the second room was announced %v after its deadline", late)
	}
}
