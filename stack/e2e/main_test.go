// Package e2e tests wisp as it is deployed: the service binaries as
// separate processes, a real redis-server and a real nats-server.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"wisp/stack"
)

var (
	binDir  string
	natsBin string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wisp-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	if err := stack.Build(ctx, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if natsBin, err = stack.BuildNATS(ctx, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cancel()
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
