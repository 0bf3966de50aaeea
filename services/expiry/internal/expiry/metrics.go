package expiry

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the expiry service's Prometheus series.
type Metrics struct {
	lag    *prometheus.HistogramVec
	rooms  *prometheus.CounterVec
	errors *prometheus.CounterVec
	// takenOver and resyncs show the outbox at work: ends whose claimer
	// did not announce them, and Redis data losses announced.
	takenOver *prometheus.CounterVec
	resyncs   prometheus.Counter
}

// NewMetrics registers the series on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wisp_expiry_lag_seconds",
			Help: "Time from a room's deadline to its chat.destroy being published, by path.",
			// The target is 1 s at p99; the long tail shows outages and catch-ups.
			Buckets: []float64{.01, .025, .05, .1, .25, .5, .75, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"path"}),
		rooms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wisp_expiry_rooms_total",
			Help: "Rooms this replica announced as expired, by the path that found them (sweep or event).",
		}, []string{"path"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wisp_expiry_errors_total",
			Help: "Failed steps of the expiry service, by operation.",
		}, []string{"op"}),
		takenOver: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wisp_expiry_taken_over_total",
			Help: "Claimed ends this replica announced after their claimer's lease ran out, by reason.",
		}, []string{"reason"}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wisp_expiry_resyncs_total",
			Help: "Times this replica found Redis without its epoch (data lost) and asked the gateways to resync.",
		}),
	}
	for _, c := range []prometheus.Collector{m.lag, m.rooms, m.errors, m.takenOver, m.resyncs} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Error counts a failed step of an adapter that runs on the service's
// behalf (the keyspace subscription, the notification setting).
func (m *Metrics) Error(op string) { m.errors.WithLabelValues(op).Inc() }
