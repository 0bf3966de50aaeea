package e2e

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"wisp/stack"
	"wisp/stack/client"
	"wisp/testkit"
)

// TestSIGTERMShutsDownInOrder sends SIGTERM to a gateway holding a live
// WebSocket and to a rooms process: each exits 0, the socket gets a
// going-away close frame, and the logs show the documented order.
func TestSIGTERMShutsDownInOrder(t *testing.T) {
	logs := &testkit.SyncBuffer{}
	s, err := stack.Start(context.Background(), stack.Options{BinDir: binDir, Logs: logs, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("start: %v\n%s", err, logs.String())
	}
	// The test SIGTERMs processes itself; Stop only cleans up after it.
	defer func() { _ = s.Stop(context.Background()) }()
	ctx := context.Background()
	gw := s.Gateways()[0]
	a, b := client.New(gw), client.New(gw)
	id, err := a.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = a.Join(ctx, id)
	_ = b.Join(ctx, id)
	ws, err := b.Dial(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	byName := map[string]*stack.Proc{}
	for _, p := range s.Live() {
		byName[p.Service] = p
	}
	for _, name := range []string{"gateway", "rooms"} {
		p := byName[name]
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.Exited():
		case <-time.After(15 * time.Second):
			t.Fatalf("%s did not exit after SIGTERM", name)
		}
		if p.Err() != nil {
			t.Fatalf("%s exited with %v\n%s", name, p.Err(), logs.String())
		}
		if name == "gateway" {
			_, err := ws.Next(5 * time.Second)
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
				t.Fatalf("socket got %v, want a going-away close frame", err)
			}
		}
	}
	order := map[string][]string{
		"gateway": {`"msg":"shutting down"`, `"msg":"http and websockets closed"`, `"msg":"nats drained"`, `"msg":"stopped"`},
		"rooms":   {`"msg":"shutting down"`, `"msg":"nats drained"`, `"msg":"redis closed"`, `"msg":"stopped"`},
	}
	for name, steps := range order {
		var own []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.HasPrefix(l, name+"-0 | ") {
				own = append(own, l)
			}
		}
		log := strings.Join(own, "\n")
		at := -1
		for _, step := range steps {
			i := strings.Index(log, step)
			if i < 0 || i < at {
				t.Fatalf("%s: %s missing or out of order:\n%s", name, step, log)
			}
			at = i
		}
	}
}
