package main

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func TestReadyURL(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"", "http://127.0.0.1:9090/readyz"},
		{":9090", "http://127.0.0.1:9090/readyz"},
		{"0.0.0.0:9191", "http://127.0.0.1:9191/readyz"},
		{"[::]:9090", "http://127.0.0.1:9090/readyz"},
		{"10.1.2.3:9090", "http://10.1.2.3:9090/readyz"},
	} {
		got, err := readyURL(tc.addr)
		if err != nil || got != tc.want {
			t.Errorf("readyURL(%q) = %q, %v; want %q", tc.addr, got, err, tc.want)
		}
	}
	if _, err := readyURL("9090"); err == nil {
		t.Error("readyURL(\"9090\") accepted an address without a colon")
	}
}

func TestRun(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || !ready.Load() {
			http.Error(w, `{"status":"not ready"}`, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	}))
	defer srv.Close()
	opsAddr := srv.Listener.Addr().String()
	env := func(k string) string {
		if k == "OPS_ADDR" {
			return opsAddr
		}
		return ""
	}

	if err := run(nil, env); err != nil {
		t.Fatalf("ready service: %v", err)
	}
	if err := run([]string{srv.URL + "/readyz"}, nil); err != nil {
		t.Fatalf("explicit URL: %v", err)
	}
	ready.Store(false)
	if err := run(nil, env); err == nil {
		t.Fatal("a 503 passed")
	}
	srv.Close()
	if err := run(nil, env); err == nil {
		t.Fatal("a closed port passed")
	}
	if err := run([]string{"a", "b"}, env); err == nil {
		t.Fatal("two arguments accepted")
	}
}
