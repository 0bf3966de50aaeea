package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	fastws "github.com/fasthttp/websocket"

	"wisp/contract"
	"wisp/services/gateway/internal/httpapi"
	"wisp/services/gateway/internal/ws"
	"wisp/testkit"
)

// The two-way protocol of docs/WEBSOCKET.md, against a real gateway.

func writeJSON(t *testing.T, c *fastws.Conn, v string) {
	t.Helper()
	if err := c.WriteMessage(fastws.TextMessage, []byte(v)); err != nil {
		t.Fatal(err)
	}
}

// waitEvent reads until a frame of the named event arrives.
func waitEvent(t *testing.T, c *fastws.Conn, event string) frame {
	t.Helper()
	for {
		if f := readAnyFrame(t, c); f.Event == event {
			return f
		}
	}
}

type ackData struct {
	ClientID string           `json:"clientId"`
	Message  contract.Message `json:"message"`
	Status   int              `json:"status"`
	Error    string           `json:"error"`
}

func decodeAck(t *testing.T, f frame) ackData {
	t.Helper()
	var a ackData
	if err := json.Unmarshal(f.Data, &a); err != nil {
		t.Fatalf("%s: %v", f.Data, err)
	}
	return a
}

func pair(t *testing.T, cfg httpapi.Config) (gw *gateway, fb *fakeBackend, id string, alice, bob *browser) {
	gw, fb, _ = world(t, cfg)
	alice, bob = newBrowser(t, gw.URL), newBrowser(t, gw.URL)
	id = alice.createRoom()
	alice.join(id)
	bob.join(id)
	return gw, fb, id, alice, bob
}

// TestSendOverSocketIsAckedAndIdempotent: a send frame is answered with an
// ack carrying the stored message (own token included) and the other member
// gets chat.message; a retry with the same clientId — on the socket or by
// POST — stores nothing new and acks the same message.
func TestSendOverSocketIsAckedAndIdempotent(t *testing.T) {
	_, fb, id, alice, bob := pair(t, httpapi.Config{})
	wa, wb := alice.mustDial(id), bob.mustDial(id)
	writeJSON(t, wa, `{"type":"send","clientId":"c-1","sender":"alice","text":"over the socket"}`)
	ack := decodeAck(t, waitEvent(t, wa, "ack"))
	if ack.ClientID != "c-1" || ack.Message.Text != "over the socket" || ack.Message.Seq != 1 || ack.Message.Token == "" {
		t.Fatalf("ack %+v", ack)
	}
	if f := waitEvent(t, wb, contract.EventMessage); !strings.Contains(string(f.Data), "over the socket") || strings.Contains(string(f.Data), "token") {
		t.Fatalf("bob got %s", f.Data)
	}
	writeJSON(t, wa, `{"type":"send","clientId":"c-1","sender":"alice","text":"over the socket"}`)
	if again := decodeAck(t, waitEvent(t, wa, "ack")); again.Message.ID != ack.Message.ID {
		t.Fatalf("retry stored a new message: %+v", again)
	}
	r := alice.do("POST", "/api/messages?roomId="+id, []byte(`{"sender":"alice","text":"over the socket","clientId":"c-1"}`), nil)
	if r.status != 200 || !strings.Contains(string(r.body), ack.Message.ID) {
		t.Fatalf("POST retry: %d %s", r.status, r.body)
	}
	if fb.sends != 1 {
		t.Fatalf("%d messages stored, want 1", fb.sends)
	}
}

// TestBadSendIsAnErrorNotAClose: a send that breaks the message rules gets
// an error frame with the HTTP status and the socket stays usable.
func TestBadSendIsAnErrorNotAClose(t *testing.T) {
	_, _, id, alice, _ := pair(t, httpapi.Config{})
	wa := alice.mustDial(id)
	for _, c := range []struct {
		frame, clientID string
		status          int
	}{
		{`{"type":"send","clientId":"c-2","sender":"a","text":"   "}`, "c-2", 400},
		{`{"type":"send","sender":"a","text":"no client id"}`, "", 400},
		{`{"type":"send","clientId":"bad id!","sender":"a","text":"x"}`, "", 400},
		{`{"type":"send","clientId":"c-3","text":"no sender"}`, "c-3", 400},
	} {
		writeJSON(t, wa, c.frame)
		e := decodeAck(t, waitEvent(t, wa, "error"))
		if e.Status != c.status || e.ClientID != c.clientID || e.Error == "" {
			t.Fatalf("%s: error %+v", c.frame, e)
		}
	}
	writeJSON(t, wa, `{"type":"send","clientId":"c-4","sender":"a","text":"still open"}`)
	if a := decodeAck(t, waitEvent(t, wa, "ack")); a.Message.Text != "still open" {
		t.Fatalf("ack %+v", a)
	}
}

// TestClientFrameRulesClose: frames that are not the protocol close the
// socket with the code docs/WEBSOCKET.md gives.
func TestClientFrameRulesClose(t *testing.T) {
	for _, c := range []struct {
		name  string
		op    int
		frame string
		code  int
	}{
		{"not JSON", fastws.TextMessage, `hello`, fastws.ClosePolicyViolation},
		{"JSON but not an object", fastws.TextMessage, `["send"]`, fastws.ClosePolicyViolation},
		{"unknown type", fastws.TextMessage, `{"type":"shout"}`, fastws.ClosePolicyViolation},
		{"wrong field type", fastws.TextMessage, `{"type":"read","seq":"7"}`, fastws.ClosePolicyViolation},
		{"read without seq", fastws.TextMessage, `{"type":"read"}`, fastws.ClosePolicyViolation},
		{"binary", fastws.BinaryMessage, `{"type":"typing"}`, fastws.CloseUnsupportedData},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, id, alice, _ := pair(t, httpapi.Config{})
			wa := alice.mustDial(id)
			if err := wa.WriteMessage(c.op, []byte(c.frame)); err != nil {
				t.Fatal(err)
			}
			if code := readClose(t, wa); code != c.code {
				t.Fatalf("closed with %d, want %d", code, c.code)
			}
		})
	}
}

// TestSocketFrameRateLimit: with limits on, sends beyond the burst get 429
// error frames; a client that keeps flooding is closed with 1008.
func TestSocketFrameRateLimit(t *testing.T) {
	_, fb, id, alice, _ := pair(t, httpapi.Config{RateLimits: true})
	wa := alice.mustDial(id)
	start := time.Now()
	go func() {
		for i := range 400 {
			if wa.WriteMessage(fastws.TextMessage, fmt.Appendf(nil, `{"type":"send","clientId":"f%d","sender":"a","text":"x"}`, i)) != nil {
				return
			}
		}
	}()
	acks, limited := 0, 0
	_ = wa.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, data, err := wa.ReadMessage()
		if err != nil {
			if code := closeCode(err); code != fastws.ClosePolicyViolation {
				t.Fatalf("flood closed with %d (%v), want 1008", code, err)
			}
			break
		}
		var f frame
		_ = json.Unmarshal(data, &f)
		switch {
		case f.Event == "ack":
			acks++
		case f.Event == "error" && decodeAck(t, f).Status == 429:
			limited++
		}
	}
	// The burst's sends are stored; their acks race the 1008 close that the
	// rest of the flood brings (a client resends unacked ones by clientId),
	// so the count that matters is what reached the backend.
	// The burst, plus what the bucket refilled while the flood went on (a
	// loaded machine writes the frames slowly).
	most := 20 + int(time.Since(start).Seconds()*10) + 1
	stored := 0
	testkit.Eventually(t, 5*time.Second, func() error { // sends still on their way to the backend
		fb.mu.Lock()
		stored = fb.sends
		fb.mu.Unlock()
		if stored < 20 {
			return fmt.Errorf("%d stored", stored)
		}
		return nil
	})
	if stored < 20 || stored > most || acks > stored || limited == 0 {
		t.Fatalf("%d stored (want 20..%d), %d acks and %d 429s for a flood of sends", stored, most, acks, limited)
	}
}

// TestTypingAndReadReachOnlyTheOtherMember: typing and read receipts go to
// the other member's sockets, not back to the sender's own tabs; a read
// that goes back, or repeats within a second, is not relayed.
func TestTypingAndReadReachOnlyTheOtherMember(t *testing.T) {
	_, _, id, alice, bob := pair(t, httpapi.Config{})
	wa, wa2, wb := alice.mustDial(id), alice.mustDial(id), bob.mustDial(id)
	writeJSON(t, wa, `{"type":"typing"}`)
	writeJSON(t, wa, `{"type":"read","seq":3}`)
	writeJSON(t, wa, `{"type":"read","seq":2}`)
	writeJSON(t, wa, `{"type":"read","seq":3}`) // a repeat within a second
	writeJSON(t, wa, `{"type":"read","seq":5}`)
	if f := readFrame(t, wb); f.Event != contract.EventTyping {
		t.Fatalf("bob got %s %s, want typing", f.Event, f.Data)
	}
	for _, want := range []int64{3, 5} {
		f := readFrame(t, wb)
		var d contract.ReadData
		if f.Event != contract.EventRead || json.Unmarshal(f.Data, &d) != nil || d.Seq != want {
			t.Fatalf("bob got %s %s, want read %d", f.Event, f.Data, want)
		}
	}
	// Alice's other tab hears nothing of her own signals: the next frame it
	// gets is bob's typing.
	writeJSON(t, wb, `{"type":"typing"}`)
	if f := readFrame(t, wa2); f.Event != contract.EventTyping {
		t.Fatalf("alice's second tab got %s %s", f.Event, f.Data)
	}
}

// TestKeysReachTheOtherMemberEveryTime: a key frame reaches the other
// member's sockets as chat.key, each time it is sent (a page answers a key
// with its own, so none may be dropped), never the sender's other tabs.
func TestKeysReachTheOtherMemberEveryTime(t *testing.T) {
	_, _, id, alice, bob := pair(t, httpapi.Config{RateLimits: true})
	wa, wa2, wb := alice.mustDial(id), alice.mustDial(id), bob.mustDial(id)
	key := `"alg":"X25519","key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"`
	for range 3 {
		writeJSON(t, wa, `{"type":"key",`+key+`}`)
	}
	for i := range 3 {
		if f := readFrame(t, wb); f.Event != contract.EventKey || string(f.Data) != `{`+key+`}` {
			t.Fatalf("bob's frame %d: %s %s, want chat.key", i, f.Event, f.Data)
		}
	}
	writeJSON(t, wb, `{"type":"typing"}`)
	if f := readFrame(t, wa2); f.Event != contract.EventTyping {
		t.Fatalf("alice's second tab got %s %s", f.Event, f.Data)
	}
}

// TestSealedSendByPOST: POST /api/messages takes {"envelope", "clientId"}
// in place of sender and text; a body with neither is a 400.
func TestSealedSendByPOST(t *testing.T) {
	_, _, id, alice, _ := pair(t, httpapi.Config{})
	r := alice.do(http.MethodPost, "/api/messages?roomId="+id, []byte(`{"envelope":"AQID","clientId":"c1"}`), nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"envelope":"AQID"`) {
		t.Fatalf("sealed POST: %d %s", r.status, r.body)
	}
	if r := alice.do(http.MethodPost, "/api/messages?roomId="+id, []byte(`{"clientId":"c2"}`), nil); r.status != 400 {
		t.Fatalf("empty POST: %d %s", r.status, r.body)
	}
}

func presenceOf(t *testing.T, f frame) bool {
	t.Helper()
	var d contract.PresenceData
	if f.Event != contract.EventPresence || json.Unmarshal(f.Data, &d) != nil {
		t.Fatalf("frame %s %s, want chat.presence", f.Event, f.Data)
	}
	return d.Online
}

// TestPresenceAcrossGateways: each member learns when the other's first
// socket opens and when the last one closes, though they sit on different
// gateways; a second tab changes nothing; a socket opening sees the current
// state at once.
func TestPresenceAcrossGateways(t *testing.T) {
	ns := testkit.StartNATS(t)
	fb := newFakeBackend(testkit.Connect(t, ns))
	gw1 := startGatewayWith(t, ns, fb, httpapi.Config{}, ws.DefaultSettings, time.Second)
	gw2 := startGatewayWith(t, ns, fb, httpapi.Config{}, ws.DefaultSettings, time.Second)
	alice, bob := newBrowser(t, gw1.URL), newBrowser(t, gw2.URL)
	id := alice.createRoom()
	alice.join(id)
	bob.join(id)

	wa, _, err := alice.dial(id, alice.base)
	if err != nil {
		t.Fatal(err)
	}
	defer wa.Close()
	if presenceOf(t, readAnyFrame(t, wa)) {
		t.Fatal("bob online before he opened the room")
	}
	wb1, _, err := bob.dial(id, bob.base)
	if err != nil {
		t.Fatal(err)
	}
	// Bob's gateway may hear of alice only after his socket opened.
	if !presenceOf(t, readAnyFrame(t, wb1)) {
		if !presenceOf(t, readAnyFrame(t, wb1)) {
			t.Fatal("bob never saw alice online")
		}
	}
	if !presenceOf(t, readAnyFrame(t, wa)) {
		t.Fatal("alice did not see bob come online")
	}
	wb2 := bob.mustDial(id) // a second tab: alice is told nothing new
	_ = wb1.Close()
	_ = wb2.Close()
	if presenceOf(t, readAnyFrame(t, wa)) {
		t.Fatal("alice did not see bob go offline")
	}
	// Alice's page reloads: its new socket starts with bob offline.
	wa3 := alice.mustDial(id)
	writeJSON(t, wa3, `{"type":"typing"}`) // keep the socket in use
	_ = wa3.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, data, err := wa3.ReadMessage(); err == nil {
		t.Fatalf("unexpected frame %s", data)
	}
}

// TestPresenceLeaseRunsOutWhenAGatewayDies: a gateway that vanishes
// without a word (its announcements stop) is forgotten after its lease.
func TestPresenceLeaseRunsOutWhenAGatewayDies(t *testing.T) {
	ns := testkit.StartNATS(t)
	fb := newFakeBackend(testkit.Connect(t, ns))
	gw := startGatewayWith(t, ns, fb, httpapi.Config{}, ws.DefaultSettings, 200*time.Millisecond)
	alice, bob := newBrowser(t, gw.URL), newBrowser(t, gw.URL)
	id := alice.createRoom()
	alice.join(id)
	bob.join(id)
	wa := alice.mustDial(id)
	// A gateway that says bob is on it, once, with a short lease, then dies.
	ghost := testkit.Connect(t, ns)
	data, _ := json.Marshal(contract.Presence{Member: "bob-marker", Gateway: "ghost", Online: true, LeaseMS: 600})
	if err := ghost.Publish(contract.PresenceSubject(id), data); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if !presenceOf(t, readAnyFrame(t, wa)) {
		t.Fatal("alice did not see the ghost's bob")
	}
	if presenceOf(t, readAnyFrame(t, wa)) {
		t.Fatal("want offline after the lease")
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
		t.Fatalf("offline after %s, want about the 600 ms lease", d)
	}
}

// TestSocketsOutliveSeveralPings: with the timers shortened, two members
// hold their sockets for more than six ping intervals and several write
// and pong deadlines while messages flow both ways; every message and the
// final chat.destroy arrive on the sockets first opened, none is dropped.
func TestSocketsOutliveSeveralPings(t *testing.T) {
	set := ws.Settings{PingInterval: 300 * time.Millisecond, PongWait: time.Second, WriteWait: 400 * time.Millisecond, ReadLimit: 16 << 10}
	ns := testkit.StartNATS(t)
	fb := newFakeBackend(testkit.Connect(t, ns))
	gw := startGatewayWith(t, ns, fb, httpapi.Config{}, set, time.Second)
	alice, bob := newBrowser(t, gw.URL), newBrowser(t, gw.URL)
	id := alice.createRoom()
	alice.join(id)
	bob.join(id)
	wa, wb := alice.mustDial(id), bob.mustDial(id)
	pings := make(chan struct{}, 100)
	type got struct {
		texts   []string
		destroy bool
		code    int
	}
	read := func(c *fastws.Conn, out chan<- got) {
		var g got
		c.SetPingHandler(func(p string) error {
			pings <- struct{}{}
			return c.WriteControl(fastws.PongMessage, []byte(p), time.Now().Add(time.Second))
		})
		for {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, data, err := c.ReadMessage()
			if err != nil {
				g.code = closeCode(err)
				out <- g
				return
			}
			var f struct {
				Event string           `json:"event"`
				Data  contract.Message `json:"data"`
			}
			_ = json.Unmarshal(data, &f)
			switch f.Event {
			case contract.EventMessage:
				g.texts = append(g.texts, f.Data.Text)
			case contract.EventDestroy:
				g.destroy = true
			}
		}
	}
	ra, rb := make(chan got, 1), make(chan got, 1)
	go read(wa, ra)
	go read(wb, rb)
	const n = 24
	start := time.Now()
	for i := range n {
		who := alice
		if i%2 == 1 {
			who = bob
		}
		if r := who.do("POST", "/api/messages?roomId="+id, fmt.Appendf(nil, `{"sender":"s","text":"m%d"}`, i), nil); r.status != 200 {
			t.Fatalf("send %d: %d %s", i, r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if held := time.Since(start); held < 6*set.PingInterval {
		t.Fatalf("held the sockets only %s", held)
	}
	alice.do("DELETE", "/api/room?roomId="+id, nil, nil)
	for name, ch := range map[string]chan got{"alice": ra, "bob": rb} {
		g := <-ch
		if len(g.texts) != n || !g.destroy || g.code != fastws.CloseNormalClosure {
			t.Fatalf("%s got %d of %d messages, destroy=%v, close %d", name, len(g.texts), n, g.destroy, g.code)
		}
	}
	if len(pings) < 2*5 {
		t.Fatalf("only %d pings reached the two sockets", len(pings))
	}
}

// TestRoomDeadlineClosesSockets: when the room's chat.destroy never comes,
// the gateway itself ends the room's sockets shortly after its deadline.
func TestRoomDeadlineClosesSockets(t *testing.T) {
	gw, fb, _ := world(t, httpapi.Config{})
	fb.ttl = time.Second
	alice := newBrowser(t, gw.URL)
	id := alice.createRoom()
	alice.join(id)
	wa := alice.mustDial(id)
	start := time.Now()
	f := readFrame(t, wa)
	if f.Event != contract.EventDestroy || !strings.Contains(string(f.Data), `"reason":"expired"`) {
		t.Fatalf("frame %s %s", f.Event, f.Data)
	}
	if code := readClose(t, wa); code != fastws.CloseNormalClosure {
		t.Fatalf("closed with %d", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("closed %s after the deadline", d)
	}
}
