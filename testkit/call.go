package testkit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"wisp/contract"
	"wisp/platform/natsrpc"
)

// Call sends req to a wisp endpoint. A service's error reply comes back as
// *contract.Error for the test to check; any other failure fails the test.
func Call[Rep any](tb testing.TB, nc *nats.Conn, subject string, req any) (Rep, *contract.Error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	rep, err := natsrpc.Call[Rep](ctx, nc, subject, req)
	var ce *contract.Error
	if errors.As(err, &ce) {
		return rep, ce
	}
	if err != nil {
		tb.Fatalf("%s: %v", subject, err)
	}
	return rep, nil
}
