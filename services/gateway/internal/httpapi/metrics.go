package httpapi

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"wisp/services/gateway/internal/relay"
)

// Metrics are the gateway's Prometheus metrics.
type Metrics struct {
	duration *prometheus.HistogramVec
}

// NewMetrics registers the gateway's metrics, reading relay counters from hub.
func NewMetrics(reg prometheus.Registerer, hub *relay.Hub) *Metrics {
	m := &Metrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wisp_http_request_duration_seconds",
		Help:    "HTTP request latency by route and status.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"method", "route", "status"})}
	reg.MustRegister(m.duration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wisp_ws_connections", Help: "Live WebSocket connections."},
			func() float64 { return float64(hub.Connections()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wisp_ws_rooms", Help: "Rooms with local clients (NATS room subscriptions)."},
			func() float64 { return float64(hub.Rooms()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wisp_ws_frames_relayed_total", Help: "Event frames queued to WebSocket clients."},
			func() float64 { return float64(hub.Stats.Relayed.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wisp_ws_slow_consumers_dropped_total", Help: "WebSocket clients disconnected for falling behind."},
			func() float64 { return float64(hub.Stats.Dropped.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wisp_ws_gaps_filled_total",
			Help: "Gaps in a room's messages (an event lost between NATS nodes) read back from its history."},
			func() float64 { return float64(hub.Stats.GapsFilled.Load()) }),
	)
	return m
}

func (m *Metrics) middleware(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	status := c.Response().StatusCode()
	if err != nil {
		status, _ = statusOf(err)
	}
	route := c.Route().Path
	if status == fiber.StatusNotFound {
		route = "unmatched" // keep label cardinality bounded
	}
	m.duration.WithLabelValues(methodLabel(c.Method()), route, strconv.Itoa(status)).Observe(time.Since(start).Seconds())
	return err
}

// methodLabel returns a constant for the method: fiber's string points into
// the request's buffer, which is reused, and a label value is kept for as
// long as the process runs (a corrupted one made /metrics answer 500).
func methodLabel(m string) string {
	for _, known := range []string{fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut,
		fiber.MethodDelete, fiber.MethodPatch, fiber.MethodOptions} {
		if m == known {
			return known
		}
	}
	return "other"
}
