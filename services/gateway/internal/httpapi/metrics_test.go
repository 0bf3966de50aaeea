package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"wisp/services/gateway/internal/httpapi"
	"wisp/services/gateway/internal/natsapi"
	"wisp/services/gateway/internal/relay"
	"wisp/testkit"
)

// TestMetricsSurviveReusedRequests: request buffers are reused between
// requests; the metrics must not keep strings that point into them.
func TestMetricsSurviveReusedRequests(t *testing.T) {
	ns := testkit.StartNATS(t)
	nc := testkit.Connect(t, ns)
	hub := relay.NewHub(natsapi.NewFeeds(nc))
	reg := prometheus.NewRegistry()
	srv := httpapi.New(httpapi.Config{}, newFakeBackend(nc), hub, slog.New(slog.NewTextHandler(io.Discard, nil)), httpapi.NewMetrics(reg, hub))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Shutdown(context.Background())
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
