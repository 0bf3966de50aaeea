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
	s := testkit.StartService(t, run, map[string]string{"REDIS_URL": r.URL, "NATS_URL": ns.ClientURL(), "MAX_ROOM_MESSAGES": "50"})
	if err := s.Stop(t, 10*time.Second); err != nil {
		t.Fatalf("run returned %v", err)
	}
	logs := s.Logs()
	for _, want := range []string{`"max_room_messages":50`, `"msg":"nats drained"`, `"msg":"redis closed"`, `"msg":"stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

func TestConfigRejectsBadValues(t *testing.T) {
	env := map[string]string{"MAX_ROOM_MESSAGES": "-1", "REDIS_URL": "http://x", "LOG_LEVEL": "loud"}
	_, err := loadConfig(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, key := range []string{"MAX_ROOM_MESSAGES", "REDIS_URL", "LOG_LEVEL"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
}

// TestReplicaCutOffFromRedisStepsAside: of two replicas, the one whose Redis
// stalls leaves the queue group within about a probe timeout, so sends go
// to the other; with no healthy replica a send is a 503 at once.
func TestReplicaCutOffFromRedisStepsAside(t *testing.T) {
	stalled, healthy := testkit.StartRedis(t), testkit.StartRedis(t)
	// The same room, with the same member, in both Redis: either replica
	// can store a send.
	const room, token = "abcdefghijklmnopqrstu", "tok-alice"
	for _, r := range []*testkit.Redis{stalled, healthy} {
		testkit.SeedRoom(t, r.Client(t), room, time.Now().Add(time.Hour), token)
	}
	ns := testkit.StartNATS(t)
	a := testkit.StartService(t, run, map[string]string{"REDIS_URL": stalled.URL, "NATS_URL": ns.ClientURL()})
	b := testkit.StartService(t, run, map[string]string{"REDIS_URL": healthy.URL, "NATS_URL": ns.ClientURL()})
	client := testkit.Connect(t, ns)
	send := func() (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		_, err := natsrpc.Call[contract.SendReply](ctx, client, contract.SubjectMessageSend,
			contract.SendRequest{RoomID: room, Token: token, Sender: "alice", Text: "hi"})
		return time.Since(start), err
	}
	if _, err := send(); err != nil {
		t.Fatal(err)
	}

	stalled.Freeze(t)
	st := testkit.CallDuringStall(150, 20*time.Millisecond, 200*time.Millisecond, send)
	t.Logf("the stalled replica stepped aside %v after its Redis froze; %d of 150 sends failed or were slow, the longest took %v",
		st.Aside.Round(time.Millisecond), st.Failed, st.Longest.Round(time.Millisecond))
	if st.Aside > 2*time.Second || st.Longest > 2*time.Second {
		t.Fatalf("stepped aside after %v, longest send %v; want both within 2 s", st.Aside, st.Longest)
	}
	if a.Ready() == nil {
		t.Fatal("the stalled replica is ready")
	}
	if err := b.Stop(t, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	took, err := send()
	if ce, ok := errors.AsType[*contract.Error](err); !ok || ce.Code != contract.CodeUnavailable || took > 200*time.Millisecond {
		t.Fatalf("no healthy replica: %v after %v, want a 503 at once", err, took)
	}
	if err := stalled.Thaw(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() error { _, err := send(); return err })
	testkit.Eventually(t, 5*time.Second, a.Ready)
}
