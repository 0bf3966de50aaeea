package natsrpc

import "time"

// SetWorkerIdle shortens how long s's workers wait for the next request.
func SetWorkerIdle(s *Server, d time.Duration) { s.idle = d }

// Workers is how many workers s has, busy or idle.
func Workers(s *Server) int64 { return s.workers.Load() }

// WorkerIdle is the real idle time.
const WorkerIdle = workerIdle

// SetLimits lowers how many requests s works on at once and how many wait
// for a worker; call it before the first request.
func SetLimits(s *Server, workers, queued int) { s.limits = limits{workers: workers, queued: queued} }

// Queued is how many requests wait for a worker.
func Queued(s *Server) int {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return len(s.queue)
}

// ServerTimeout is how long a request may take at most when its caller
// sent no timeout of its own.
func ServerTimeout(s *Server) time.Duration { return s.timeout }
