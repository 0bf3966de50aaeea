package natsrpc

import "time"

// SetWorkerIdle shortens how long s's workers wait for the next request.
func SetWorkerIdle(s *Server, d time.Duration) { s.idle = d }

// Workers is how many workers s has, busy or idle.
func Workers(s *Server) int64 { return s.workers.Load() }

// WorkerIdle is the real idle time.
const WorkerIdle = workerIdle
