package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"wisp/testkit"
)

func TestRunServesAndStopsCleanly(t *testing.T) {
	ns := testkit.StartNATS(t)
	port, _ := testkit.FreePort()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s := testkit.StartService(t, run, map[string]string{"NATS_URL": ns.ClientURL(), "HTTP_ADDR": addr})
	resp, err := http.Get("http://" + addr + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("home page: %v %v", resp, err)
	}
	resp.Body.Close()
	// No rooms service is running: a clear, retryable 503, not a hang.
	resp, err = http.Post("http://"+addr+"/api/room/create", "application/json", nil)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("create without a rooms service: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get(s.OpsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := s.Stop(t, 10*time.Second); err != nil {
		t.Fatalf("run returned %v", err)
	}
	for _, want := range []string{`"msg":"http and websockets closed"`, `"msg":"nats drained"`, `"msg":"stopped"`} {
		if !strings.Contains(s.Logs(), want) {
			t.Errorf("logs lack %s", want)
		}
	}
}

func TestConfigRejectsBadValues(t *testing.T) {
	env := map[string]string{"ALLOWED_ORIGINS": "evil.example", "RATE_LIMITS": "maybe", "NATS_URL": "http://x"}
	_, err := loadConfig(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, key := range []string{"ALLOWED_ORIGINS", "RATE_LIMITS", "NATS_URL"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
	c, err := loadConfig(func(k string) string {
		return map[string]string{"RATE_LIMITS": "off", "TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1"}[k]
	})
	if err != nil || c.RateLimits || len(c.TrustedProxies) != 2 || c.HTTPAddr != ":3000" {
		t.Fatalf("%+v %v", c, err)
	}
}
