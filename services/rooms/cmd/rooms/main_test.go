package main

import (
	"strings"
	"testing"
	"time"

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
