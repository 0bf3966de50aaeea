package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// reply is an error reply from Redis, as go-redis returns one.
type reply string

func (r reply) Error() string { return string(r) }
func (reply) RedisError()     {}

func TestStoreUnavailable(t *testing.T) {
	// A real dial to a closed port, as go-redis reports it.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	dialErr := rdb.Ping(context.Background()).Err()
	for _, c := range []struct {
		err  error
		want bool
	}{
		{dialErr, true},
		{fmt.Errorf("append: %w", io.EOF), true},
		{redis.ErrClosed, true},
		{fmt.Errorf("claim: %w", reply("CLUSTERDOWN The cluster is down")), true},
		{reply("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{reply("READONLY You can't write against a read only replica."), true},
		{reply("LOADING Redis is loading the dataset in memory"), true},
		{errors.New("CLUSTERDOWN The cluster is down"), false}, // not a Redis reply
		{reply("UNAUTHORIZED"), false},                         // a script's answer
		{reply("NOSCRIPT No matching script"), false},
		{redis.ErrPoolTimeout, true},
		{errors.New("internal: bad reply"), false},
		{context.Canceled, false},
		{nil, false},
	} {
		if got := StoreUnavailable(c.err); got != c.want {
			t.Errorf("StoreUnavailable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
