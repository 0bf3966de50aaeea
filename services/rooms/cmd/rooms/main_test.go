package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"wisp/contract"
	"wisp/platform/natsrpc"
	"wisp/testkit"
)

func TestRunServesAndStopsCleanly(t *testing.T) {
	r := testkit.StartRedis(t)
	ns := testkit.StartNATS(t)
	s := testkit.StartService(t, run, map[string]string{"REDIS_URL": r.URL, "NATS_URL": ns.ClientURL(), "ROOM_TTL": "3s"})
	if err := s.Stop(t, 10*time.Second); err != nil {
		t.Fatalf("run returned %v", err)
	}
	logs := s.Logs()
	for _, want := range []string{`"room_ttl":"3s"`, `"msg":"nats drained"`, `"msg":"redis closed"`, `"msg":"stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

func TestConfigRejectsBadValues(t *testing.T) {
	env := map[string]string{"ROOM_TTL": "ten minutes", "REDIS_URL": "http://x", "LOG_LEVEL": "loud"}
	_, err := loadConfig(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, key := range []string{"ROOM_TTL", "REDIS_URL", "LOG_LEVEL"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
}

// TestReplicaCutOffFromRedisStepsAside: of two replicas, the one whose
// Redis stalls stops taking requests within 2 s (at the real probe
// settings), so every call is served by the other; with that one gone too,
// a call is a 503 at once; the stalled replica comes back by itself.
func TestReplicaCutOffFromRedisStepsAside(t *testing.T) {
	stalled, healthy := testkit.StartRedis(t), testkit.StartRedis(t)
	ns := testkit.StartNATS(t)
	a := testkit.StartService(t, run, map[string]string{"REDIS_URL": stalled.URL, "NATS_URL": ns.ClientURL()})
	b := testkit.StartService(t, run, map[string]string{"REDIS_URL": healthy.URL, "NATS_URL": ns.ClientURL()})
	client := testkit.Connect(t, ns)
	create := func() (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		_, err := natsrpc.Call[contract.CreateRoomReply](ctx, client, contract.SubjectRoomCreate, contract.CreateRoomRequest{})
		return time.Since(start), err
	}

	stalled.Freeze(t)
	// A call every 20 ms, each on its own: those the stalled replica takes
	// before it steps aside wait on its Redis until it does, then get a 503;
	// from then on every call is served by the other replica.
	st := testkit.CallDuringStall(150, 20*time.Millisecond, 200*time.Millisecond, create)
	t.Logf("the stalled replica stepped aside %v after its Redis froze; %d of 150 calls failed or were slow, the longest took %v",
		st.Aside.Round(time.Millisecond), st.Failed, st.Longest.Round(time.Millisecond))
	if st.Aside > 2*time.Second || st.Longest > 2*time.Second {
		t.Fatalf("stepped aside after %v, longest call %v; want both within 2 s", st.Aside, st.Longest)
	}
	if a.Ready() == nil {
		t.Fatal("the stalled replica is ready")
	}

	if err := b.Stop(t, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	took, err := create()
	var ce *contract.Error
	if !errors.As(err, &ce) || ce.Code != contract.CodeUnavailable || took > 200*time.Millisecond {
		t.Fatalf("no healthy replica: %v after %v, want a 503 at once", err, took)
	}

	if err := stalled.Thaw(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() error { _, err := create(); return err })
	testkit.Eventually(t, 5*time.Second, a.Ready)
}
