package relay

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

type fakeSub struct {
	mu     sync.Mutex
	subs   map[string]int
	unsubs map[string]int
	fail   error
}

func (f *fakeSub) Subscribe(roomID string) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	f.subs[roomID]++
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.unsubs[roomID]++
	}, nil
}

func newFake() *fakeSub { return &fakeSub{subs: map[string]int{}, unsubs: map[string]int{}} }

func TestOneFeedPerRoomWhileClientsRemain(t *testing.T) {
	sub := newFake()
	h := NewHub(sub)
	a, b := NewClient(4), NewClient(4)
	var wg sync.WaitGroup
	for _, c := range []*Client{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = h.Join("room1", c) }()
	}
	wg.Wait()
	if sub.subs["room1"] != 1 || h.Rooms() != 1 || h.Connections() != 2 {
		t.Fatalf("subs=%d rooms=%d conns=%d", sub.subs["room1"], h.Rooms(), h.Connections())
	}
	h.Leave("room1", a)
	if sub.unsubs["room1"] != 0 {
		t.Fatal("unsubscribed while a client remained")
	}
	h.Leave("room1", b)
	h.Leave("room1", b) // twice is harmless
	if sub.unsubs["room1"] != 1 || h.Rooms() != 0 || h.Connections() != 0 {
		t.Fatalf("after last leave: unsubs=%d rooms=%d conns=%d", sub.unsubs["room1"], h.Rooms(), h.Connections())
	}
}

func TestDeliverReachesOnlyTheRoomsClients(t *testing.T) {
	h := NewHub(newFake())
	a, b, other := NewClient(4), NewClient(4), NewClient(4)
	_ = h.Join("r", a)
	_ = h.Join("r", b)
	_ = h.Join("s", other)
	h.Deliver("r", []byte("m1"), false)
	h.Deliver("r", []byte("bye"), true)
	for _, c := range []*Client{a, b} {
		if f := <-c.Frames(); string(f.Data) != "m1" || f.Last {
			t.Fatalf("first frame %+v", f)
		}
		if f := <-c.Frames(); string(f.Data) != "bye" || !f.Last {
			t.Fatalf("last frame %+v", f)
		}
	}
	if len(other.Frames()) != 0 {
		t.Fatal("another room's client got the event")
	}
}

func TestSlowClientIsKickedOthersKeepReceiving(t *testing.T) {
	h := NewHub(newFake())
	slow, fast := NewClient(2), NewClient(100)
	_ = h.Join("r", slow)
	_ = h.Join("r", fast)
	for range 5 {
		h.Deliver("r", []byte("x"), false)
	}
	select {
	case <-slow.Done():
		if slow.Reason() != ReasonSlow {
			t.Fatalf("reason %q", slow.Reason())
		}
	default:
		t.Fatal("slow client not kicked")
	}
	if len(fast.Frames()) != 5 {
		t.Fatalf("fast client got %d of 5", len(fast.Frames()))
	}
	if h.Stats.Dropped.Load() == 0 {
		t.Fatal("drop not counted")
	}
}

func TestFailedSubscribeFailsJoin(t *testing.T) {
	sub := newFake()
	sub.fail = errors.New("nats down")
	h := NewHub(sub)
	if err := h.Join("r", NewClient(1)); err == nil {
		t.Fatal("join succeeded without a feed")
	}
	if h.Rooms() != 0 || h.Connections() != 0 {
		t.Fatal("failed join left state behind")
	}
	sub.fail = nil
	if err := h.Join("r", NewClient(1)); err != nil {
		t.Fatalf("join after recovery: %v", err)
	}
}

func TestKickAll(t *testing.T) {
	h := NewHub(newFake())
	var n atomic.Int32
	for range 3 {
		c := NewClient(1)
		_ = h.Join("r", c)
		go func() { <-c.Done(); n.Add(1) }()
		defer func() { <-c.Done() }()
	}
	h.KickAll(ReasonGoingAway)
}

func TestRoomSocketCap(t *testing.T) {
	h := NewHub(newFake())
	for range MaxClientsPerRoom {
		if err := h.Join("r", NewClient(1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Join("r", NewClient(1)); !errors.Is(err, ErrCrowded) {
		t.Fatalf("join beyond the cap: %v", err)
	}
	if h.Connections() != MaxClientsPerRoom {
		t.Fatalf("connections %d", h.Connections())
	}
}
