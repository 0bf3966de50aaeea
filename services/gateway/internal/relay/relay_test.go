package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wisp/contract"
	"wisp/services/gateway/internal/ws"
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
	a, b := NewClient("m", "tok", 4), NewClient("m", "tok", 4)
	var wg sync.WaitGroup
	for _, c := range []*Client{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = h.Join("room1", c, State{}) }()
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
	a, b, other := NewClient("m", "tok", 4), NewClient("m", "tok", 4), NewClient("m", "tok", 4)
	_ = h.Join("r", a, State{})
	_ = h.Join("r", b, State{})
	_ = h.Join("s", other, State{})
	h.Deliver("r", []byte("m1"), false)
	h.Deliver("r", []byte("bye"), true)
	for _, c := range []*Client{a, b} {
		if f := next(t, c); string(f.Data) != "m1" || f.Last {
			t.Fatalf("first frame %+v", f)
		}
		if f := next(t, c); string(f.Data) != "bye" || !f.Last {
			t.Fatalf("last frame %+v", f)
		}
	}
	if other.Queued() != 0 {
		t.Fatal("another room's client got the event")
	}
}

func TestSlowClientIsKickedOthersKeepReceiving(t *testing.T) {
	h := NewHub(newFake())
	slow, fast := NewClient("m", "tok", 2), NewClient("m", "tok", 100)
	_ = h.Join("r", slow, State{})
	_ = h.Join("r", fast, State{})
	for range 5 {
		h.Deliver("r", []byte("x"), false)
	}
	if !slow.Kicked() {
		t.Fatal("slow client not kicked")
	}
	if slow.Reason() != ReasonSlow {
		t.Fatalf("reason %q", slow.Reason())
	}
	if fast.Queued() != 5 {
		t.Fatalf("fast client got %d of 5", fast.Queued())
	}
	if h.Stats.Dropped.Load() == 0 {
		t.Fatal("drop not counted")
	}
}

func TestFailedSubscribeFailsJoin(t *testing.T) {
	sub := newFake()
	sub.fail = errors.New("nats down")
	h := NewHub(sub)
	if err := h.Join("r", NewClient("m", "tok", 1), State{}); err == nil {
		t.Fatal("join succeeded without a feed")
	}
	if h.Rooms() != 0 || h.Connections() != 0 {
		t.Fatal("failed join left state behind")
	}
	sub.fail = nil
	if err := h.Join("r", NewClient("m", "tok", 1), State{}); err != nil {
		t.Fatalf("join after recovery: %v", err)
	}
}

func TestKickAllClosesEveryClientGoingAway(t *testing.T) {
	h := NewHub(newFake())
	var clients []*Client
	for i := range 3 {
		c := NewClient("m", "tok", 1)
		_ = h.Join(fmt.Sprint("r", i%2), c, State{})
		clients = append(clients, c)
	}
	h.KickAll(ReasonGoingAway)
	for i, c := range clients {
		if !c.Kicked() {
			t.Fatalf("client %d not kicked", i)
		}
		if code, _ := c.CloseStatus(); code != ws.StatusGoingAway {
			t.Fatalf("client %d closes with %d, want 1001", i, code)
		}
	}
}

func TestDeliverExceptSkipsTheSendersSockets(t *testing.T) {
	h := NewHub(newFake())
	aliceTab1, aliceTab2, bob := NewClient("alice", "tok", 4), NewClient("alice", "tok", 4), NewClient("bob", "tok", 4)
	for _, c := range []*Client{aliceTab1, aliceTab2, bob} {
		_ = h.Join("r", c, State{})
	}
	h.DeliverExcept("r", []byte("typing"), "alice")
	if aliceTab1.Queued()+aliceTab2.Queued() != 0 {
		t.Fatal("alice got her own signal")
	}
	if f := next(t, bob); string(f.Data) != "typing" || f.Last {
		t.Fatalf("bob got %+v", f)
	}
}

// TestRoomEndsAtItsDeadline: with no chat.destroy at all, the room's
// clients get an expired chat.destroy as their last frame once the
// deadline (plus the grace) has passed; a room left before then does not.
func TestRoomEndsAtItsDeadline(t *testing.T) {
	h := NewHub(newFake())
	a := NewClient("alice", "tok", 4)
	_ = h.Join("r", a, State{Deadline: time.Now().Add(200 * time.Millisecond)})
	left := NewClient("bob", "tok", 4)
	_ = h.Join("s", left, State{Deadline: time.Now().Add(100 * time.Millisecond)})
	h.Leave("s", left)
	deadline := time.Now().Add(DeadlineGrace + 2*time.Second)
	for a.Queued() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	f, ok := a.Next()
	if !ok {
		t.Fatal("no chat.destroy at the deadline")
	}
	if !f.Last || !strings.Contains(string(f.Data), `"reason":"expired"`) {
		t.Fatalf("frame %s last=%v", f.Data, f.Last)
	}
	if left.Queued() != 0 {
		t.Fatal("a client that left was sent the room's end")
	}
}

func TestSendToOneClientKicksItWhenFull(t *testing.T) {
	c := NewClient("m", "tok", 1)
	if !c.Send([]byte("ack")) {
		t.Fatal("first send refused")
	}
	if c.Send([]byte("ack2")) {
		t.Fatal("send beyond the queue accepted")
	}
	if code, reason := c.CloseStatus(); code != ws.StatusTryLater || reason != ReasonSlow {
		t.Fatalf("close %d %q", code, reason)
	}
}

func TestRoomSocketCap(t *testing.T) {
	h := NewHub(newFake())
	for range MaxClientsPerRoom {
		if err := h.Join("r", NewClient("m", "tok", 1), State{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Join("r", NewClient("m", "tok", 1), State{}); !errors.Is(err, ErrCrowded) {
		t.Fatalf("join beyond the cap: %v", err)
	}
	if h.Connections() != MaxClientsPerRoom {
		t.Fatalf("connections %d", h.Connections())
	}
}

// fakeHistory is a room's stored messages, or a room that is gone.
type fakeHistory struct {
	msgs  []contract.Message
	gone  bool
	page  int
	calls []int64
}

func (f *fakeHistory) List(_ context.Context, _, _ string, after int64) (contract.ListReply, error) {
	f.calls = append(f.calls, after)
	if f.gone {
		return contract.ListReply{}, &contract.Error{Code: contract.CodeUnauthorized}
	}
	var out contract.ListReply
	for _, m := range f.msgs {
		if m.Seq > after {
			if len(out.Messages) == f.page {
				out.More = true
				break
			}
			out.Messages = append(out.Messages, m)
		}
	}
	return out, nil
}

type roomsHistory map[string]*fakeHistory

func (r roomsHistory) List(ctx context.Context, roomID, token string, after int64) (contract.ListReply, error) {
	return r[roomID].List(ctx, roomID, token, after)
}

func seqs(c *Client) []int64 {
	var out []int64
	for f, ok := c.Next(); ok; f, ok = c.Next() {
		if s, ok := contract.SeqOf(f.Data); ok {
			out = append(out, s)
		}
	}
	return out
}

// TestResyncDeliversWhatTheOutageLost: the messages stored after the last
// one relayed before an outage reach the room's clients, page by page; a
// room that is gone ends with chat.destroy.
func TestResyncDeliversWhatTheOutageLost(t *testing.T) {
	h := NewHub(newFake())
	a := NewClient("alice", "tok-a", 64)
	_ = h.Join("r", a, State{LastSeq: 2})
	h.Deliver("r", contract.MessageEvent(contract.Message{ID: "m3", Seq: 3}), false)
	h.Outage()
	// 4 and 5 were published while NATS was away; 6 arrived live after it came back.
	h.Deliver("r", contract.MessageEvent(contract.Message{ID: "m6", Seq: 6}), false)
	hist := &fakeHistory{page: 2}
	for seq := int64(1); seq <= 6; seq++ {
		hist.msgs = append(hist.msgs, contract.Message{ID: fmt.Sprint("m", seq), Seq: seq})
	}
	gone := NewClient("bob", "tok-b", 8)
	_ = h.Join("s", gone, State{})
	n, ended, _ := h.Resync(context.Background(), roomsHistory{"r": hist, "s": &fakeHistory{gone: true}})
	if got := seqs(a); fmt.Sprint(got) != "[3 6 4 5 6]" || n != 3 {
		t.Fatalf("alice got seqs %v (%d caught up), want 3 6 then 4 5 6", got, n)
	}
	if hist.calls[0] != 3 {
		t.Fatalf("catch-up started after %d, want 3 (the newest before the outage)", hist.calls[0])
	}
	if f := next(t, gone); ended != 1 || !f.Last || !strings.Contains(string(f.Data), contract.EventDestroy) {
		t.Fatalf("gone room: %s last=%v ended=%d", f.Data, f.Last, ended)
	}
	h.Leave("s", gone) // its socket closes after chat.destroy
	// Without a new outage, the next resync starts from the newest relayed.
	hist.calls = nil
	h.Resync(context.Background(), roomsHistory{"r": hist})
	if hist.calls[0] != 6 || len(seqs(a)) != 0 {
		t.Fatalf("second resync asked after %v", hist.calls)
	}
}

// overtaken is a room alice joined at seq 2 whose message 4 was relayed
// while 3 is still on its way; the history holds 1 to 4.
func overtaken() (*Hub, *Client, *fakeHistory) {
	h := NewHub(newFake())
	a := NewClient("alice", "tok-a", 64)
	_ = h.Join("r", a, State{LastSeq: 2})
	h.Deliver("r", contract.MessageEvent(contract.Message{ID: "m4", Seq: 4}), false)
	hist := &fakeHistory{page: 10}
	for seq := int64(1); seq <= 4; seq++ {
		hist.msgs = append(hist.msgs, contract.Message{ID: fmt.Sprint("m", seq), Seq: seq})
	}
	return h, a, hist
}

// TestCatchUpFetchesAMessageOvertakenBeforeTheOutage: two publishers'
// events may overtake each other; when NATS drops with message 3 on its way
// and 4 already relayed, the catch-up starts after 2, so 3 is not lost.
func TestCatchUpFetchesAMessageOvertakenBeforeTheOutage(t *testing.T) {
	h, a, hist := overtaken()
	h.Outage()
	h.Resync(context.Background(), roomsHistory{"r": hist})
	if hist.calls[0] != 2 {
		t.Fatalf("catch-up started after %d, want 2 (the last of an unbroken run)", hist.calls[0])
	}
	if got := seqs(a); fmt.Sprint(got) != "[4 3 4]" {
		t.Fatalf("alice got seqs %v, want 4 then 3 4", got)
	}
}

// TestResyncWithoutOutageSendsNothingAgain: a resync with events never
// interrupted starts after the newest message relayed: one overtaken and
// still on its way arrives through the feed, and nothing comes twice.
func TestResyncWithoutOutageSendsNothingAgain(t *testing.T) {
	h, a, hist := overtaken()
	h.Resync(context.Background(), roomsHistory{"r": hist})
	if hist.calls[0] != 4 {
		t.Fatalf("resync started after %d, want 4 (the newest relayed)", hist.calls[0])
	}
	if got := seqs(a); fmt.Sprint(got) != "[4]" {
		t.Fatalf("alice got seqs %v, want only 4", got)
	}
}

// TestLiveEventsOfCaughtUpMessagesAreNotSentAgain: a resync can read a
// message from Redis before its event reaches the gateway; when the event
// comes, the clients the catch-up sent it to do not get it twice, while a
// socket that joined in between still gets every later event.
func TestLiveEventsOfCaughtUpMessagesAreNotSentAgain(t *testing.T) {
	h := NewHub(newFake())
	a := NewClient("alice", "tok-a", 64)
	_ = h.Join("r", a, State{LastSeq: 2})
	hist := &fakeHistory{page: 10}
	for seq := int64(1); seq <= 4; seq++ {
		hist.msgs = append(hist.msgs, contract.Message{ID: fmt.Sprint("m", seq), Seq: seq})
	}
	h.Resync(context.Background(), roomsHistory{"r": hist})
	b := NewClient("bob", "tok-b", 64)
	_ = h.Join("r", b, State{LastSeq: 4})
	for seq := int64(3); seq <= 5; seq++ {
		h.Deliver("r", contract.MessageEvent(contract.Message{ID: fmt.Sprint("m", seq), Seq: seq}), false)
	}
	if got := seqs(a); fmt.Sprint(got) != "[3 4 5]" {
		t.Fatalf("alice got seqs %v, want 3 4 from the catch-up, then only 5", got)
	}
	if got := seqs(b); fmt.Sprint(got) != "[3 4 5]" {
		t.Fatalf("bob, who joined after the catch-up, got seqs %v, want every later event", got)
	}
	if a.resent != nil {
		t.Fatalf("alice still holds notes %v once their events came", a.resent)
	}
	// A note whose event never comes is let go once maxAhead later ones did.
	h.Resync(context.Background(), roomsHistory{"r": &fakeHistory{page: 10, msgs: []contract.Message{{ID: "m6", Seq: 6}}}})
	h.Deliver("r", contract.MessageEvent(contract.Message{ID: "late", Seq: 7 + maxAhead}), false)
	if a.resent != nil {
		t.Fatalf("alice keeps %v, whose event was lost", a.resent)
	}
}

// lockedHistory is a fakeHistory that gap fills may read from their own
// goroutine.
type lockedHistory struct {
	mu sync.Mutex
	h  *fakeHistory
}

func (l *lockedHistory) List(ctx context.Context, roomID, token string, after int64) (contract.ListReply, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.h.List(ctx, roomID, token, after)
}

func (l *lockedHistory) calls() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.h.calls)
}

// gapped is a room alice joined at seq 2 on a hub that fills gaps after
// wait, with the history holding stored; 3 and 5 came live.
func gapped(wait time.Duration, stored ...int64) (*Hub, *Client, *lockedHistory) {
	hist := &lockedHistory{h: &fakeHistory{page: 10}}
	for _, seq := range stored {
		hist.h.msgs = append(hist.h.msgs, contract.Message{ID: fmt.Sprint("m", seq), Seq: seq})
	}
	h := NewHub(newFake())
	h.FillGaps(hist, wait)
	a := NewClient("alice", "tok-a", 64)
	_ = h.Join("r", a, State{LastSeq: 2})
	for _, seq := range []int64{3, 5} {
		h.Deliver("r", contract.MessageEvent(contract.Message{ID: fmt.Sprint("m", seq), Seq: seq}), false)
	}
	return h, a, hist
}

// waitSeqs collects the client's message seqs until it has want of them
// or two seconds passed.
func waitSeqs(c *Client, want int) []int64 {
	var got []int64
	for deadline := time.Now().Add(2 * time.Second); len(got) < want && time.Now().Before(deadline); {
		got = append(got, seqs(c)...)
		time.Sleep(5 * time.Millisecond)
	}
	return got
}

// TestALostEventIsReadBack: message 4's event was lost (a NATS node died
// before passing it on); once 5 came and 4 did not within the wait, the
// gateway reads 4 from the room's history, and only 4. At the real wait,
// outlived twice once the gap is closed.
func TestALostEventIsReadBack(t *testing.T) {
	h, a, hist := gapped(DefaultGapWait, 1, 2, 3, 4, 5)
	if got := waitSeqs(a, 3); fmt.Sprint(got) != "[3 5 4]" {
		t.Fatalf("alice got seqs %v, want 3 5 live, then 4 read back", got)
	}
	if calls := hist.calls(); fmt.Sprint(calls) != "[3]" {
		t.Fatalf("history read after %v, want once after 3", calls)
	}
	if h.Stats.GapsFilled.Load() != 1 {
		t.Fatalf("gaps filled %d", h.Stats.GapsFilled.Load())
	}
	// The gap is closed: the next message reads nothing back.
	h.Deliver("r", contract.MessageEvent(contract.Message{ID: "m6", Seq: 6}), false)
	time.Sleep(2 * DefaultGapWait)
	if got, calls := seqs(a), hist.calls(); fmt.Sprint(got) != "[6]" || len(calls) != 1 {
		t.Fatalf("after 6: alice got %v, history read %v", got, calls)
	}
}

// TestAnOvertakenEventIsNotReadBack: events of two messages replicas may
// overtake each other; 4 coming within the wait is relayed live, and the
// history is not read.
func TestAnOvertakenEventIsNotReadBack(t *testing.T) {
	h, a, hist := gapped(100*time.Millisecond, 1, 2, 3, 4, 5)
	h.Deliver("r", contract.MessageEvent(contract.Message{ID: "m4", Seq: 4}), false)
	time.Sleep(200 * time.Millisecond)
	if got, calls := seqs(a), hist.calls(); fmt.Sprint(got) != "[3 5 4]" || len(calls) != 0 {
		t.Fatalf("alice got %v, history read %v; want 3 5 4 live and no read", got, calls)
	}
}

// TestAMessageNoLongerStoredIsGivenUp: a missing message the room does not
// hold (trimmed) is read for once; later messages do not read again.
func TestAMessageNoLongerStoredIsGivenUp(t *testing.T) {
	h, a, hist := gapped(20*time.Millisecond, 3, 5)
	testWait(t, func() bool { return len(hist.calls()) == 1 && !h.rooms["r"].filling.Load() })
	for _, seq := range []int64{6, 7} {
		h.Deliver("r", contract.MessageEvent(contract.Message{ID: fmt.Sprint("m", seq), Seq: seq}), false)
	}
	time.Sleep(60 * time.Millisecond)
	if got, calls := seqs(a), hist.calls(); fmt.Sprint(got) != "[3 5 6 7]" || len(calls) != 1 {
		t.Fatalf("alice got %v, history read %v; want 3 5 6 7 and one read", got, calls)
	}
}

// testWait polls ok for up to a second.
func testWait(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 1s")
		}
	}
}

func TestRelayedMarksAnUnbrokenRun(t *testing.T) {
	var s relayed
	s.skipTo(5)
	for _, seq := range []int64{3, 7, 9, 6} {
		s.add(seq)
	}
	if got := s.through(); got != 7 || s.newest() != 9 {
		t.Fatalf("through = %d after 1-5, 3, 7, 9, 6; want 7 (8 missing)", got)
	}
	s.add(8)
	if got := s.through(); got != 9 {
		t.Fatalf("through = %d once 8 came, want 9", got)
	}
	// A seq that never comes holds the mark only while maxAhead later ones wait.
	for seq := int64(11); seq <= 11+maxAhead; seq++ {
		s.add(seq)
	}
	if got := s.through(); got != 11+maxAhead {
		t.Fatalf("through = %d with 10 missing and %d later ones; want %d", got, maxAhead+1, 11+maxAhead)
	}
}

// next takes a client's oldest queued frame, failing when there is none.
func next(t *testing.T, c *Client) *ws.Frame {
	t.Helper()
	f, ok := c.Next()
	if !ok {
		t.Fatal("no frame queued")
	}
	return f
}

// TestQueueGrowsOnlyWhileFramesWait: an idle client holds no queue; frames
// come out in order across the queue's reuse; the bound kicks.
func TestQueueGrowsOnlyWhileFramesWait(t *testing.T) {
	c := NewClient("m", "tok", 64)
	for round := range 3 {
		for i := range 40 {
			if !c.offer(&ws.Frame{Data: []byte{byte(round), byte(i)}}, 0) {
				t.Fatal("refused within the bound")
			}
			if i%3 == 2 { // take some while others come
				next(t, c)
			}
		}
		got := 0
		for f, ok := c.Next(); ok; f, ok = c.Next() {
			got++
			_ = f
		}
		if got != 40-13 || c.queue != nil {
			t.Fatalf("round %d: %d left to take, queue kept %d", round, got, cap(c.queue))
		}
	}
	for range 64 {
		c.offer(&ws.Frame{}, 0)
	}
	if c.offer(&ws.Frame{}, 0) {
		t.Fatal("a frame beyond the bound was queued")
	}
}

// wakes counts a client's writer wake-ups.
func wakes(c *Client) *atomic.Int32 {
	n := new(atomic.Int32)
	c.OnWake(func() { n.Add(1) })
	return n
}

// TestASendsEventAndAnswerGoOutTogether: while the client's own send
// awaits its answer, the room's events queue unwritten, and an answer
// waits for its message's event; whichever of the two comes last wakes the
// writer, once, for both. Other clients are never held.
func TestASendsEventAndAnswerGoOutTogether(t *testing.T) {
	event := func(seq int64) []byte {
		return contract.MessageEvent(contract.Message{ID: fmt.Sprint("m", seq), Seq: seq})
	}
	for _, order := range []string{"event first", "answer first"} {
		t.Run(order, func(t *testing.T) {
			h := NewHub(newFake())
			sender, other := NewClient("a", "tok", 8), NewClient("b", "tok", 8)
			sw, ow := wakes(sender), wakes(other)
			_ = h.Join("r", sender, State{})
			_ = h.Join("r", other, State{})
			sender.Hold()
			first, second := func() { h.Deliver("r", event(1), false) }, func() { sender.Answer([]byte("ack"), 1) }
			if order == "answer first" {
				first, second = second, first
			}
			first()
			if sw.Load() != 0 {
				t.Fatalf("the sender's writer was woken %d times before both had come", sw.Load())
			}
			second()
			if sw.Load() != 1 || ow.Load() != 1 {
				t.Fatalf("woken: sender %d times, other %d; want 1 each", sw.Load(), ow.Load())
			}
			if sender.Queued() != 2 {
				t.Fatalf("%d frames queued for the sender, want the event and the ack", sender.Queued())
			}
			// Nothing held any more: the next event is written at once.
			h.Deliver("r", event(2), false)
			if sw.Load() != 2 {
				t.Fatalf("after the answer an event woke the sender %d times in all, want 2", sw.Load())
			}
		})
	}
}

// TestNothingIsHeldLong: frames behind a send whose answer is late (time
// after time), and an answer whose event never comes, go out after
// maxHold; a kick, an error answer and other clients' frames are never
// held.
func TestNothingIsHeldLong(t *testing.T) {
	waitWake := func(t *testing.T, woke chan struct{}, start time.Time) {
		t.Helper()
		select {
		case <-woke:
			if held := time.Since(start); held < maxHold {
				t.Fatalf("woken after %v, before maxHold %v", held, maxHold)
			}
		case <-time.After(time.Second):
			t.Fatal("a held frame was never let out")
		}
	}
	newClient := func() (*Client, chan struct{}) {
		c := NewClient("a", "tok", 8)
		woke := make(chan struct{}, 8)
		c.OnWake(func() { woke <- struct{}{} })
		return c, woke
	}
	t.Run("late answer", func(t *testing.T) {
		c, woke := newClient()
		c.Hold()
		start := time.Now()
		c.offer(&ws.Frame{Data: []byte("m1")}, 0)
		waitWake(t, woke, start)
		// Still unanswered: the next frame waits again, behind the same
		// timer set once more, and is let out again.
		start = time.Now()
		c.offer(&ws.Frame{Data: []byte("m2")}, 0)
		waitWake(t, woke, start)
		c.Kick(ReasonSlow)
		select {
		case <-woke:
		default:
			t.Fatal("a kick waited behind an unanswered send")
		}
	})
	t.Run("event that never comes", func(t *testing.T) {
		c, woke := newClient()
		c.Hold()
		start := time.Now()
		c.Answer([]byte("ack"), 9)
		waitWake(t, woke, start)
	})
	t.Run("error answer", func(t *testing.T) {
		c, woke := newClient()
		c.Hold()
		c.Answer([]byte("error"), 0)
		select {
		case <-woke:
		default:
			t.Fatal("an error answer waited")
		}
	})
}
