package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/redis/go-redis/v9"

	"wisp/contract"
	"wisp/stack"
	"wisp/stack/client"
	"wisp/testkit"
)

// startStack runs the system for one test and dumps its logs if it fails.
func startStack(t *testing.T, replicas int, env map[string]string) *stack.System {
	t.Helper()
	logs := &testkit.SyncBuffer{}
	reps := map[string]int{}
	for _, s := range stack.Services {
		reps[s] = replicas
	}
	s, err := stack.Start(context.Background(), stack.Options{
		BinDir: binDir, NATSBin: natsBin, Replicas: reps, Env: env, Logs: logs, Dir: t.TempDir(),
	})
	if err != nil {
		t.Fatalf("start: %v\n%s", err, logs.String())
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
		if t.Failed() {
			t.Logf("service logs:\n%s", logs.String())
		}
	})
	return s
}

type pair struct {
	id       string
	a, b     *client.Person
	wsA, wsB *client.Socket
}

// openRoom creates a room through gwA, admits one member through each
// gateway and opens both sockets.
func openRoom(t *testing.T, ctx context.Context, gwA, gwB string) *pair {
	t.Helper()
	p := &pair{a: client.New(gwA), b: client.New(gwB)}
	var err error
	if p.id, err = p.a.Create(ctx); err != nil {
		t.Fatal(err)
	}
	for _, who := range []*client.Person{p.a, p.b} {
		// A 503 says "try again" (Retry-After: 1), as a browser would: a
		// system just started may still be settling (a Redis Cluster's slots).
		testkit.Eventually(t, 10*time.Second, func() error {
			err := who.Join(ctx, p.id)
			if se := (*client.StatusError)(nil); err != nil && !(errors.As(err, &se) && se.Status == 503) {
				t.Fatalf("join: %v", err)
			}
			return err
		})
	}
	if p.wsA, err = p.a.Dial(ctx, p.id); err != nil {
		t.Fatal(err)
	}
	if p.wsB, err = p.b.Dial(ctx, p.id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.wsA.Close(); p.wsB.Close() })
	return p
}

// expectMessages reads frames until it has seen each text once.
func expectMessages(t *testing.T, ws *client.Socket, texts ...string) {
	t.Helper()
	var got []string
	for len(got) < len(texts) {
		f, err := ws.Next(5 * time.Second)
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		m, err := f.Message()
		if err != nil {
			t.Fatalf("frame %s: %v", f.Event, err)
		}
		if m.Token != "" {
			t.Fatal("chat.message frame carries a token")
		}
		got = append(got, m.Text)
	}
	sort.Strings(got)
	want := append([]string(nil), texts...)
	sort.Strings(want)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// expectDestroy waits for chat.destroy with the reason, then the server's
// close: code 1000, not a silence that a read timeout would also end.
// Messages with the texts in again were received already and may come once
// more first, as a catch-up after an outage may send them (docs/WEBSOCKET.md).
func expectDestroy(t *testing.T, ws *client.Socket, reason string, within time.Duration, again ...string) time.Time {
	t.Helper()
	until := time.Now().Add(within)
	f, err := ws.Next(within)
	for err == nil && f.Event == contract.EventMessage {
		m, merr := f.Message()
		if merr != nil || !slices.Contains(again, m.Text) {
			break
		}
		f, err = ws.Next(time.Until(until))
	}
	if err != nil {
		t.Fatalf("no chat.destroy: %v", err)
	}
	at := time.Now()
	if f.Event != contract.EventDestroy || !strings.Contains(string(f.Data), `"reason":"`+reason+`"`) {
		t.Fatalf("frame %s %s, want chat.destroy %s", f.Event, f.Data, reason)
	}
	f, err = ws.Next(3 * time.Second)
	if err == nil {
		t.Fatalf("frame %s %s after chat.destroy", f.Event, f.Data)
	}
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("after chat.destroy: %v; want the server's close 1000 (room ended)", err)
	}
	return at
}

func roomKeys(t *testing.T, rdb *redis.Client, id string) []string {
	keys := rdb.Keys(context.Background(), "*"+id+"*").Val()
	if rdb.ZScore(context.Background(), contract.DeadlinesKeyOf(id), id).Err() == nil {
		keys = append(keys, contract.DeadlinesKeyOf(id)+" member")
	}
	return keys
}

// TestWholeSystem plays a conversation on 2 gateways, 2 rooms, 2 messages
// and 2 expiry processes, real Redis and NATS; ends one room by DESTROY and
// lets another expire; then SIGKILLs one replica of each service and shows
// the survivors still serve a new room.
func TestWholeSystem(t *testing.T) {
	const ttl = 6 * time.Second
	s := startStack(t, 2, map[string]string{"ROOM_TTL": ttl.String()})
	ctx := context.Background()
	gws := s.Gateways()
	if len(gws) != 2 {
		t.Fatalf("%d gateways", len(gws))
	}
	opt, _ := redis.ParseURL(s.RedisURL)
	rdb := redis.NewClient(opt)
	defer rdb.Close()

	talk := openRoom(t, ctx, gws[0], gws[1])
	quiet := openRoom(t, ctx, gws[1], gws[0])
	quietDeadline := time.Now().Add(ttl)

	// A third person is turned away, through either gateway.
	for _, gw := range gws {
		err := client.New(gw).Join(ctx, talk.id)
		var se *client.StatusError
		if !errors.As(err, &se) || se.Location != "/?error=room-full" {
			t.Fatalf("third visitor: %v", err)
		}
	}

	// Messages flow both ways across gateways.
	if _, err := talk.a.Send(ctx, talk.id, "alice", "hello from gateway 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := talk.b.Send(ctx, talk.id, "bob", "hello from gateway 2"); err != nil {
		t.Fatal(err)
	}
	for _, ws := range []*client.Socket{talk.wsA, talk.wsB} {
		expectMessages(t, ws, "hello from gateway 1", "hello from gateway 2")
	}
	for who, p := range map[string]*client.Person{"alice": talk.a, "bob": talk.b} {
		msgs, err := p.List(ctx, talk.id, 0)
		if err != nil || len(msgs) != 2 {
			t.Fatalf("%s lists %v %v", who, msgs, err)
		}
		for _, m := range msgs {
			if own := m.Sender == who; own != (m.Token != "") {
				t.Fatalf("%s sees token %q on %s's message", who, m.Token, m.Sender)
			}
		}
	}

	// DESTROY NOW by one member reaches both.
	if err := talk.b.Destroy(ctx, talk.id); err != nil {
		t.Fatal(err)
	}
	for _, ws := range []*client.Socket{talk.wsA, talk.wsB} {
		expectDestroy(t, ws, contract.ReasonDestroyed, 3*time.Second)
	}
	if keys := roomKeys(t, rdb, talk.id); len(keys) != 0 {
		t.Fatalf("destroyed room left %v", keys)
	}

	// The quiet room expires on time, for both members, exactly once.
	for _, ws := range []*client.Socket{quiet.wsA, quiet.wsB} {
		at := expectDestroy(t, ws, contract.ReasonExpired, time.Until(quietDeadline)+3*time.Second)
		lag := at.Sub(quietDeadline)
		t.Logf("expiry announced %v after the deadline", lag.Round(time.Millisecond))
		if lag < -100*time.Millisecond {
			t.Fatalf("room announced %v before its deadline", -lag)
		}
	}
	testkit.Eventually(t, 2*time.Second, func() error {
		if keys := roomKeys(t, rdb, quiet.id); len(keys) != 0 {
			return fmt.Errorf("expired room left %v", keys)
		}
		return nil
	})

	// Kill one replica of each service; the rest carry on.
	killed := map[string]bool{}
	for _, p := range s.Live() {
		if !killed[p.Service] {
			killed[p.Service] = true
			if err := p.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-p.Exited()
		}
	}
	gws = s.Gateways()
	if len(gws) != 1 {
		t.Fatalf("%d gateways left", len(gws))
	}
	after := openRoom(t, ctx, gws[0], gws[0])
	for i := range 6 { // several requests, so both queue-group members would be tried
		if _, err := after.a.Send(ctx, after.id, "alice", fmt.Sprintf("still here %d", i)); err != nil {
			t.Fatalf("send after kill: %v", err)
		}
	}
	expectMessages(t, after.wsB, "still here 0", "still here 1", "still here 2", "still here 3", "still here 4", "still here 5")
	if err := after.a.Destroy(ctx, after.id); err != nil {
		t.Fatal(err)
	}
	expectDestroy(t, after.wsB, contract.ReasonDestroyed, 3*time.Second)
}
