package ops

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReadinessFollowsLifecycleAndChecks(t *testing.T) {
	var fail error
	s := New("127.0.0.1:0", NewRegistry(), false, Check{Name: "redis", Run: func(context.Context) error { return fail }})
	addr, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Shutdown(context.Background()) }()
	base := "http://" + addr.String()

	if code, _ := get(t, base+"/livez"); code != 200 {
		t.Fatalf("livez %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "starting") {
		t.Fatalf("ready before start: %d %s", code, body)
	}
	s.Started()
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	fail = errors.New("connection refused")
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "redis") {
		t.Fatalf("failing check: %d %s", code, body)
	}
	fail = nil
	s.Drain()
	if code, _ := get(t, base+"/readyz"); code != 503 {
		t.Fatalf("ready while draining: %d", code)
	}
	if code, _ := get(t, base+"/livez"); code != 200 {
		t.Fatal("livez failed while draining")
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics %d", code)
	}
}

// TestProfilesOnlyWhenSwitchedOn: /debug/pprof/ is served with profiling
// on, and is a 404 without.
func TestProfilesOnlyWhenSwitchedOn(t *testing.T) {
	for _, on := range []bool{false, true} {
		s := New("127.0.0.1:0", NewRegistry(), on)
		addr, err := s.Start()
		if err != nil {
			t.Fatal(err)
		}
		code, body := get(t, "http://"+addr.String()+"/debug/pprof/heap?debug=1")
		_ = s.Shutdown(context.Background())
		if on && (code != 200 || !strings.Contains(body, "heap profile")) || !on && code != 404 {
			t.Fatalf("profiling %v: /debug/pprof/heap answered %d", on, code)
		}
	}
}
