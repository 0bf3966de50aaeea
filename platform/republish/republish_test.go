package republish

import (
	"errors"
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
	for _, want := range []string{"3", "4", "5"} {
		if r := next(t, got); r != (received{want, true}) {
			t.Fatalf("got %+v, want %s repeated", r, want)
		}
	}
	none(t, got, 200*time.Millisecond)
}

func TestKeptEventsDoNotGrowWithoutBound(t *testing.T) {
	ns := startNATS(t)
	p, clock := newPublisher(t, ns.ClientURL(), time.Second, 1<<30)
	for range 100_000 {
		clock.add(time.Millisecond)
		if err := p.Publish("ev.x", []byte("x")); err != nil && !errors.Is(err, nats.ErrSlowConsumer) {
			t.Fatal(err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.kept) - p.head; n > 1001 {
		t.Errorf("%d events kept, want at most a window's 1,001", n)
	}
	if cap(p.kept) > 8192 {
		t.Errorf("the queue's array holds %d slots for 1,000 events", cap(p.kept))
	}
}

// BenchmarkPublish: what keeping events costs a publish, against a bare
// nats.Conn publish, at a 20 s window that holds every event.
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
	for _, bench := range []struct {
		name string
		ev   Events
	}{{"conn", nc}, {"republish", New(nc, 20*time.Second, 32<<20, prometheus.NewRegistry())}} {
		b.Run(bench.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bench.ev.Publish("ev.room", data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
