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
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"

	"wisp/contract"
)

// Classify maps a domain error to a contract code and a message safe to
// show a user; ok is false for errors it does not know (internal ones).
type Classify func(err error) (code, desc string, ok bool)

// Server serves the endpoints of one micro service.
type Server struct {
	svc      micro.Service
	nc       *nats.Conn
	log      *slog.Logger
	classify Classify
	duration *prometheus.HistogramVec
	inflight chan struct{}
	running  sync.WaitGroup
	timeout  time.Duration
}

// maxInflight bounds the requests one replica works on at once; beyond it
// the endpoint's subscription buffers and NATS applies back pressure.
const maxInflight = 4096

// NewServer registers a micro service named name on nc.
func NewServer(nc *nats.Conn, name, version string, log *slog.Logger, reg prometheus.Registerer, classify Classify) (*Server, error) {
	svc, err := micro.AddService(nc, micro.Config{Name: name, Version: version})
	if err != nil {
		return nil, fmt.Errorf("micro service %s: %w", name, err)
	}
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wisp_nats_request_duration_seconds",
		Help:    "Time to handle one NATS request, by endpoint and result code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"endpoint", "code"})
	if err := reg.Register(duration); err != nil {
		return nil, err
	}
	return &Server{svc: svc, nc: nc, log: log, classify: classify, duration: duration,
		inflight: make(chan struct{}, maxInflight), timeout: 5 * time.Second}, nil
}

// Handle serves fn on subject as endpoint name. Each request runs in its own
// goroutine (bounded), so one slow Redis round trip does not queue the rest.
func Handle[Req, Rep any](s *Server, name, subject string, fn func(context.Context, Req) (Rep, error)) error {
	return s.svc.AddEndpoint(name, micro.HandlerFunc(func(r micro.Request) {
		s.inflight <- struct{}{}
		s.running.Add(1)
		go func() {
			defer func() { <-s.inflight; s.running.Done() }()
			start := time.Now()
			code := s.serve(r, name, func(ctx context.Context, data []byte) (any, error) {
				var req Req
				if len(data) > 0 {
					if err := json.Unmarshal(data, &req); err != nil {
						return nil, &contract.Error{Code: contract.CodeBadRequest, Description: "invalid request body"}
					}
				}
				return fn(ctx, req)
			})
			s.duration.WithLabelValues(name, code).Observe(time.Since(start).Seconds())
		}()
	}), micro.WithEndpointSubject(subject))
}

func (s *Server) serve(r micro.Request, name string, call func(context.Context, []byte) (any, error)) string {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	rep, err := call(ctx, r.Data())
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
	if errors.Is(err, context.DeadlineExceeded) {
		return contract.CodeUnavailable, "service unavailable"
	}
	return contract.CodeInternal, "internal error"
}

// Stop deregisters the service: no new requests reach this replica. In-flight
// ones finish (the connection's Drain waits for them).
func (s *Server) Stop(ctx context.Context) error {
	if err := s.svc.Stop(); err != nil {
		return err
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
// comes back as *contract.Error; no responder as 503.
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
func Request(ctx context.Context, nc *nats.Conn, subject string, req any) ([]byte, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	msg, err := nc.RequestWithContext(ctx, subject, body)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			return nil, &contract.Error{Code: contract.CodeUnavailable, Description: "service unavailable"}
		}
		return nil, err
	}
	if e := contract.ErrorFromHeader(msg.Header); e != nil {
		return nil, e
	}
	return msg.Data, nil
}

// Served is how many requests this replica has taken, over all endpoints.
func (s *Server) Served() int {
	n := 0
	for _, ep := range s.svc.Stats().Endpoints {
		n += ep.NumRequests
	}
	return n
}
