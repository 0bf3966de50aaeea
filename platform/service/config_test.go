package service

import (
	"strings"
	"testing"
	"time"
)

func TestLoadConfigDefaultsAndErrors(t *testing.T) {
	env := NewEnv(func(string) string { return "" })
	c := LoadConfig("rooms", env, true)
	if env.Err() != nil || c.NATSURL != DefaultNATSURL || c.RedisURL != DefaultRedisURL || c.OpsAddr != ":9090" || c.ShutdownTimeout != 20*time.Second {
		t.Fatalf("defaults: %+v %v", c, env.Err())
	}
	if c := LoadConfig("gateway", NewEnv(func(string) string { return "" }), false); c.RedisURL != "" {
		t.Fatal("a service without Redis got a REDIS_URL")
	}
	bad := map[string]string{"NATS_URL": "localhost", "REDIS_URL": "redis://:secret@", "SHUTDOWN_TIMEOUT": "-1s", "LOG_LEVEL": "chatty"}
	env = NewEnv(func(k string) string { return bad[k] })
	LoadConfig("rooms", env, true)
	err := env.Err()
	for _, key := range []string{"NATS_URL", "REDIS_URL", "SHUTDOWN_TIMEOUT", "LOG_LEVEL"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s not reported: %v", key, err)
		}
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatal("error message leaks a password")
	}
}

func TestRedact(t *testing.T) {
	if got := Redact("redis://user:hunter2@host:6379/0"); strings.Contains(got, "hunter2") {
		t.Fatalf("Redact = %q", got)
	}
	if got := Redact("nats://host:4222"); got != "nats://host:4222" {
		t.Fatalf("Redact = %q", got)
	}
}
