package natsrpc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"wisp/contract"
	"wisp/platform/natsrpc"
)

var errKnown = errors.New("known")

// connect opens a connection to ns for the test's length.
func connect(tb testing.TB, ns *server.Server) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// newServer starts a micro service named name on a connection of its own;
// it knows no domain error.
func newServer(tb testing.TB, ns *server.Server, name string) (*natsrpc.Server, *nats.Conn) {
	tb.Helper()
	nc := connect(tb, ns)
	srv, err := natsrpc.NewServer(nc, name, "1.0.0", slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(),
		func(error) (string, string, bool) { return "", "", false })
	if err != nil {
		tb.Fatal(err)
	}
	return srv, nc
}

type echo struct {
	N   int
	Pad string `json:",omitempty"`
}

func TestHandleMapsErrorsToContractCodes(t *testing.T) {
	// nats-server's own test server, not wisp/testkit's: testkit builds on
	// platform, and platform's tests must not need testkit back.
	ns := test.RunRandClientPortServer()
	t.Cleanup(ns.Shutdown)
	nc := connect(t, ns)
	srv, err := natsrpc.NewServer(nc, "test", "1.0.0", slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(),
		func(err error) (string, string, bool) {
			if errors.Is(err, errKnown) {
				return contract.CodeConflict, "known failure", true
			}
			return "", "", false
		})
	if err != nil {
		t.Fatal(err)
	}
	err = natsrpc.Handle(srv, "echo", "test.echo", func(_ context.Context, req echo) (echo, error) {
		switch req.N {
		case 1:
			return echo{}, errKnown
		case 2:
			return echo{}, errors.New("boom: internal detail")
		case 5:
			// The store could not be reached: try again, not wisp's failure.
			return echo{}, fmt.Errorf("append: %w", io.EOF)
		case 3:
			// A reply over the server's payload limit cannot be sent.
			return echo{Pad: strings.Repeat("x", int(nc.MaxPayload())+1)}, nil
		}
		return echo{N: req.N * 10}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()

	if rep, err := natsrpc.Call[echo](ctx, nc, "test.echo", echo{N: 4}); err != nil || rep.N != 40 {
		t.Fatalf("ok call: %+v %v", rep, err)
	}
	cases := []struct {
		req  any
		code string
	}{
		{echo{N: 1}, contract.CodeConflict},
		{echo{N: 2}, contract.CodeInternal},
		{echo{N: 3}, contract.CodeInternal}, // at once, not after the timeout
		{echo{N: 5}, contract.CodeUnavailable},
		{"not an object", contract.CodeBadRequest},
	}
	for _, c := range cases {
		_, err := natsrpc.Call[echo](ctx, nc, "test.echo", c.req)
		var ce *contract.Error
		if !errors.As(err, &ce) || ce.Code != c.code {
			t.Fatalf("%v: %v, want %s", c.req, err, c.code)
		}
		if ce.Code == contract.CodeInternal && ce.Description != "internal error" && ce.Description != "reply could not be sent" {
			t.Fatalf("internal detail leaked: %q", ce.Description)
		}
	}
	_, err = natsrpc.Call[echo](ctx, nc, "test.nobody", echo{})
	var ce *contract.Error
	if !errors.As(err, &ce) || ce.Code != contract.CodeUnavailable {
		t.Fatalf("no responders: %v", err)
	}
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPauseSendsRequestsElsewhereAndResumes: a paused replica gets no
// requests, so its peer serves them all; with every replica paused a call
// is a 503 at once (no responders), not a timeout; Resume brings the
// replica back under a new instance id.
func TestPauseSendsRequestsElsewhereAndResumes(t *testing.T) {
	ns := test.RunRandClientPortServer()
	t.Cleanup(ns.Shutdown)
	var srvs []*natsrpc.Server
	for range 2 {
		srv, nc := newServer(t, ns, "test")
		if err := natsrpc.Handle(srv, "echo", "test.echo", func(_ context.Context, req echo) (echo, error) { return req, nil }); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		srvs = append(srvs, srv)
	}
	a, b := srvs[0], srvs[1]
	client := connect(t, ns)
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := natsrpc.Call[echo](ctx, client, "test.echo", echo{N: 1})
		return err
	}

	if err := a.Pause(); err != nil || !a.Paused() {
		t.Fatalf("pause: %v", err)
	}
	before := a.Served()
	for range 20 {
		if err := call(); err != nil {
			t.Fatalf("call with one replica paused: %v", err)
		}
	}
	if a.Served() != before || b.Served() < 20 {
		t.Fatalf("paused replica served %d, peer %d", a.Served()-before, b.Served())
	}

	if err := b.Pause(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var ce *contract.Error
	if err := call(); !errors.As(err, &ce) || ce.Code != contract.CodeUnavailable {
		t.Fatalf("call with every replica paused: %v, want 503", err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("503 took %v; want it at once", took)
	}

	if err := a.Resume(); err != nil || a.Paused() {
		t.Fatalf("resume: %v", err)
	}
	if err := call(); err != nil {
		t.Fatalf("call after resume: %v", err)
	}
	if a.Served() != before+1 {
		t.Fatalf("resumed replica served %d of 1", a.Served()-before)
	}
	ping, err := client.Request("$SRV.PING.test", nil, time.Second)
	if err != nil || !strings.Contains(string(ping.Data), `"name":"test"`) {
		t.Fatalf("resumed replica not listed under $SRV: %v", err)
	}
	for _, s := range srvs {
		if err := s.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Resume(); err != nil || call() == nil {
		t.Fatal("Resume after Stop took requests again")
	}
}

// TestPauseAnswersRequestsInFlight: a request stuck on a store that does not
// heed its context (a client blocked in a socket read) is answered 503 as
// soon as the replica pauses, once only, and Stop still waits for it.
func TestPauseAnswersRequestsInFlight(t *testing.T) {
	ns := test.RunRandClientPortServer()
	t.Cleanup(ns.Shutdown)
	srv, nc := newServer(t, ns, "test")
	entered, release := make(chan struct{}), make(chan struct{})
	if err := natsrpc.Handle(srv, "stuck", "test.stuck", func(context.Context, echo) (echo, error) {
		entered <- struct{}{}
		<-release
		return echo{N: 2}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	client := connect(t, ns)
	inbox := nats.NewInbox()
	replies, err := client.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.PublishRequest("test.stuck", inbox, []byte(`{"N":1}`)); err != nil {
		t.Fatal(err)
	}
	<-entered

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	m, err := replies.NextMsg(500 * time.Millisecond)
	if err != nil {
		t.Fatalf("no answer at once after Pause: %v", err)
	}
	if e := contract.ErrorFromHeader(m.Header); e == nil || e.Code != contract.CodeUnavailable {
		t.Fatalf("answer after Pause: %q %v, want 503", m.Data, m.Header)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a request was still being worked on", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if m, err := replies.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("second answer %q %v after the handler finished", m.Data, m.Header)
	}
}

// BenchmarkRequest: one request and reply through a served endpoint, 64
// callers at once, as the gateway's sends reach the messages service.
func BenchmarkRequest(b *testing.B) {
	ns := test.RunRandClientPortServer()
	b.Cleanup(ns.Shutdown)
	srv, _ := newServer(b, ns, "bench")
	if err := natsrpc.Handle(srv, "echo", "bench.echo", func(_ context.Context, req echo) (echo, error) { return req, nil }); err != nil {
		b.Fatal(err)
	}
	client := connect(b, ns)
	b.SetParallelism(32) // × GOMAXPROCS callers
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := natsrpc.Call[echo](context.Background(), client, "bench.echo", echo{N: 1, Pad: "0123456789abcdef"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
