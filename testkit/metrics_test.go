package testkit_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"wisp/testkit"
)

func TestValueFindsASampleByItsLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	rooms := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rooms_total", Help: "h"}, []string{"path", "shard"})
	open := prometheus.NewGauge(prometheus.GaugeOpts{Name: "open", Help: "h"})
	reg.MustRegister(rooms, open)
	rooms.WithLabelValues("sweep", "1").Add(3)
	rooms.WithLabelValues("event", "1").Add(2)
	rooms.WithLabelValues("event", "2").Add(5)
	open.Set(7)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)

	families, err := testkit.Metrics(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
		found  bool
	}{
		{"open", nil, 7, true},
		{"rooms_total", []string{"path", "sweep"}, 3, true},
		{"rooms_total", []string{"path", "event", "shard", "2"}, 5, true},
		{"rooms_total", []string{"path", "none"}, 0, false},
		{"absent", nil, 0, false},
	} {
		if got, found := testkit.Value(families, c.name, c.labels...); got != c.want || found != c.found {
			t.Errorf("Value(%s %v) = %v, %v; want %v, %v", c.name, c.labels, got, found, c.want, c.found)
		}
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}))
	t.Cleanup(bad.Close)
	if _, err := testkit.Metrics(bad.URL); err == nil {
		t.Fatal("a 503 from /metrics was read as metrics")
	}
}
