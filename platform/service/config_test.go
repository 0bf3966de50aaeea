package service

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestLoadConfigDefaultsAndErrors(t *testing.T) {
	env := NewEnv(func(string) string { return "" })
	c := LoadConfig("rooms", env, true)
	if env.Err() != nil || c.NATSURL != DefaultNATSURL || c.RedisURL != DefaultRedisURL || c.OpsAddr != ":9090" || c.ShutdownTimeout != 20*time.Second || c.LogFormat != "" {
		t.Fatalf("defaults: %+v %v", c, env.Err())
	}
	if c := LoadConfig("gateway", NewEnv(func(string) string { return "" }), false); c.RedisURL != "" {
		t.Fatal("a service without Redis got a REDIS_URL")
	}
	bad := map[string]string{"NATS_URL": "localhost", "REDIS_URL": "redis://:secret@", "SHUTDOWN_TIMEOUT": "-1s", "LOG_LEVEL": "chatty", "LOG_FORMAT": "xml", "PPROF": "yes"}
	env = NewEnv(func(k string) string { return bad[k] })
	LoadConfig("rooms", env, true)
	err := env.Err()
	for _, key := range []string{"NATS_URL", "REDIS_URL", "SHUTDOWN_TIMEOUT", "LOG_LEVEL", "LOG_FORMAT", "PPROF"} {
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

// TestNewLoggerFormats: JSON unless told otherwise or writing to a terminal;
// LOG_FORMAT=text is text even into a pipe (the launcher of `make run`
// relays its services' output to a terminal through pipes).
func TestNewLoggerFormats(t *testing.T) {
	for _, tc := range []struct {
		format   string
		wantJSON bool
	}{{"", true}, {LogJSON, true}, {LogText, false}} {
		env := NewEnv(func(k string) string {
			if k == "LOG_FORMAT" {
				return tc.format
			}
			return ""
		})
		cfg := LoadConfig("rooms", env, false)
		if err := env.Err(); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		NewLogger(&buf, cfg).Info("hello", "k", "v")
		line := strings.TrimSpace(buf.String())
		if isJSON := json.Valid([]byte(line)); isJSON != tc.wantJSON {
			t.Errorf("LOG_FORMAT=%q wrote %q, want JSON %v", tc.format, line, tc.wantJSON)
		}
		if !tc.wantJSON && !strings.Contains(line, "msg=hello k=v") {
			t.Errorf("LOG_FORMAT=text wrote %q", line)
		}
	}
}

func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if IsTerminal(w) || IsTerminal(&bytes.Buffer{}) {
		t.Fatal("a pipe or a buffer taken for a terminal")
	}
}

// TestClusterURLs: NATS_URL takes a comma-separated list (nats.go's form for
// a cluster's servers) and REDIS_URL go-redis's cluster form; both keep
// rejecting what is neither, and a list is redacted URL by URL.
func TestClusterURLs(t *testing.T) {
	good := map[string]string{
		"NATS_URL":  "nats://10.0.0.1:4222, nats://10.0.0.2:4222,tls://10.0.0.3:4222",
		"REDIS_URL": "redis://:pw@10.0.0.1:6379?addr=10.0.0.2:6379&addr=10.0.0.3:6379",
	}
	env := NewEnv(func(k string) string { return good[k] })
	c := LoadConfig("rooms", env, true)
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
	if !IsClusterURL(c.RedisURL) || IsClusterURL(DefaultRedisURL) {
		t.Fatal("IsClusterURL")
	}
	rdb, err := OpenRedis(c.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("cluster form opened a %T", rdb)
	}
	single, err := OpenRedis(DefaultRedisURL)
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()
	if _, ok := single.(*redis.Client); !ok {
		t.Fatalf("single-node URL opened a %T", single)
	}

	for key, v := range map[string]string{
		"NATS_URL":  "nats://10.0.0.1:4222,10.0.0.2:4222",
		"REDIS_URL": "redis://:secret@10.0.0.1:6379/3?addr=10.0.0.2:6379",
	} {
		env := NewEnv(func(k string) string {
			if k == key {
				return v
			}
			return ""
		})
		LoadConfig("rooms", env, true)
		err := env.Err()
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%q accepted: %v", key, v, err)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks a password: %v", err)
		}
	}
	if got := Redact("nats://a:pw1@h1:4222,nats://b:pw2@h2:4222"); strings.Contains(got, "pw1") || strings.Contains(got, "pw2") || !strings.Contains(got, "h2:4222") {
		t.Fatalf("Redact of a list = %q", got)
	}
}
