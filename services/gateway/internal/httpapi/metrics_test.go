package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"wisp/services/gateway/internal/httpapi"
	"wisp/services/gateway/internal/natsclient"
	"wisp/services/gateway/internal/presence"
	"wisp/services/gateway/internal/relay"
	"wisp/services/gateway/internal/ws"
	"wisp/testkit"
)

// TestMetricsSurviveReusedRequests: request buffers are reused between
// requests; the metrics must not keep strings that point into them.
func TestMetricsSurviveReusedRequests(t *testing.T) {
	ns := testkit.StartNATS(t)
	nc := testkit.Connect(t, ns)
	feeds := natsclient.NewFeeds(nc)
	hub := relay.NewHub(feeds)
	reg := prometheus.NewRegistry()
	rt := httpapi.Realtime{Hub: hub, Presence: presence.NewTracker("g", time.Minute, feeds, hub.DeliverTo), Signals: feeds, Socket: ws.DefaultSettings}
	srv := httpapi.New(httpapi.Config{}, newFakeBackend(nc), rt, slog.New(slog.NewTextHandler(io.Discard, nil)), httpapi.NewMetrics(reg, hub))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Shutdown(context.Background()) }()
	// One keep-alive connection: each request reads into the same buffer.
	for range 3 {
		for _, m := range []string{"GET", "POST", "DELETE", "HEAD", "GET", "PUT"} {
			req, _ := http.NewRequest(m, "http://"+ln.Addr().String()+"/nowhere", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("gather: %v", err)
	}
}
