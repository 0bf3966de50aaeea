package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"wisp/contract"
	"wisp/services/gateway/internal/ws"
)

type fakes struct {
	mu      sync.Mutex
	sent    [][]byte
	signals []string
	reqs    []contract.SendRequest
	holds   int           // sends awaiting their answer
	answers []int64       // the seq of each answer
	err     error         // what Send fails with
	block   chan struct{} // when set, Send answers once it is closed
}

func (f *fakes) Send(_ context.Context, req contract.SendRequest) ([]byte, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	err, block := f.err, f.block
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(contract.SendReply{Message: contract.Message{ID: "m1", Seq: 1, Text: req.Text, Token: "marker"}})
}

func (f *fakes) Signal(subject, member string, frame []byte) error {
	f.mu.Lock()
	f.signals = append(f.signals, subject+" "+member+" "+string(frame))
	f.mu.Unlock()
	return nil
}

func (f *fakes) push(frame []byte) bool {
	f.mu.Lock()
	f.sent = append(f.sent, frame)
	f.mu.Unlock()
	return true
}

// waitSent polls until n frames were sent to the socket (2 s at most).
func (f *fakes) waitSent(n int) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		f.mu.Lock()
		got := len(f.sent)
		f.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

type outbox struct{ f *fakes }

func (o outbox) Send(frame []byte) bool { return o.f.push(frame) }

func (o outbox) Hold() { o.f.mu.Lock(); o.f.holds++; o.f.mu.Unlock() }

func (o outbox) Answer(frame []byte, seq int64) bool {
	o.f.mu.Lock()
	o.f.holds--
	o.f.answers = append(o.f.answers, seq)
	o.f.mu.Unlock()
	return o.f.push(frame)
}

func newTestSession(limits bool) (*Session, *fakes) {
	f := &fakes{}
	cfg := &Config{Backend: f, Signals: f, RateLimits: limits, Timeout: time.Second, Sends: NewSends(),
		Status: func(error) (int, string) { return 503, "down" }}
	return NewSession(cfg, outbox{f}, "room", "secret", "alice"), f
}

func TestAckFrameWrapsTheReplyUntouched(t *testing.T) {
	got := AckFrame("c1", []byte(`{"message":{"id":"m1","seq":3,"text":"a \"quoted\" text"}}`))
	var f struct {
		Event string `json:"event"`
		Data  struct {
			ClientID string           `json:"clientId"`
			Message  contract.Message `json:"message"`
		} `json:"data"`
	}
	if err := json.Unmarshal(got, &f); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if f.Event != "ack" || f.Data.ClientID != "c1" || f.Data.Message.Seq != 3 || f.Data.Message.Text != `a "quoted" text` {
		t.Fatalf("%s", got)
	}
}

func TestSendPassesTheRequestAndAcks(t *testing.T) {
	s, f := newTestSession(false)
	if code, _ := s.OnText([]byte(`{"type":"send","clientId":"c1","sender":"al","text":"hi"}`)); code != 0 {
		t.Fatalf("closed %d", code)
	}
	f.waitSent(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) != 1 || f.reqs[0] != (contract.SendRequest{RoomID: "room", Token: "secret", Sender: "al", Text: "hi", ClientID: "c1"}) {
		t.Fatalf("requests %+v", f.reqs)
	}
	if len(f.sent) != 1 || string(f.sent[0][:16]) != `{"event":"ack","` {
		t.Fatalf("frames %q", f.sent)
	}
	if len(f.answers) != 1 || f.answers[0] != 1 || f.holds != 0 {
		t.Fatalf("the ack must be the answer, with its message's seq, that ends the send's hold: answers %v, %d holds left", f.answers, f.holds)
	}
}

func TestAFailedSendIsAnsweredWithItsError(t *testing.T) {
	s, f := newTestSession(false)
	f.err = errors.New("messages down")
	s.OnText([]byte(`{"type":"send","clientId":"c1","sender":"al","text":"hi"}`))
	f.waitSent(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sent) != 1 || string(f.sent[0]) != `{"event":"error","data":{"clientId":"c1","status":503,"error":"down"}}` {
		t.Fatalf("frames %q", f.sent)
	}
	if len(f.answers) != 1 || f.answers[0] != 0 || f.holds != 0 {
		t.Fatalf("the error must be the answer, without a seq, that ends the send's hold: answers %v, %d holds left", f.answers, f.holds)
	}
}

func TestTypingIsRelayedAtMostOncePerSecond(t *testing.T) {
	s, f := newTestSession(false)
	for range 5 {
		s.OnText([]byte(`{"type":"typing"}`))
	}
	if len(f.signals) != 1 || f.signals[0] != "chat.typing.room alice "+string(contract.TypingEvent) {
		t.Fatalf("signals %q", f.signals)
	}
}

func TestRateBucket(t *testing.T) {
	s, _ := newTestSession(true)
	now := time.Now()
	allowed := 0
	for range FrameBurst + 5 {
		if s.allow(now) {
			allowed++
		}
	}
	if allowed != FrameBurst {
		t.Fatalf("burst allowed %d, want %d", allowed, FrameBurst)
	}
	if !s.allow(now.Add(time.Second / FrameRate)) {
		t.Fatal("a token did not come back after 1/rate")
	}
	// Reads over the limit are dropped; a long flood closes.
	code := ws.StatusCode(0)
	for i := 0; code == 0 && i < 1000; i++ {
		code, _ = s.OnText([]byte(`{"type":"read","seq":1}`))
	}
	if code != ws.StatusPolicy {
		t.Fatalf("flood ended with %d", code)
	}
}

// A key frame is relayed, every time, as the chat.key frame the other
// member receives, rebuilt from what was checked; a malformed one closes.
func TestKeyIsCheckedAndRelayed(t *testing.T) {
	s, f := newTestSession(false)
	x25519 := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" // 32 bytes
	fp := "AAECAwQFBgcICQoLDA0ODw"                          // 16 bytes
	p256 := "BA" + strings.Repeat("A", 85)                  // 65 bytes
	for range 2 {
		if code, why := s.OnText([]byte(`{"type":"key","alg":"X25519","key":"` + x25519 + `","peer":"` + fp + `","extra":1}`)); code != 0 {
			t.Fatalf("closed %d %s", code, why)
		}
	}
	if code, _ := s.OnText([]byte(`{"type":"key","alg":"P-256","key":"` + p256 + `"}`)); code != 0 {
		t.Fatal("a P-256 key closed the socket")
	}
	want := []string{
		`chat.key.room alice {"event":"chat.key","data":{"alg":"X25519","key":"` + x25519 + `","peer":"` + fp + `"}}`,
		`chat.key.room alice {"event":"chat.key","data":{"alg":"X25519","key":"` + x25519 + `","peer":"` + fp + `"}}`,
		`chat.key.room alice {"event":"chat.key","data":{"alg":"P-256","key":"` + p256 + `"}}`,
	}
	if strings.Join(f.signals, "\n") != strings.Join(want, "\n") {
		t.Fatalf("signals\n%s\nwant\n%s", strings.Join(f.signals, "\n"), strings.Join(want, "\n"))
	}
	for _, bad := range []string{
		`{"type":"key"}`,
		`{"type":"key","alg":"X25519"}`,
		`{"type":"key","alg":"RSA","key":"` + x25519 + `"}`,
		`{"type":"key","alg":"P-256","key":"` + x25519 + `"}`,
		`{"type":"key","alg":"X25519","key":"` + x25519 + `="}`,
		`{"type":"key","alg":"X25519","key":"` + strings.ReplaceAll(x25519, "_", "/") + `+"}`,
		`{"type":"key","alg":"X25519","key":"` + x25519 + `","peer":"AAEC"}`,
		`{"type":"key","alg":"X25519","key":1}`,
	} {
		s, _ := newTestSession(false)
		if code, _ := s.OnText([]byte(bad)); code != ws.StatusPolicy {
			t.Errorf("%s: closed %d, want %d", bad, code, ws.StatusPolicy)
		}
	}
}

// A send may carry an envelope in place of sender and text.
func TestSendCarriesAnEnvelope(t *testing.T) {
	s, f := newTestSession(false)
	if code, _ := s.OnText([]byte(`{"type":"send","clientId":"c1","envelope":"AQID"}`)); code != 0 {
		t.Fatalf("closed %d", code)
	}
	if code, _ := s.OnText([]byte(`{"type":"send","clientId":"c2"}`)); code != 0 {
		t.Fatalf("closed %d", code)
	}
	f.waitSent(2)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) != 1 || f.reqs[0] != (contract.SendRequest{RoomID: "room", Token: "secret", ClientID: "c1", Envelope: "AQID"}) {
		t.Fatalf("requests %+v", f.reqs)
	}
	var refused bool
	for _, fr := range f.sent {
		refused = refused || strings.Contains(string(fr), `"clientId":"c2","status":400`)
	}
	if !refused {
		t.Fatalf("a send with neither text nor envelope was not refused: %q", f.sent)
	}
}

// The gateway's sockets together have at most cfg.Sends waiting for the
// messages service: one more socket's send waits, unread, until one of
// them is answered, and then goes through.
func TestTheGatewaysWaitingSendsAreBounded(t *testing.T) {
	f := &fakes{block: make(chan struct{})}
	cfg := &Config{Backend: f, Signals: f, Timeout: time.Second, Sends: make(chan struct{}, 2),
		Status: func(error) (int, string) { return 503, "down" }}
	alice := NewSession(cfg, outbox{f}, "room", "secret", "alice")
	bob := NewSession(cfg, outbox{f}, "room2", "secret2", "bob")
	alice.OnText([]byte(`{"type":"send","clientId":"a1","sender":"al","text":"one"}`))
	alice.OnText([]byte(`{"type":"send","clientId":"a2","sender":"al","text":"two"}`))

	read := make(chan struct{})
	go func() {
		bob.OnText([]byte(`{"type":"send","clientId":"b1","sender":"bo","text":"three"}`))
		close(read)
	}()
	select {
	case <-read:
		t.Fatal("a third send was taken while the gateway's two slots waited for the backend")
	case <-time.After(200 * time.Millisecond):
	}
	f.mu.Lock()
	reqs := len(f.reqs)
	f.mu.Unlock()
	if reqs != 2 {
		t.Fatalf("%d sends reached the backend, want 2", reqs)
	}

	close(f.block)
	<-read
	f.waitSent(3)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) != 3 || len(f.sent) != 3 {
		t.Fatalf("after the backend answered: %d sends, %d frames; want 3 and 3", len(f.reqs), len(f.sent))
	}
}
