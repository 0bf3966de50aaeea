package natsrpc

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/micro"

	"wisp/contract"
)

// request is one request taken in: its message, the endpoint's call, and
// when its caller stops waiting.
type request struct {
	msg      micro.Request
	endpoint string
	arrived  time.Time
	deadline time.Time
	call     func(context.Context, []byte) (any, error)
}

// limits bound what a replica takes on. Beyond them it answers 503 at once
// ("busy"): the caller can try another replica, or again later, and this
// one's memory stays bounded. Waiting for a worker in NATS's delivery
// instead would stall the endpoint's subscription, which buffers up to
// 64 MB of requests.
type limits struct {
	workers int // requests worked on at once
	queued  int // requests waiting for a worker
}

// defaultLimits: a worker is a goroutine whose stack grew in decoding and
// the store's client (about 20 KB while it waits on Redis), a queued
// request only its message. 1,024 workers fill Redis pipelines at any rate
// this service reaches.
var defaultLimits = limits{workers: 1024, queued: 16384}

// workerIdle is how long a worker waits for its next request before it
// ends.
const workerIdle = 10 * time.Second

// admit runs req on a worker, queues it while none is free, or answers it
// busy when the queue is full. It never blocks NATS's delivery.
func (s *Server) admit(req *request) {
	s.running.Add(1)
	s.qmu.Lock()
	switch {
	case s.active < s.limits.workers:
		s.active++
		s.qmu.Unlock()
		s.spawn(req)
	case len(s.queue) < s.limits.queued:
		s.queue = append(s.queue, req)
		s.qmu.Unlock()
	default:
		s.qmu.Unlock()
		s.refuseBusy(req)
		s.running.Done()
	}
}

// next is the worker's next queued request; false gives up its place.
func (s *Server) next() (*request, bool) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if len(s.queue) == 0 {
		s.queue = nil // let a burst's backing array go
		s.active--
		return nil, false
	}
	req := s.queue[0]
	s.queue[0] = nil
	s.queue = s.queue[1:]
	return req, true
}

// spawn runs req on an idle worker, or on a new one when none is idle.
// Workers outlive their request because a goroutine keeps the stack it
// grew: a fresh one per request grew its stack for every request (decoding,
// the Redis client), a tenth of the messages service's CPU.
func (s *Server) spawn(req *request) {
	select {
	case s.jobs <- req:
	default:
		s.workers.Add(1)
		go s.worker(req)
	}
}

func (s *Server) worker(req *request) {
	defer s.workers.Add(-1)
	idle := time.NewTimer(s.idle)
	defer idle.Stop()
	for {
		s.run(req)
		if next, ok := s.next(); ok {
			req = next
			continue
		}
		idle.Reset(s.idle)
		select {
		case req = <-s.jobs:
		case <-idle.C:
			return
		}
	}
}

// run serves req, or refuses it when the replica paused or the caller
// stopped waiting while it was queued (nobody would read the answer, and
// the work — a message stored — would surprise a caller told it failed).
func (s *Server) run(req *request) {
	defer s.running.Done()
	switch {
	case s.paused.Load():
		s.refuse(req, "service unavailable")
	case time.Now().After(req.deadline):
		s.refuseBusy(req)
	default:
		code := s.serve(req)
		s.duration.WithLabelValues(req.endpoint, code).Observe(time.Since(req.arrived).Seconds())
	}
}

// refuse answers req 503 without working on it.
func (s *Server) refuse(req *request, desc string) {
	s.replyError(req.msg, contract.CodeUnavailable, desc)
	s.duration.WithLabelValues(req.endpoint, contract.CodeUnavailable).Observe(time.Since(req.arrived).Seconds())
}

// refuseBusy refuses req for overload, and counts it.
func (s *Server) refuseBusy(req *request) {
	s.busy.Inc()
	s.refuse(req, "busy, try again")
}
