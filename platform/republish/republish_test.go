package republish

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"wisp/contract"
	"wisp/platform/internal/tcpproxy"
)

func startNATS(t *testing.T) *server.Server {
	t.Helper()
	opts := test.DefaultTestOptions
	opts.Port = -1
	ns := test.RunServer(&opts)
	t.Cleanup(ns.Shutdown)
	return ns
}

// received is what a plain subscriber got: payload and whether it was marked
// as a repeat.
type received struct {
	data   string
	repeat bool
}

func subscribe(t *testing.T, url string) <-chan received {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	got := make(chan received, 100)
	if _, err := nc.Subscribe("ev.>", func(m *nats.Msg) {
		got <- received{string(m.Data), m.Header.Get(contract.HeaderRepeat) != ""}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return got
}

func next(t *testing.T, got <-chan received) received {
	t.Helper()
	select {
	case r := <-got:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received")
		return received{}
	}
}

func none(t *testing.T, got <-chan received, within time.Duration) {
	t.Helper()
	select {
	case r := <-got:
		t.Fatalf("received %+v, want nothing more", r)
	case <-time.After(within):
	}
}

// repeats checks that exactly want arrive next, in order, each marked as a
// repeat.
func repeats(t *testing.T, got <-chan received, want ...string) {
	t.Helper()
	for _, w := range want {
		if r := next(t, got); r != (received{w, true}) {
			t.Fatalf("got %+v, want %s repeated", r, w)
		}
	}
	none(t, got, 200*time.Millisecond)
}

func TestAnEventTheServerNeverGotIsPublishedAgainAfterTheReconnect(t *testing.T) {
	ns := startNATS(t)
	got := subscribe(t, ns.ClientURL())
	px := tcpproxy.Start(t, ns.Addr().String())
	nc, err := nats.Connect("nats://"+px.Addr(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	reg := prometheus.NewRegistry()
	p := New(nc, time.Minute, 1<<20, reg)

	if err := p.Publish("ev.a", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if r := next(t, got); r != (received{"a", false}) {
		t.Fatalf("got %+v, want a, not a repeat", r)
	}

	px.Swallow()
	if err := p.Publish("ev.b", []byte("b")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for px.Swallowed() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("b never left the client")
		}
		time.Sleep(5 * time.Millisecond)
	}
	none(t, got, 100*time.Millisecond) // b is lost on the way
	px.Cut()

	// After the reconnect both come again, marked: b for the first time.
	want := map[received]bool{{"a", true}: true, {"b", true}: true}
	for range 2 {
		r := next(t, got)
		if !want[r] {
			t.Fatalf("got %+v, want one of %v", r, want)
		}
		delete(want, r)
	}
	none(t, got, 200*time.Millisecond)
	if n := testutil.ToFloat64(p.repeated); n != 2 {
		t.Errorf("wisp_nats_events_repeated_total = %v, want 2", n)
	}
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newPublisher(t *testing.T, url string, window time.Duration, maxBytes int) (*Publisher, *fakeClock) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	p := New(nc, window, maxBytes, prometheus.NewRegistry())
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	p.now = c.now
	return p, c
}

func TestOnlyTheWindowBeforeTheDisconnectIsRepeated(t *testing.T) {
	ns := startNATS(t)
	got := subscribe(t, ns.ClientURL())
	p, clock := newPublisher(t, ns.ClientURL(), 10*time.Second, 1<<20)

	publish := func(s string) {
		t.Helper()
		if err := p.Publish("ev."+s, []byte(s)); err != nil {
			t.Fatal(err)
		}
		if r := next(t, got); r != (received{s, false}) {
			t.Fatalf("got %+v, want %s", r, s)
		}
	}
	publish("old")
	clock.add(15 * time.Second)
	publish("recent")
	clock.add(time.Second)
	p.disconnected()
	clock.add(time.Second)
	publish("later") // after the disconnect: nats.go's reconnect buffer carries it
	p.reconnected()
	if r := next(t, got); r != (received{"recent", true}) {
		t.Fatalf("got %+v, want recent repeated", r)
	}
	none(t, got, 200*time.Millisecond)

	p.reconnected() // no disconnect since: nothing to repeat
	none(t, got, 100*time.Millisecond)
}

func TestWhatExceedsTheSizeLimitIsForgottenOldestFirst(t *testing.T) {
	ns := startNATS(t)
	got := subscribe(t, ns.ClientURL())
	p, _ := newPublisher(t, ns.ClientURL(), time.Minute, 3*(entryOverhead+len("ev.x")+1))
	for _, s := range []string{"1", "2", "3", "4", "5"} {
		if err := p.Publish("ev."+s, []byte(s)); err != nil {
			t.Fatal(err)
		}
		next(t, got)
	}
	if n := testutil.ToFloat64(p.forgotten); n != 2 {
		t.Errorf("wisp_nats_events_forgotten_total = %v, want 2", n)
	}
	p.disconnected()
	p.reconnected()
	repeats(t, got, "3", "4", "5")
}

func TestOnlyTheLatestEventOfASubjectIsRepeated(t *testing.T) {
	ns := startNATS(t)
	got := subscribe(t, ns.ClientURL())
	p, clock := newPublisher(t, ns.ClientURL(), 10*time.Second, 1<<20)
	for _, ev := range [][2]string{{"ev.r", "r1"}, {"ev.s", "s1"}, {"ev.r", "r2"}, {"ev.t", "t1"}, {"ev.t", "t2"}} {
		clock.add(time.Second)
		if err := p.Publish(ev[0], []byte(ev[1])); err != nil {
			t.Fatal(err)
		}
		next(t, got)
	}
	p.disconnected()
	p.reconnected()
	// In the order of each subject's latest publish.
	repeats(t, got, "s1", "r2", "t2")
}

func TestKeptEventsDoNotGrowWithoutBound(t *testing.T) {
	ns := startNATS(t)
	p, clock := newPublisher(t, ns.ClientURL(), time.Second, 1<<30)
	subjects := make([]string, 5000)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("ev.%d", i)
	}
	for i := range 100_000 {
		clock.add(time.Millisecond)
		if err := p.Publish(subjects[i%len(subjects)], []byte("x")); err != nil && !errors.Is(err, nats.ErrSlowConsumer) {
			t.Fatal(err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := p.order.Len(); n > 1001 || len(p.latest) != n {
		t.Errorf("%d events kept, %d subjects known; want at most a window's 1,001 of each", n, len(p.latest))
	}
	if want := p.order.Len() * (entryOverhead + len("ev.1234") + 1); p.bytes > want {
		t.Errorf("%d bytes counted for %d events, want at most %d", p.bytes, p.order.Len(), want)
	}
}

// BenchmarkPublish: what keeping events costs a publish, against a bare
// nats.Conn publish, with 200-byte events spread over 500 rooms' subjects.
func BenchmarkPublish(b *testing.B) {
	opts := test.DefaultTestOptions
	opts.Port = -1
	ns := test.RunServer(&opts)
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	data := make([]byte, 200)
	subjects := make([]string, 500)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("chat.message.room%d", i)
	}
	for _, bench := range []struct {
		name string
		ev   Events
	}{{"conn", nc}, {"republish", New(nc, 25*time.Second, 32<<20, prometheus.NewRegistry())}} {
		b.Run(bench.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if err := bench.ev.Publish(subjects[i%len(subjects)], data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
