package natsrpc_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"wisp/contract"
	"wisp/platform/natsrpc"
	"wisp/testkit"
)

var errKnown = errors.New("known")

type echo struct{ N int }

func TestHandleMapsErrorsToContractCodes(t *testing.T) {
	ns := testkit.StartNATS(t)
	nc := testkit.Connect(t, ns)
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
		{"not an object", contract.CodeBadRequest},
	}
	for _, c := range cases {
		_, err := natsrpc.Call[echo](ctx, nc, "test.echo", c.req)
		var ce *contract.Error
		if !errors.As(err, &ce) || ce.Code != c.code {
			t.Fatalf("%v: %v, want %s", c.req, err, c.code)
		}
		if ce.Code == contract.CodeInternal && ce.Description != "internal error" {
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
