package httpapi_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"wisp/services/gateway/internal/httpapi"
	"wisp/services/gateway/internal/ratelimit"
	"wisp/testkit"
)

// TestAPIAnswersAreNeverCached: every /api answer, errors included, says
// no-store.
func TestAPIAnswersAreNeverCached(t *testing.T) {
	gw, _, _ := world(t, httpapi.Config{})
	b := newBrowser(t, gw.URL)
	id := b.createRoom()
	b.join(id)
	for _, path := range []string{"/api/room/ttl?roomId=" + id, "/api/messages?roomId=" + id, "/api/room/ttl?roomId=nope"} {
		if r := b.get(path); r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s (%d): Cache-Control %q", path, r.status, r.header.Get("Cache-Control"))
		}
	}
}

// TestJSONBodiesOnly: a body that is not declared JSON is refused with 415
// before it reaches a service; a charset parameter is fine.
func TestJSONBodiesOnly(t *testing.T) {
	gw, fb, _ := world(t, httpapi.Config{})
	b := newBrowser(t, gw.URL)
	id := b.createRoom()
	b.join(id)
	body := []byte(`{"sender":"a","text":"hi"}`)
	for ct, want := range map[string]int{
		"text/plain":                        415,
		"application/x-www-form-urlencoded": 415,
		"application/json; charset=utf-8":   200,
		"application/json":                  200,
	} {
		r := b.do("POST", "/api/messages?roomId="+id, body, map[string]string{"Content-Type": ct})
		if r.status != want || (want == 415 && r.json(t)["error"] == nil) {
			t.Errorf("%s: %d %s, want %d", ct, r.status, r.body, want)
		}
	}
	if fb.sends != 2 {
		t.Fatalf("%d messages stored, want the 2 JSON ones", fb.sends)
	}
}

// TestHistoryIsPaged: a long history comes in pages that say there is
// more; following them yields every message once.
func TestHistoryIsPaged(t *testing.T) {
	gw, fb, _ := world(t, httpapi.Config{})
	fb.pageSize = 7 // the service's page; the gateway gathers a few per answer
	b := newBrowser(t, gw.URL)
	id := b.createRoom()
	b.join(id)
	const n = 75
	for i := range n {
		if r := b.do("POST", "/api/messages?roomId="+id, fmt.Appendf(nil, `{"sender":"a","text":"m%d"}`, i), nil); r.status != 200 {
			t.Fatal(r.status)
		}
	}
	seen, after, pages := 0, 0.0, 0
	for {
		page := b.get(fmt.Sprintf("/api/messages?roomId=%s&after=%d", id, int(after))).json(t)
		msgs := page["messages"].([]any)
		for _, m := range msgs {
			if seq := m.(map[string]any)["seq"].(float64); seq != after+1 {
				t.Fatalf("seq %v after %v", seq, after)
			} else {
				after = seq
			}
			seen++
		}
		pages++
		if page["more"] != true {
			break
		}
	}
	if seen != n || pages < 2 {
		t.Fatalf("%d messages in %d pages", seen, pages)
	}
	// A seq past anything is an empty page, not an error.
	if r := b.get("/api/messages?roomId=" + id + "&after=100000000000000000"); r.status != 200 {
		t.Fatalf("huge after: %d %s", r.status, r.body)
	}
}

// TestRateLimitsAreSharedAcrossGateways: with the limiter in Redis, two
// gateways draw on one budget per client and route group, and the routes
// of a group share it.
func TestRateLimitsAreSharedAcrossGateways(t *testing.T) {
	rs := testkit.StartRedis(t)
	opt, _ := redis.ParseURL(rs.URL)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	ns := testkit.StartNATS(t)
	fb := newFakeBackend(testkit.Connect(t, ns))
	cfg := httpapi.Config{RateLimits: true, Limiter: ratelimit.NewRedis(rdb)}
	gws := []*gateway{startGateway(t, ns, fb, cfg), startGateway(t, ns, fb, cfg)}
	created := 0
	for i := range 30 {
		r := newBrowser(t, gws[i%2].URL).do("POST", "/api/room/create", nil, nil)
		if r.status == 200 {
			created++
		} else if r.status != http.StatusTooManyRequests {
			t.Fatalf("create %d: %d", i, r.status)
		}
	}
	if created != 20 {
		t.Fatalf("%d rooms created through two gateways, want the one budget of 20", created)
	}
	if ttl := rdb.PTTL(t.Context(), "wisp:limit:create|127.0.0.1").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("bucket TTL %v", ttl)
	}
}

// TestConnectionsPerAddressAreBounded: past MaxConnsPerIP open connections
// from one address, a new one reads a 429 and is closed; closing one frees
// a place.
func TestConnectionsPerAddressAreBounded(t *testing.T) {
	gw, _, _ := world(t, httpapi.Config{RateLimits: true})
	addr := strings.TrimPrefix(gw.URL, "http://")
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	for range httpapi.MaxConnsPerIP {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	over := func() (string, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(c, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
		return bufio.NewReader(c).ReadString('\n')
	}
	line, err := over()
	if err != nil || !strings.Contains(line, "429") {
		t.Fatalf("connection over the bound: %q %v", line, err)
	}
	_ = conns[0].Close()
	testkit.Eventually(t, 3*time.Second, func() error {
		if line, _ := over(); strings.Contains(line, "429") {
			return fmt.Errorf("still refused after one closed")
		}
		return nil
	})
}

// TestHistoryLoadsInFlightAreBounded: one client may have only a few
// history loads in flight; the rest are refused at once (429), not queued.
func TestHistoryLoadsInFlightAreBounded(t *testing.T) {
	gw, fb, _ := world(t, httpapi.Config{})
	b := newBrowser(t, gw.URL)
	id := b.createRoom()
	b.join(id)
	fb.listGate = make(chan struct{})
	codes := make(chan int, 20)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- b.get("/api/messages?roomId=" + id).status
		}()
	}
	refused := 0
	for refused < 20-4 {
		select {
		case c := <-codes:
			if c != http.StatusTooManyRequests {
				t.Fatalf("a load beyond the bound answered %d", c)
			}
			refused++
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of 16 loads refused while 4 were held", refused)
		}
	}
	close(fb.listGate)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("a held load answered %d", c)
		}
	}
}
