// Package natsrpc is wisp's request/reply over NATS: JSON bodies, errors as
// nats micro error headers with contract codes, served by micro endpoints so
// replicas share the load through one queue group.
package natsrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"

	"wisp/contract"
	"wisp/platform/service"
)

// Classify maps a domain error to a contract code and a message safe to
// show a user; ok is false for errors it does not know (internal ones).
type Classify func(err error) (code, desc string, ok bool)

// Server serves the endpoints of one micro service. Pause takes it out of
// the queue groups (a replica whose store is away) and Resume puts it back.
type Server struct {
	nc       *nats.Conn
	name     string
	version  string
	log      *slog.Logger
	classify Classify
	duration *prometheus.HistogramVec
	busy     prometheus.Counter
	jobs     chan *request // to an idle worker (unbuffered: none idle, none takes it)
	idle     time.Duration
	workers  atomic.Int64   // alive, busy or idle
	running  sync.WaitGroup // requests taken in and not yet answered
	timeout  time.Duration  // from a request's arrival, unless its caller's is shorter
	limits   limits
	served   atomic.Int64
	paused   atomic.Bool

	qmu    sync.Mutex
	active int        // workers with a request
	queue  []*request // taken in, waiting for a worker, oldest first

	mu        sync.Mutex
	svc       micro.Service // nil while paused or stopped
	stopped   bool
	endpoints []endpoint
	// work is the parent of every request's context; Pause cancels it, so
	// requests waiting on the store that made the replica pause give up.
	work   atomic.Pointer[context.Context]
	cancel context.CancelFunc
}

// endpoint is what Resume registers again on a new micro service.
type endpoint struct {
	name, subject string
	handler       micro.Handler
}

// NewServer registers a micro service named name on nc.
func NewServer(nc *nats.Conn, name, version string, log *slog.Logger, reg prometheus.Registerer, classify Classify) (*Server, error) {
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wisp_nats_request_duration_seconds",
		Help:    "Time from a NATS request's arrival to its answer, by endpoint and result code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"endpoint", "code"})
	busy := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wisp_nats_requests_busy_total",
		Help: "Requests refused 503 for overload: every worker busy and the queue full, or their caller stopped waiting while they were queued.",
	})
	for _, c := range []prometheus.Collector{duration, busy} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	s := &Server{nc: nc, name: name, version: version, log: log, classify: classify, duration: duration, busy: busy,
		jobs: make(chan *request), idle: workerIdle, timeout: 5 * time.Second, limits: defaultLimits}
	s.newWork()
	var err error
	if s.svc, err = micro.AddService(nc, micro.Config{Name: name, Version: version}); err != nil {
		return nil, fmt.Errorf("micro service %s: %w", name, err)
	}
	return s, nil
}

// Handle serves fn on subject as endpoint name. Each request runs on a
// worker of its own, so one slow Redis round trip does not hold up the
// rest; workers and the queue before them are bounded (see limits).
func Handle[Req, Rep any](s *Server, name, subject string, fn func(context.Context, Req) (Rep, error)) error {
	h := micro.HandlerFunc(func(r micro.Request) {
		s.served.Add(1)
		in := &request{msg: r, endpoint: name, arrived: time.Now(), call: func(ctx context.Context, data []byte) (any, error) {
			var req Req
			if len(data) > 0 {
				if err := json.Unmarshal(data, &req); err != nil {
					return nil, &contract.Error{Code: contract.CodeBadRequest, Description: "invalid request body"}
				}
			}
			return fn(ctx, req)
		}}
		in.deadline = s.deadline(r, in.arrived)
		if s.paused.Load() {
			// Taken in before the pause reached NATS: answer at once rather
			// than wait on a store known to be away; the caller may retry
			// on a healthy replica.
			s.refuse(in, "service unavailable")
			return
		}
		s.admit(in)
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoints = append(s.endpoints, endpoint{name: name, subject: subject, handler: h})
	if s.svc == nil {
		return nil // paused: Resume registers it
	}
	return s.svc.AddEndpoint(name, h, micro.WithEndpointSubject(subject))
}

// deadline is when the caller of r stops waiting: by its timeout header,
// and at most the server's own timeout after arrival.
func (s *Server) deadline(r micro.Request, arrived time.Time) time.Time {
	d := arrived.Add(s.timeout)
	if ms, err := strconv.ParseInt(r.Headers().Get(contract.HeaderTimeout), 10, 64); err == nil && ms >= 0 {
		if caller := arrived.Add(time.Duration(ms) * time.Millisecond); caller.Before(d) {
			d = caller
		}
	}
	return d
}

// Pause stops taking requests: the endpoints leave their queue groups, so
// NATS sends requests to the other replicas (or answers "no responders"
// at once when there are none), and requests already on their way here
// are answered 503 without being worked on, as are those in flight. It is
// for a replica that cannot reach its store; Resume undoes it.
func (s *Server) Pause() error {
	s.paused.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Requests in flight wait on the store that is away: 503 now, not
	// after their timeout. (A send cut off so may still be stored once the
	// store answers; its clientId makes the caller's retry return it.)
	s.cancel()
	if s.svc == nil {
		return nil
	}
	// Stop drains the subscriptions; what they still deliver is answered 503.
	if err := s.svc.Stop(); err != nil {
		return fmt.Errorf("pause %s: %w", s.name, err)
	}
	s.svc = nil
	s.flush()
	return nil
}

// newWork gives requests from now on a context Pause has not cancelled.
func (s *Server) newWork() {
	ctx, cancel := context.WithCancel(context.Background())
	s.work.Store(&ctx)
	s.cancel = cancel
}

// flush makes NATS take in the subscription changes just made, so that the
// caller knows where requests go from now on. It cannot fail usefully:
// while disconnected there are no requests, and the reconnect resends
// only the subscriptions that are left.
func (s *Server) flush() { _ = s.nc.FlushTimeout(time.Second) }

// Resume takes requests again after Pause: a new micro service (a new
// instance id under $SRV) with the same endpoints.
func (s *Server) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	if s.svc == nil {
		svc, err := micro.AddService(s.nc, micro.Config{Name: s.name, Version: s.version})
		if err != nil {
			return fmt.Errorf("resume %s: %w", s.name, err)
		}
		for _, ep := range s.endpoints {
			if err := svc.AddEndpoint(ep.name, ep.handler, micro.WithEndpointSubject(ep.subject)); err != nil {
				_ = svc.Stop()
				return fmt.Errorf("resume %s: %w", s.name, err)
			}
		}
		s.svc = svc
		s.newWork()
		s.flush()
	}
	s.paused.Store(false)
	return nil
}

// Paused reports whether the server is out of its queue groups.
func (s *Server) Paused() bool { return s.paused.Load() }

// serve runs req and answers it once. Pause cancelling work answers 503 at
// once: a store client blocked on a socket read does not notice a cancelled
// context (only its own timeouts), and the caller should not wait for it.
// The call still finishes here, so the replica's shutdown waits for it.
func (s *Server) serve(req *request) string {
	r, name := req.msg, req.endpoint
	work := *s.work.Load()
	ctx, cancel := context.WithDeadline(work, req.deadline)
	defer cancel()
	var answered atomic.Bool
	stop := context.AfterFunc(work, func() {
		if answered.CompareAndSwap(false, true) {
			s.replyError(r, contract.CodeUnavailable, "service unavailable")
		}
	})
	rep, err := req.call(ctx, r.Data())
	if !stop() && !answered.CompareAndSwap(false, true) {
		return contract.CodeUnavailable // Pause answered it
	}
	if err != nil {
		code, desc := s.codeOf(err)
		if code == contract.CodeInternal {
			s.log.Error("request failed", "endpoint", name, "err", err)
		}
		s.replyError(r, code, desc)
		return code
	}
	body, err := json.Marshal(rep)
	if err != nil {
		s.log.Error("encode reply", "endpoint", name, "err", err)
		s.replyError(r, contract.CodeInternal, "internal error")
		return contract.CodeInternal
	}
	s.reply(r, &nats.Msg{Data: body})
	return "200"
}

// reply answers on the connection rather than through r.Respond/r.Error:
// those record their outcome in the request, which micro reads when the
// handler returns — and the handler returned long ago, since the work runs
// in a goroutine of its own (a data race otherwise). The reply is the same
// message micro would send; micro's per-endpoint error counts stay at zero,
// and the wisp_nats_request_duration_seconds metric counts by code instead.
func (s *Server) reply(r micro.Request, m *nats.Msg) {
	if m.Subject = r.Reply(); m.Subject == "" {
		return // a publish, not a request: nobody to answer
	}
	if err := s.nc.PublishMsg(m); err != nil {
		s.log.Warn("reply", "subject", r.Subject(), "err", err)
		if m.Header.Get(micro.ErrorCodeHeader) == "" {
			// A reply that cannot go (too large for the server, say) must
			// not leave the caller waiting out its timeout: say so at once.
			s.replyError(r, contract.CodeInternal, "reply could not be sent")
		}
	}
}

func (s *Server) replyError(r micro.Request, code, desc string) {
	s.reply(r, &nats.Msg{Header: nats.Header{micro.ErrorHeader: {desc}, micro.ErrorCodeHeader: {code}}})
}

func (s *Server) codeOf(err error) (string, string) {
	var ce *contract.Error
	if errors.As(err, &ce) {
		return ce.Code, ce.Description
	}
	if code, desc, ok := s.classify(err); ok {
		return code, desc
	}
	// Out of time, cut off by Pause, or the store away for a moment (a
	// restart, a failover): the caller may try again.
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || service.StoreUnavailable(err) {
		return contract.CodeUnavailable, "service unavailable"
	}
	return contract.CodeInternal, "internal error"
}

// Stop deregisters the service: no new requests reach this replica. In-flight
// ones finish (the connection's Drain waits for them).
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	svc := s.svc
	s.svc = nil
	s.mu.Unlock()
	if svc != nil {
		if err := svc.Stop(); err != nil {
			return err
		}
		s.flush()
	}
	done := make(chan struct{})
	go func() { s.running.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Call sends req to subject and decodes the reply into Rep. A failed reply
// comes back as *contract.Error; no responder as 503 (which also matches
// nats.ErrNoResponders, see Request).
func Call[Rep any](ctx context.Context, nc *nats.Conn, subject string, req any) (Rep, error) {
	var rep Rep
	data, err := Request(ctx, nc, subject, req)
	if err != nil {
		return rep, err
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		return rep, fmt.Errorf("decode %s reply: %w", subject, err)
	}
	return rep, nil
}

// Request is Call without decoding: it returns the reply's JSON as sent.
// Its 503 for no responder also matches nats.ErrNoResponders: no replica
// received the request, so sending it again is safe whatever it does.
func Request(ctx context.Context, nc *nats.Conn, subject string, req any) ([]byte, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	m := &nats.Msg{Subject: subject, Data: body}
	if d, ok := ctx.Deadline(); ok {
		m.Header = nats.Header{contract.HeaderTimeout: {strconv.FormatInt(time.Until(d).Milliseconds(), 10)}}
	}
	msg, err := nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		unavailable := &contract.Error{Code: contract.CodeUnavailable, Description: "service unavailable"}
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			return nil, fmt.Errorf("%w (%w)", unavailable, nats.ErrNoResponders)
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
			return nil, unavailable
		}
		return nil, err
	}
	if e := contract.ErrorFromHeader(msg.Header); e != nil {
		return nil, e
	}
	return msg.Data, nil
}

// Served is how many requests this replica has taken, over all endpoints
// and pauses.
func (s *Server) Served() int { return int(s.served.Load()) }
