package service

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"wisp/contract"
	"wisp/platform/internal/tcpproxy"
	"wisp/platform/republish"
)

// A server that falls silent is noticed only by its unanswered pings, at
// the real settings 15–20 s later. What it swallowed just before is still
// published again once the client is back; what is older than the window
// is not. This runs for about 32 s at the real timers, the ping interval
// six times over.
func TestWhatASilentServerSwallowedIsPublishedAgainAtTheRealPingSettings(t *testing.T) {
	opts := test.DefaultTestOptions
	opts.Port = -1
	ns := test.RunServer(&opts)
	t.Cleanup(ns.Shutdown)

	sub, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	type received struct {
		data   string
		repeat bool
		at     time.Time
	}
	got := make(chan received, 10)
	if _, err := sub.Subscribe("ev.>", func(m *nats.Msg) {
		got <- received{string(m.Data), m.Header.Get(contract.HeaderRepeat) != "", time.Now()}
	}); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	next := func(within time.Duration) received {
		t.Helper()
		select {
		case r := <-got:
			return r
		case <-time.After(within):
			t.Fatalf("nothing received within %v", within)
			return received{}
		}
	}

	px := tcpproxy.Start(t, ns.Addr().String())
	nc, err := ConnectNATS("nats://"+px.Addr(), "test", slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewCounter(prometheus.CounterOpts{Name: "errs"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if !nc.IsConnected() {
		t.Fatal("not connected")
	}
	p := republish.New(nc, republishWindow, republishMaxBytes, prometheus.NewRegistry())

	if err := p.Publish("ev.old", []byte("old")); err != nil {
		t.Fatal(err)
	}
	if r := next(5 * time.Second); r.data != "old" || r.repeat {
		t.Fatalf("got %+v, want old, not a repeat", r)
	}
	// old is 27–32 s old when the silence is noticed: beyond the window.
	time.Sleep(12 * time.Second)

	px.Swallow()
	silent := time.Now()
	if err := p.Publish("ev.fresh", []byte("fresh")); err != nil {
		t.Fatal(err)
	}
	r := next(natsDeadUnnoticed + 5*time.Second)
	if r.data != "fresh" || !r.repeat {
		t.Fatalf("got %+v, want fresh, repeated", r)
	}
	// Noticed by the pings, not by anything else closing the connection.
	if d := r.at.Sub(silent); d < natsDeadUnnoticed-natsPingInterval-time.Second {
		t.Errorf("repeated %v after the server fell silent; the pings need at least %v to notice", d, natsDeadUnnoticed-natsPingInterval)
	}
	select {
	case r := <-got:
		t.Fatalf("received %+v too; old was beyond the window", r)
	case <-time.After(500 * time.Millisecond):
	}
}
