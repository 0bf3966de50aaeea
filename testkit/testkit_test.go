package testkit

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestStartRedisHasKeyspaceEventsAndNoPersistence(t *testing.T) {
	r := StartRedis(t)
	cfg := r.Client(t).ConfigGet(context.Background(), "*").Val()
	if cfg["notify-keyspace-events"] == "" || cfg["save"] != "" || cfg["appendonly"] != "no" {
		t.Fatalf("notify=%q save=%q appendonly=%q", cfg["notify-keyspace-events"], cfg["save"], cfg["appendonly"])
	}
	extra := StartRedis(t, "--notify-keyspace-events", "")
	if v := extra.Client(t).ConfigGet(context.Background(), "notify-keyspace-events").Val(); v["notify-keyspace-events"] != "" {
		t.Fatalf("extra arguments did not win: %v", v)
	}
}

func TestStartNATSServesClients(t *testing.T) {
	nc := Connect(t, StartNATS(t))
	if !nc.IsConnected() {
		t.Fatal("not connected")
	}
}

func TestEventuallyPollsUntilTrue(t *testing.T) {
	n := 0
	Eventually(t, time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("polled %d times", n)
	}
}
