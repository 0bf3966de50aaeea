package service

import (
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// transientReplies are Redis's answers while a node or the cluster cannot
// serve a key for a moment: a failover (CLUSTERDOWN, TRYAGAIN, MASTERDOWN,
// a demoted master's READONLY), a restart loading its data (LOADING).
var transientReplies = []string{"CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "LOADING"}

// StoreUnavailable reports whether err says the store could not be reached
// or could not serve for a moment, rather than that the request failed: a
// caller may try again, so the answer is 503, not 500.
func StoreUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) {
		return true
	}
	for _, p := range transientReplies {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}
