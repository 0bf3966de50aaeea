// Package ops serves what operators and orchestrators ask of every wisp
// service: /livez, /readyz and /metrics on their own listener, and
// /debug/pprof/ when profiling is switched on.
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one dependency is usable; readiness runs them all.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// Server is the ops listener of one service.
type Server struct {
	srv      *http.Server
	checks   []Check
	started  atomic.Bool
	draining atomic.Bool
}

// NewRegistry returns a metrics registry with the Go runtime and process
// collectors, one per service (never the global one, so tests can run
// several services in one process).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// New builds the ops server; Start listens. With profiling, Go's profiles
// are served under /debug/pprof/ too (off by default: they show internals
// and cost CPU while taken).
func New(addr string, reg *prometheus.Registry, profiling bool, checks ...Check) *Server {
	s := &Server{checks: checks}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if profiling {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	s.srv = &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s
}

// Start listens and serves in the background; it returns the bound address
// (useful with port 0).
func (s *Server) Start() (net.Addr, error) {
	l, err := net.Listen("tcp", s.srv.Addr)
	if err != nil {
		return nil, err
	}
	go func() { _ = s.srv.Serve(l) }()
	return l.Addr(), nil
}

// Started makes /readyz run its checks; before it, the service is still
// starting and not ready.
func (s *Server) Started() { s.started.Store(true) }

// Drain makes /readyz fail so load balancers stop sending work while the
// service shuts down; /livez keeps answering.
func (s *Server) Drain() { s.draining.Store(true) }

// Shutdown stops the listener.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if !s.started.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
		return
	}
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status, failed := http.StatusOK, map[string]string{}
	for _, c := range s.checks {
		if err := c.Run(ctx); err != nil {
			status = http.StatusServiceUnavailable
			failed[c.Name] = err.Error()
		}
	}
	if status != http.StatusOK {
		writeJSON(w, status, map[string]any{"status": "not ready", "failed": failed})
		return
	}
	writeJSON(w, status, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ErrNotConnected is what a readiness check reports for a dropped link.
var ErrNotConnected = errors.New("not connected")
