package load

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFrameFieldsAreReadWithoutDecoding(t *testing.T) {
	msg := []byte(`{"event":"chat.message","data":{"id":"x","seq":3,"sender":"bench","text":"L42.xxxx","timestamp":1,"roomId":"r"}}`)
	if text, ok := textOf(msg); !ok || string(text) != "L42.xxxx" {
		t.Fatalf("textOf = %q %v", text, ok)
	}
	if ev := eventOf(msg); string(ev) != "chat.message" {
		t.Fatalf("eventOf = %q", ev)
	}
	if seq := intField(msg, seqKey); seq != 3 {
		t.Fatalf("seq = %d", seq)
	}
	if _, ok := textOf([]byte(`{"event":"chat.destroy","data":{"isDestroyed":true,"reason":"expired"}}`)); ok {
		t.Fatal("a destroy frame has no text")
	}
	errFrame := []byte(`{"event":"error","data":{"clientId":"b17","status": 409,"error":"room is full"}}`)
	if cid, _ := stringField(errFrame, clientIDKey); numberIn(cid, 'b') != 17 {
		t.Fatalf("clientId = %q", cid)
	}
	if st := intField(errFrame, statusKey); st != 409 {
		t.Fatalf("status = %d", st)
	}
	if intField(errFrame, seqKey) != -1 || numberIn([]byte("x12"), 'b') != -1 || numberIn([]byte("b"), 'b') != -1 {
		t.Fatal("missing fields must read as absent")
	}
}

func TestClientFramesAreValidJSONOfTheSize(t *testing.T) {
	var f struct{ Type, ClientID, Sender, Text string }
	b := sendFrame(nil, 123, 64)
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if f.Type != "send" || f.ClientID != "b123" || f.Sender != "bench" || len(f.Text) != 64 || !strings.HasPrefix(f.Text, "L123.x") {
		t.Fatalf("%+v", f)
	}
	f = struct{ Type, ClientID, Sender, Text string }{}
	if err := json.Unmarshal(postBody(nil, 7, 10), &f); err != nil || f.Type != "" || f.ClientID != "b7" || f.Text != "L7.xxxxxxx" {
		t.Fatalf("%+v %v", f, err)
	}
	if got := string(appendText(nil, 123456, 4)); got != "L123456." {
		t.Fatalf("a number longer than the size is kept whole: %q", got)
	}
}

func testRun(rooms, slots int) (*run, []*Room) {
	r := &run{cfg: Config{Rooms: rooms}, base: time.Now(), slots: make([]slot, slots), members: rooms * 2}
	for i := range rooms {
		rm := &Room{Index: i}
		for k := range rm.Members {
			rm.Members[k] = &Member{Room: rm, Index: k}
		}
		r.rooms = append(r.rooms, rm)
	}
	r.played = slots
	return r, r.rooms
}

func chatMessage(i, seq int) []byte {
	return []byte(`{"event":"chat.message","data":{"id":"m","seq":` + itoa(seq) + `,"sender":"bench","text":"L` + itoa(i) + `.x"}}`)
}

func itoa(i int) string { return string(appendClientID(nil, i)[1:]) }

func TestMembersTakeTurnsHalfAPeriodApart(t *testing.T) {
	r, rooms := testRun(3, 12)
	want := []*Member{rooms[0].Members[0], rooms[1].Members[0], rooms[2].Members[0],
		rooms[0].Members[1], rooms[1].Members[1], rooms[2].Members[1]}
	for i := range 12 {
		if got := r.memberOf(i); got != want[i%6] {
			t.Fatalf("message %d: room %d member %d", i, got.Room.Index, got.Index)
		}
	}
}

// TestOnFrameCountsOtherMemberEchoesDuplicatesAndStrays: only the other
// member's copy of a message is a delivery.
func TestOnFrameCountsOtherMemberEchoesDuplicatesAndStrays(t *testing.T) {
	r, rooms := testRun(2, 8)
	// Message 2 is member 1 of room 0's.
	r.onFrame(rooms[0].Members[1], chatMessage(2, 5)) // its own echo
	r.onFrame(rooms[0].Members[0], chatMessage(2, 5)) // delivered
	r.onFrame(rooms[0].Members[0], chatMessage(2, 5)) // again: a duplicate
	r.onFrame(rooms[1].Members[0], chatMessage(2, 5)) // another room: misrouted
	if r.echoes.Load() != 1 || r.slots[2].recv.Load() == 0 || r.slots[2].recvSeq.Load() != 5 || r.slots[2].dups.Load() != 1 || r.misrouted.Load() != 1 {
		t.Fatalf("echoes %d recv %d seq %d dups %d misrouted %d", r.echoes.Load(), r.slots[2].recv.Load(), r.slots[2].recvSeq.Load(), r.slots[2].dups.Load(), r.misrouted.Load())
	}
	r.onFrame(rooms[0].Members[0], chatMessage(6, 4)) // seq 4 after 5 on this socket
	if r.reordered.Load() != 1 {
		t.Fatalf("reordered %d", r.reordered.Load())
	}
	for _, f := range []string{`{"event":"chat.presence","data":{"online":true}}`, `{"event":"chat.typing","data":{}}`,
		`{"event":"chat.read","data":{"seq":3}}`, `{"event":"chat.destroy","data":{"isDestroyed":true,"reason":"expired"}}`} {
		r.onFrame(rooms[0].Members[0], []byte(f))
	}
	if r.unknown.Load() != 0 {
		t.Fatal("known events are not unknown")
	}
	r.onFrame(rooms[0].Members[0], []byte(`{"event":"chat.message","data":{"text":"hello"}}`))
	r.onFrame(rooms[0].Members[0], chatMessage(99, 1)) // beyond the schedule
	r.onFrame(rooms[0].Members[0], []byte(`{"event":"chat.sticker","data":{}}`))
	if r.unknown.Load() != 3 {
		t.Fatalf("unknown %d", r.unknown.Load())
	}
}

// TestAcksMatchTheirSendByClientID: an ack or error answers the send with
// its clientId, on the sender's own socket; the first answer counts.
func TestAcksMatchTheirSendByClientID(t *testing.T) {
	r, rooms := testRun(2, 8)
	ack := func(i, seq int) []byte {
		return []byte(`{"event":"ack","data":{"clientId":"b` + itoa(i) + `","message":{"id":"m","seq":` + itoa(seq) + `,"text":"L` + itoa(i) + `.x","token":"t"}}}`)
	}
	sender3 := rooms[1].Members[1] // message 3: 3 mod 4 = member 1 of room 1
	r.onFrame(sender3, ack(3, 9))
	s := &r.slots[3]
	if s.status.Load() != statusAcked || s.ackSeq.Load() != 9 || s.reply.Load() == 0 {
		t.Fatalf("status %d seq %d reply %d", s.status.Load(), s.ackSeq.Load(), s.reply.Load())
	}
	r.onFrame(sender3, ack(3, 9))
	r.onFrame(sender3, []byte(`{"event":"error","data":{"clientId":"b3","status":503,"error":"x"}}`))
	if s.reacks.Load() != 2 || s.status.Load() != statusAcked {
		t.Fatalf("later answers are counted, not taken: reacks %d status %d", s.reacks.Load(), s.status.Load())
	}
	r.onFrame(rooms[1].Members[0], ack(1, 1)) // message 1 is member 0 of room 1's
	r.onFrame(rooms[0].Members[0], ack(2, 1)) // message 2 is member 1 of room 0's: misrouted
	if r.slots[1].status.Load() != statusAcked || r.misrouted.Load() != 1 || r.slots[2].status.Load() != statusNone {
		t.Fatalf("slot 1 %d misrouted %d slot 2 %d", r.slots[1].status.Load(), r.misrouted.Load(), r.slots[2].status.Load())
	}
	r.onFrame(rooms[0].Members[0], []byte(`{"event":"error","data":{"clientId":"b4","status":429,"error":"slow down"}}`))
	r.onFrame(rooms[1].Members[0], []byte(`{"event":"error","data":{"clientId":"b5","error":"no status"}}`))
	if r.slots[4].status.Load() != 429 || r.slots[5].status.Load() != 599 {
		t.Fatalf("error statuses %d %d", r.slots[4].status.Load(), r.slots[5].status.Load())
	}
	r.onFrame(rooms[0].Members[0], []byte(`{"event":"ack","data":{"clientId":"other","message":{}}}`))
	r.onFrame(rooms[0].Members[0], []byte(`{"event":"ack","data":{"clientId":"b80","message":{}}}`))
	if r.unknown.Load() != 2 {
		t.Fatalf("acks of sends the generator did not make: unknown %d", r.unknown.Load())
	}
}

// TestResultAccountsLossDuplicatesAndErrors builds slots by hand: one of
// each outcome, plus one in the warm-up that must not count.
func TestResultAccountsLossDuplicatesAndErrors(t *testing.T) {
	r, _ := testRun(1, 8)
	r.cfg.Duration, r.cfg.Warmup = time.Second, 10*time.Millisecond
	r.t0 = int64(time.Millisecond)
	ms := int64(time.Millisecond)
	set := func(i int, sched int64, status int32, ackSeq, recvAfter, recvSeq int64, dups int32) {
		s := &r.slots[i]
		s.sched = sched
		s.start.Store(sched + ms/10)
		if status != statusNone {
			s.answer(sched+2*ms, status, ackSeq)
		}
		if recvAfter > 0 {
			s.recv.Store(sched + recvAfter)
			s.recvSeq.Store(recvSeq)
		}
		s.dups.Store(dups)
	}
	from := r.t0 + int64(r.cfg.Warmup)
	set(0, r.t0, statusAcked, 1, 0, 0, 0)         // warm-up, lost: not counted
	set(1, from, statusAcked, 2, 3*ms, 2, 0)      // clean, 3 ms
	set(2, from+ms, statusAcked, 3, 0, 0, 0)      // lost
	set(3, from+2*ms, statusAcked, 4, 5*ms, 4, 2) // delivered, and twice more
	set(4, from+3*ms, 409, 0, 0, 0, 0)            // refused
	set(5, from+4*ms, statusNone, 0, 0, 0, 0)     // never answered
	set(6, from+5*ms, 503, 0, 7*ms, 6, 0)         // stored and delivered, but the answer said 503
	set(7, from+6*ms, statusAcked, 8, 1*ms, 9, 0) // the other member saw another seq
	r.slots[7].answer(from+20*ms, statusAcked, 8) // acknowledged twice
	r.slots[5].start.Store(0)                     // never written: no sender lag sample
	res := r.result()
	want := Result{Scheduled: 7, SentOK: 4, Delivered: 4, Lost: 1, Unacked: 1, Duplicates: 2, SeqMismatch: 1, Reanswered: 1}
	got := Result{Scheduled: res.Scheduled, SentOK: res.SentOK, Delivered: res.Delivered, Lost: res.Lost, Unacked: res.Unacked,
		Duplicates: res.Duplicates, SeqMismatch: res.SeqMismatch, Reanswered: res.Reanswered}
	if got.Scheduled != want.Scheduled || got.SentOK != want.SentOK || got.Delivered != want.Delivered || got.Lost != want.Lost ||
		got.Unacked != want.Unacked || got.Duplicates != want.Duplicates || got.SeqMismatch != want.SeqMismatch || got.Reanswered != want.Reanswered {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if res.Errors["409"] != 1 || res.Errors["503"] != 1 || res.Errors["no answer"] != 1 || res.ErrorCount() != 3 {
		t.Fatalf("errors %v", res.Errors)
	}
	if res.Latency.N != 4 || res.Latency.Max != 7*time.Millisecond || res.Latency.P50 != 5*time.Millisecond {
		t.Fatalf("latency %+v", res.Latency)
	}
	if res.Reply.N != 4 || res.Reply.Max != 2*time.Millisecond || res.SenderLag.N != 6 {
		t.Fatalf("reply %+v lag %+v", res.Reply, res.SenderLag)
	}
	if res.Achieved != 4 || res.Sustained(time.Second) {
		t.Fatalf("achieved %v sustained %v", res.Achieved, res.Sustained(time.Second))
	}
}

func TestPercentilesAndSustained(t *testing.T) {
	var d []time.Duration
	for i := 1000; i >= 1; i-- { // unsorted on purpose
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	p := PercentilesOf(d)
	if p.P50 != 501*time.Millisecond || p.P90 != 901*time.Millisecond || p.P99 != 991*time.Millisecond ||
		p.P999 != 1000*time.Millisecond || p.Max != time.Second || p.N != 1000 {
		t.Fatalf("%+v", p)
	}
	if p := PercentilesOf(nil); p != (Percentiles{}) {
		t.Fatalf("empty: %+v", p)
	}
	if p := PercentilesOf([]time.Duration{7}); p.P50 != 7 || p.P99 != 7 || p.Max != 7 || p.N != 1 {
		t.Fatalf("one sample: %+v", p)
	}
	if p := PercentilesOf([]time.Duration{1, 2}); p.P50 != 2 || p.P90 != 2 {
		t.Fatalf("two samples: %+v", p)
	}
	clean := Result{Scheduled: 10, Delivered: 10, SentOK: 10, Errors: map[string]int{}, Latency: Percentiles{P99: 40 * time.Millisecond}}
	if !clean.Sustained(50 * time.Millisecond) {
		t.Fatal("a clean run under the limit is sustained")
	}
	for name, spoil := range map[string]func(*Result){
		"lost":          func(r *Result) { r.Lost = 1 },
		"duplicate":     func(r *Result) { r.Duplicates = 1 },
		"error":         func(r *Result) { r.Errors["409"] = 1 },
		"seq mismatch":  func(r *Result) { r.SeqMismatch = 1 },
		"reanswered":    func(r *Result) { r.Reanswered = 1 },
		"socket ended":  func(r *Result) { r.SocketsEnded = 1 },
		"misrouted":     func(r *Result) { r.Misrouted = 1 },
		"slow":          func(r *Result) { r.Latency.P99 = 50 * time.Millisecond },
		"not delivered": func(r *Result) { r.Delivered = 9 },
	} {
		r := clean
		r.Errors = map[string]int{}
		spoil(&r)
		if r.Sustained(50 * time.Millisecond) {
			t.Errorf("a run with %s is not sustained", name)
		}
	}
}

func TestSendQueueNeverBlocksThePushAndDrainsOnClose(t *testing.T) {
	q := newSendQueue()
	for i := range 5 {
		q.push(i)
	}
	got, ok := q.take(nil, 2)
	if !ok || len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("%v %v", got, ok)
	}
	got, ok = q.take(got[:0], 0)
	if !ok || len(got) != 3 || got[2] != 4 {
		t.Fatalf("%v %v", got, ok)
	}
	q.push(5)
	q.close()
	if got, ok = q.take(got[:0], 0); !ok || len(got) != 1 || got[0] != 5 {
		t.Fatalf("what was queued before close is still taken: %v %v", got, ok)
	}
	if _, ok = q.take(nil, 0); ok {
		t.Fatal("a closed, empty queue ends its taker")
	}

	// A shared queue: several takers, each message taken exactly once, and
	// every taker ends when it is closed.
	q = newSendQueue()
	var mu sync.Mutex
	var seen []int
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var buf []int
			for {
				var ok bool
				if buf, ok = q.take(buf[:0], 1); !ok {
					return
				}
				mu.Lock()
				seen = append(seen, buf...)
				mu.Unlock()
			}
		})
	}
	for i := range 1000 {
		q.push(i)
	}
	q.close()
	wg.Wait()
	sort.Ints(seen)
	if len(seen) != 1000 || seen[0] != 0 || seen[999] != 999 {
		t.Fatalf("%d taken", len(seen))
	}
	for i, v := range seen {
		if v != i {
			t.Fatalf("message %d taken twice or never", i)
		}
	}
}

func TestLoopbackSourcesAreSpreadAndOnlyForLoopback(t *testing.T) {
	g, err := NewGateway("http://127.0.0.1:3000", GatewayOptions{Sources: 300})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := g.source(), g.source(); a.String() != "127.0.1.1" || b.String() != "127.0.1.2" {
		t.Fatalf("%v %v", a, b)
	}
	if len(g.sources) != 300 || g.sources[299].String() != "127.0.2.50" {
		t.Fatalf("%d sources, last %v", len(g.sources), g.sources[len(g.sources)-1])
	}
	if g, _ := NewGateway("http://localhost:3000", GatewayOptions{Sources: 4}); g.source() != nil {
		t.Fatal("a host name is not spread (it may not resolve to loopback)")
	}
	if g, _ := NewGateway("http://127.0.0.1:3000", GatewayOptions{}); g.source() != nil {
		t.Fatal("no sources asked, none used")
	}
	if _, err := NewGateway("https://x", GatewayOptions{}); err == nil {
		t.Fatal("only http://host:port")
	}
}

// faultRun plays a short schedule against the fake gateway with one fault
// of each kind among the measured messages, and checks the accounting.
func faultRun(t *testing.T, cfg Config) (*fakeGateway, Result) {
	t.Helper()
	f := newFakeGateway(t)
	f.drop[60], f.dup[70], f.reject[80], f.badSeq[90], f.lateFail[100] = true, true, 409, true, 503
	if cfg.Send == SendSocket {
		f.reack[110] = true
	}
	cfg.Gateways = []string{f.srv.URL}
	cfg.Rooms, cfg.Rate, cfg.Duration, cfg.Warmup, cfg.Grace = 3, 200, time.Second, 200*time.Millisecond, 300*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	reanswered := 0
	if cfg.Send == SendSocket {
		reanswered = 1
	}
	// 240 messages, the first 40 in the warm-up.
	if res.Scheduled != 200 || res.SentOK != 198 || res.Lost != 1 || res.Duplicates != 1 || res.SeqMismatch != 1 ||
		res.Unacked != 1 || res.Delivered != 198 || res.Reanswered != reanswered {
		t.Errorf("scheduled %d acked %d lost %d dups %d seq %d unacked %d delivered %d reanswered %d",
			res.Scheduled, res.SentOK, res.Lost, res.Duplicates, res.SeqMismatch, res.Unacked, res.Delivered, res.Reanswered)
	}
	if res.Errors["409"] != 1 || res.Errors["503"] != 1 || res.ErrorCount() != 2 {
		t.Errorf("errors %v", res.Errors)
	}
	if res.Misrouted != 0 || res.Unknown != 0 || res.SocketsEnded != 0 || res.Echoes != 239 {
		t.Errorf("misrouted %d unknown %d ended %d echoes %d", res.Misrouted, res.Unknown, res.SocketsEnded, res.Echoes)
	}
	if res.Latency.N != 198 || res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 || res.Reply.N != 198 {
		t.Errorf("latency %+v reply %+v", res.Latency, res.Reply)
	}
	return f, res
}

func TestRunOverTheSocketAgainstAFakeGateway(t *testing.T) {
	f, _ := faultRun(t, Config{Send: SendSocket})
	httpConns, wsConns, ips := f.connections()
	if len(wsConns) != 6 {
		t.Fatalf("%d members with sockets", len(wsConns))
	}
	for token, n := range wsConns {
		if n != 1 || httpConns[token] != 1 || len(ips[token]) != 1 {
			t.Errorf("member %s: %d sockets, %d HTTP connections, source addresses %v", token, n, httpConns[token], ips[token])
		}
	}
}

func TestRunOverPOSTGivesEachMemberItsOwnConnection(t *testing.T) {
	f, _ := faultRun(t, Config{Send: SendPOST})
	httpConns, _, ips := f.connections()
	all := map[string]bool{}
	for token, n := range httpConns {
		if n != 1 {
			t.Errorf("member %s used %d HTTP connections, want its own one", token, n)
		}
		for ip := range ips[token] {
			all[ip] = true
		}
	}
	if len(httpConns) != 6 || len(all) < 2 {
		t.Fatalf("%d members, source addresses %v", len(httpConns), all)
	}
}

func TestRunWithTheSharedPoolExtraMode(t *testing.T) {
	f, res := faultRun(t, Config{Send: SendPOST, SharedConns: 2})
	if !strings.Contains(res.Mode(), "EXTRA") {
		t.Fatalf("the shared mode is labelled: %q", res.Mode())
	}
	// Six members over the pool's two connections: one carries several.
	// (Not which connections one member's requests took: with requests
	// that seldom overlap the pool may reuse one connection for them all.)
	most := 0
	for _, n := range f.membersPerConn() {
		most = max(most, n)
	}
	if most < 2 {
		t.Fatalf("no connection carried more than %d member's requests", most)
	}
	if _, err := Run(context.Background(), Config{Gateways: []string{f.srv.URL}, Rooms: 1, Duration: time.Second, SharedConns: 2}); err == nil {
		t.Fatal("a shared pool with socket sends is refused")
	}
}

func TestIdleRunHoldsTheSocketsWithoutSending(t *testing.T) {
	f := newFakeGateway(t)
	res, err := Run(context.Background(), Config{Gateways: []string{f.srv.URL}, Rooms: 2, Rate: 0, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Scheduled != 0 || res.SocketsEnded != 0 || res.Unknown != 0 {
		t.Fatalf("%+v", res)
	}
}

func TestParseSendMode(t *testing.T) {
	for in, want := range map[string]SendMode{"socket": SendSocket, "ws": SendSocket, "": SendSocket, "POST": SendPOST} {
		if got, err := ParseSendMode(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParseSendMode("pigeon"); err == nil {
		t.Error("unknown mode accepted")
	}
}
