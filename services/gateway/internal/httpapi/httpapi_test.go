package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"wisp/services/gateway/internal/httpapi"
	"wisp/services/gateway/internal/live"
	"wisp/services/gateway/internal/relay"
	"wisp/services/gateway/internal/ws"
	"wisp/testkit"
)

// gateway is one gateway instance on a real listener and real NATS.
type gateway struct {
	URL string
	srv *httpapi.Server
	hub *relay.Hub
}

func startGateway(t *testing.T, ns *server.Server, backend httpapi.Backend, cfg httpapi.Config) *gateway {
	return startGatewayWith(t, ns, backend, cfg, ws.DefaultSettings, 20*time.Second)
}

// startGatewayWith runs a gateway with the given socket timers and
// presence refresh interval, wired as cmd/gateway wires it.
func startGatewayWith(t *testing.T, ns *server.Server, backend httpapi.Backend, cfg httpapi.Config, set ws.Settings, presenceEvery time.Duration) *gateway {
	t.Helper()
	return startGatewayOn(t, testkit.Connect(t, ns), backend, cfg, set, presenceEvery)
}

// startGatewayOn runs a gateway on the connection nc, wired as cmd/gateway
// wires it.
func startGatewayOn(t *testing.T, nc *nats.Conn, backend httpapi.Backend, cfg httpapi.Config, set ws.Settings, presenceEvery time.Duration) *gateway {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := live.Start(nc, backend, live.Options{Socket: set, PresenceInterval: presenceEvery}, log)
	if err != nil {
		t.Fatal(err)
	}
	hub := rt.Hub
	srv := httpapi.New(cfg, backend, rt.Realtime, log, httpapi.NewMetrics(prometheus.NewRegistry(), hub))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		rt.Stop()
	})
	return &gateway{URL: "http://" + ln.Addr().String(), srv: srv, hub: hub}
}

// world is one gateway over a fake backend.
func world(t *testing.T, cfg httpapi.Config) (*gateway, *fakeBackend, *server.Server) {
	ns := testkit.StartNATS(t)
	fb := newFakeBackend(testkit.Connect(t, ns))
	return startGateway(t, ns, fb, cfg), fb, ns
}

// browser is an HTTP client with its own cookie jar that does not follow
// redirects, so tests see them.
type browser struct {
	t      *testing.T
	c      *http.Client
	base   string
	origin string // sent as Origin on POST/DELETE when set
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, origin: base, c: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return v
}

func (b *browser) do(method, path string, body []byte, header map[string]string) response {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, bytes.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if b.origin != "" && (method == http.MethodPost || method == http.MethodDelete) {
		req.Header.Set("Origin", b.origin)
	}
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

func (b *browser) get(path string) response { return b.do(http.MethodGet, path, nil, nil) }

func (b *browser) createRoom() string {
	b.t.Helper()
	r := b.do(http.MethodPost, "/api/room/create", nil, nil)
	if r.status != 200 {
		b.t.Fatalf("create: %d %s", r.status, r.body)
	}
	id, _ := r.json(b.t)["roomId"].(string)
	return id
}

func (b *browser) join(id string) response {
	b.t.Helper()
	return b.get("/room/" + id)
}

func (b *browser) cookie(id string) *http.Cookie {
	u, _ := url.Parse(b.base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "wisp_"+id {
			return c
		}
	}
	return nil
}

func TestHomePageAndAssets(t *testing.T) {
	gw, _, _ := world(t, httpapi.Config{})
	b := newBrowser(t, gw.URL)
	r := b.get("/")
	if r.status != 200 || !strings.Contains(string(r.body), "private_chat") {
		t.Fatalf("home: %d", r.status)
	}
	csp := r.header.Get("Content-Security-Policy")
	if csp == "" || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("CSP %q", csp)
	}
	if r.header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatal("room links would leak through Referer")
	}
	if r := b.get("/static/app.css"); r.status != 200 || !strings.Contains(r.header.Get("Content-Type"), "css") {
		t.Fatalf("asset: %d %s", r.status, r.header.Get("Content-Type"))
	}
	if r := b.get("/static/room.js"); r.status != 200 || !strings.Contains(r.header.Get("Content-Type"), "javascript") {
		t.Fatalf("script: %d %s", r.status, r.header.Get("Content-Type"))
	}
}

// A browser gets the pages and assets compressed the way it asked, each
// form unpacking to the same bytes, with Vary and ETags that keep caches
// from mixing them up; an asset it already has is not sent again.
func TestPagesAndAssetsAreCompressedAsAsked(t *testing.T) {
	gw, _, _ := world(t, httpapi.Config{})
	b := newBrowser(t, gw.URL)
	plain := b.do(http.MethodGet, "/static/room.js", nil, map[string]string{"Accept-Encoding": "identity"})
	if plain.status != 200 || plain.header.Get("Content-Encoding") != "" || !strings.Contains(string(plain.body), "/api/realtime?") {
		t.Fatalf("identity: %d %q", plain.status, plain.header.Get("Content-Encoding"))
	}
	chromium := "gzip, deflate, br, zstd"
	for _, tc := range []struct{ accept, want string }{
		{chromium, "br"},
		{"gzip", "gzip"},
		{"br;q=0, gzip;q=0.5", "gzip"},
		{"deflate", ""},
	} {
		r := b.do(http.MethodGet, "/static/room.js", nil, map[string]string{"Accept-Encoding": tc.accept})
		if r.status != 200 || r.header.Get("Content-Encoding") != tc.want || !strings.Contains(r.header.Get("Vary"), "Accept-Encoding") {
			t.Fatalf("Accept-Encoding %q: %d, Content-Encoding %q, Vary %q", tc.accept, r.status, r.header.Get("Content-Encoding"), r.header.Get("Vary"))
		}
		if got := unpack(t, tc.want, r.body); !bytes.Equal(got, plain.body) {
			t.Errorf("Accept-Encoding %q: the body does not unpack to the script", tc.accept)
		}
		if tc.want != "" && len(r.body)*2 > len(plain.body) {
			t.Errorf("%s: %d bytes of %d", tc.want, len(r.body), len(plain.body))
		}
		if tc.want == "br" && r.header.Get("ETag") == plain.header.Get("ETag") {
			t.Errorf("brotli and identity share the ETag %s", plain.header.Get("ETag"))
		}
	}

	again := b.do(http.MethodGet, "/static/room.js", nil, map[string]string{"Accept-Encoding": chromium,
		"If-None-Match": b.do(http.MethodGet, "/static/room.js", nil, map[string]string{"Accept-Encoding": chromium}).header.Get("ETag")})
	if again.status != http.StatusNotModified || len(again.body) != 0 {
		t.Errorf("revalidation: %d with %d bytes, want 304 and none", again.status, len(again.body))
	}
	if r := b.do(http.MethodGet, "/static/room.js", nil, map[string]string{"Accept-Encoding": "gzip",
		"If-None-Match": plain.header.Get("ETag")}); r.status != 200 {
		t.Errorf("the identity form's ETag revalidated the gzip form: %d", r.status)
	}
	if r := b.do(http.MethodGet, "/static/fonts/jetbrains-mono-latin-400-normal.woff2", nil,
		map[string]string{"Accept-Encoding": chromium}); r.status != 200 || r.header.Get("Content-Encoding") != "" || r.header.Get("Content-Type") != "font/woff2" {
		t.Errorf("font: %d %q %q", r.status, r.header.Get("Content-Encoding"), r.header.Get("Content-Type"))
	}
	if r := b.do(http.MethodGet, "/static/missing.js", nil, nil); r.status != 404 {
		t.Errorf("missing asset: %d", r.status)
	}

	id := b.createRoom()
	page := b.do(http.MethodGet, "/room/"+id, nil, map[string]string{"Accept-Encoding": chromium})
	if page.status != 200 || page.header.Get("Content-Encoding") != "br" || page.header.Get("Cache-Control") != "no-store" ||
		!strings.Contains(string(unpack(t, "br", page.body)), "<html") || b.cookie(id) == nil {
		t.Fatalf("room page: %d %q %q", page.status, page.header.Get("Content-Encoding"), page.header.Get("Cache-Control"))
	}
}

// unpack undoes content coding enc ("" for none).
func unpack(t *testing.T, enc string, body []byte) []byte {
	t.Helper()
	var r io.Reader = bytes.NewReader(body)
	switch enc {
	case "br":
		r = brotli.NewReader(r)
	case "gzip":
		z, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = z
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("unpack %s: %v", enc, err)
	}
	return out
}

func TestJoinCookiesAndRedirects(t *testing.T) {
	gw, fb, _ := world(t, httpapi.Config{})
	alice, bob, carol := newBrowser(t, gw.URL), newBrowser(t, gw.URL), newBrowser(t, gw.URL)
	id := alice.createRoom()

	r := alice.join(id)
	if r.status != 200 || !strings.Contains(string(r.body), "<html") {
		t.Fatalf("join: %d", r.status)
	}
	set := r.header.Get("Set-Cookie")
	for _, want := range []string{"wisp_" + id + "=", "HttpOnly", "SameSite=Lax", "path=/"} {
		if !strings.Contains(strings.ToLower(set), strings.ToLower(want)) {
			t.Errorf("Set-Cookie %q lacks %s", set, want)
		}
	}
	if strings.Contains(strings.ToLower(set), "secure") {
		t.Error("Secure cookie over plain HTTP would never be sent back")
	}
	ck, err := http.ParseSetCookie(set)
	if err != nil || ck.MaxAge <= 0 || ck.MaxAge > 601 {
		t.Fatalf("Max-Age %d outlasts the 600 s room (%v)", ck.MaxAge, err)
	}
	if len(ck.Value) < 22 {
		t.Fatalf("token %q has under 128 bits", ck.Value)
	}
	if strings.Contains(string(r.body), ck.Value) {
		t.Fatal("token in the page body")
	}

	// Revisiting takes no new slot; a second member does; a third is turned away.
	alice.join(id)
	alice.join(id)
	if bob.join(id).status != 200 {
		t.Fatal("second member refused")
	}
	if fb.joinCount() != 2 {
		t.Fatalf("%d slots taken, want 2", fb.joinCount())
	}
	r = carol.join(id)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/?error=room-full" {
		t.Fatalf("third visitor: %d %s", r.status, r.header.Get("Location"))
	}
	if carol.cookie(id) != nil {
		t.Fatal("third visitor got a cookie")
	}
	if alice.join(id).status != 200 {
		t.Fatal("member locked out of a full room")
	}

	for _, path := range []string{"/room/V1StGXR8_Z5jdHi6B-myT", "/room/short", "/room/%2e%2e%2f"} {
		r := carol.get(path)
		if r.status != http.StatusSeeOther || r.header.Get("Location") != "/?error=room-not-found" {
			t.Errorf("%s: %d %s", path, r.status, r.header.Get("Location"))
		}
	}
	for _, path := range []string{"/room", "/room/a/b"} {
		if r := carol.get(path); r.status != http.StatusSeeOther || r.header.Get("Location") != "/" {
			t.Errorf("%s: %d %s", path, r.status, r.header.Get("Location"))
		}
	}
	// A link-preview HEAD takes no slot.
	dave := newBrowser(t, gw.URL)
	id2 := dave.createRoom()
	dave.do(http.MethodHead, "/room/"+id2, nil, nil)
	if dave.cookie(id2) != nil || fb.joinCount() != 2 {
		t.Fatal("HEAD took a slot")
	}
}

func TestTwoRoomsInOneCookieJar(t *testing.T) {
	gw, _, _ := world(t, httpapi.Config{})
	b := newBrowser(t, gw.URL)
	one, two := b.createRoom(), b.createRoom()
	b.join(one)
	b.join(two)
	for _, id := range []string{one, two} {
		r := b.do(http.MethodPost, "/api/messages?roomId="+id, []byte(`{"sender":"s","text":"in `+id+`"}`), nil)
		if r.status != 200 {
			t.Fatalf("send to %s: %d %s", id, r.status, r.body)
		}
	}
	for _, id := range []string{one, two} {
		r := b.get("/api/messages?roomId=" + id)
		msgs, _ := r.json(t)["messages"].([]any)
		if r.status != 200 || len(msgs) != 1 || msgs[0].(map[string]any)["text"] != "in "+id {
			t.Fatalf("room %s: %d %s", id, r.status, r.body)
		}
	}
}

func TestAPIStatusesAndErrors(t *testing.T) {
	gw, _, _ := world(t, httpapi.Config{})
	b, stranger := newBrowser(t, gw.URL), newBrowser(t, gw.URL)
	id := b.createRoom()
	b.join(id)
	big := `{"sender":"s","text":"` + strings.Repeat("x", 17<<10) + `"}`
	cases := []struct {
		name   string
		who    *browser
		method string
		path   string
		body   string
		status int
	}{
		{"ttl", b, "GET", "/api/room/ttl?roomId=" + id, "", 200},
		{"ttl without cookie", stranger, "GET", "/api/room/ttl?roomId=" + id, "", 401},
		{"ttl without roomId", b, "GET", "/api/room/ttl", "", 400},
		{"list", b, "GET", "/api/messages?roomId=" + id, "", 200},
		{"list bad after", b, "GET", "/api/messages?roomId=" + id + "&after=-1", "", 400},
		{"list after text", b, "GET", "/api/messages?roomId=" + id + "&after=x", "", 400},
		{"list without cookie", stranger, "GET", "/api/messages?roomId=" + id, "", 401},
		{"send", b, "POST", "/api/messages?roomId=" + id, `{"sender":"s","text":"hi"}`, 200},
		{"send invalid JSON", b, "POST", "/api/messages?roomId=" + id, `{"sender":`, 400},
		{"send wrong types", b, "POST", "/api/messages?roomId=" + id, `{"sender":1,"text":true}`, 400},
		{"send missing text", b, "POST", "/api/messages?roomId=" + id, `{"sender":"s"}`, 400},
		{"send empty text", b, "POST", "/api/messages?roomId=" + id, `{"sender":"s","text":" "}`, 400},
		{"send too large", b, "POST", "/api/messages?roomId=" + id, big, 413},
		{"send without roomId", b, "POST", "/api/messages", `{"sender":"s","text":"hi"}`, 400},
		{"send by stranger", stranger, "POST", "/api/messages?roomId=" + id, `{"sender":"s","text":"hi"}`, 401},
		{"destroy by stranger", stranger, "DELETE", "/api/room?roomId=" + id, "", 401},
		{"unknown api route", b, "GET", "/api/nope", "", 404},
		{"wrong method", b, "PUT", "/api/room/create", "", 404},
		{"destroy", b, "DELETE", "/api/room?roomId=" + id, "", 200},
		{"ttl after destroy", b, "GET", "/api/room/ttl?roomId=" + id, "", 401},
		{"send after destroy", b, "POST", "/api/messages?roomId=" + id, `{"sender":"s","text":"hi"}`, 401},
		{"destroy twice", b, "DELETE", "/api/room?roomId=" + id, "", 401},
	}
	for _, c := range cases {
		r := c.who.do(c.method, c.path, []byte(c.body), nil)
		if r.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.status, r.body, c.status)
			continue
		}
		if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: Content-Type %q", c.name, r.header.Get("Content-Type"))
		}
		body := r.json(t)
		if c.status >= 400 {
			if msg, _ := body["error"].(string); msg == "" {
				t.Errorf("%s: no error message in %s", c.name, r.body)
			}
			if c.status == 401 && body["error"] != "Unauthorized" {
				t.Errorf("%s: %s", c.name, r.body)
			}
		}
	}
}

func TestSendAndListPayloads(t *testing.T) {
	gw, _, _ := world(t, httpapi.Config{})
	alice, bob := newBrowser(t, gw.URL), newBrowser(t, gw.URL)
	id := alice.createRoom()
	alice.join(id)
	bob.join(id)
	r := alice.do("POST", "/api/messages?roomId="+id, []byte(`{"sender":"a","text":"one"}`), nil)
	msg, _ := r.json(t)["message"].(map[string]any)
	if msg["seq"] != float64(1) || msg["token"] == nil || msg["text"] != "one" || msg["roomId"] != id {
		t.Fatalf("send reply %s", r.body)
	}
	if tok := msg["token"].(string); tok == alice.cookie(id).Value {
		t.Fatal("reply carries the secret token")
	}
	bob.do("POST", "/api/messages?roomId="+id, []byte(`{"sender":"b","text":"two"}`), nil)
	list := func(who *browser, q string) []map[string]any {
		var v struct{ Messages []map[string]any }
		_ = json.Unmarshal(who.get("/api/messages?roomId="+id+q).body, &v)
		return v.Messages
	}
	a, b := list(alice, ""), list(bob, "")
	if len(a) != 2 || a[0]["token"] == nil || a[1]["token"] != nil || b[0]["token"] != nil || b[1]["token"] == nil {
		t.Fatalf("token marks: alice %v bob %v", a, b)
	}
	if later := list(bob, "&after=1"); len(later) != 1 || later[0]["seq"] != float64(2) {
		t.Fatalf("after=1: %v", later)
	}
}

func TestCrossSiteRequestsRefused(t *testing.T) {
	gw, _, _ := world(t, httpapi.Config{AllowedOrigins: []string{"https://app.example"}})
	b := newBrowser(t, gw.URL)
	id := b.createRoom()
	b.join(id)
	cases := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		status int
	}{
		{"own origin", "POST", "/api/room/create", nil, 200},
		{"foreign origin", "POST", "/api/room/create", map[string]string{"Origin": "https://evil.example"}, 403},
		{"allowed origin", "POST", "/api/room/create", map[string]string{"Origin": "https://app.example"}, 200},
		{"null origin", "POST", "/api/room/create", map[string]string{"Origin": "null"}, 403},
		{"same host other port", "POST", "/api/room/create", map[string]string{"Origin": "http://127.0.0.1:1"}, 403},
		{"no origin, cross-site fetch", "POST", "/api/room/create", map[string]string{"Origin": "", "Sec-Fetch-Site": "cross-site"}, 403},
		{"no headers (curl)", "POST", "/api/room/create", map[string]string{"Origin": ""}, 200},
		{"foreign send", "POST", "/api/messages?roomId=" + id, map[string]string{"Origin": "https://evil.example"}, 403},
		{"foreign delete", "DELETE", "/api/room?roomId=" + id, map[string]string{"Origin": "https://evil.example"}, 403},
	}
	for _, c := range cases {
		r := b.do(c.method, c.path, []byte(`{"sender":"s","text":"t"}`), c.hdr)
		if r.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.status, r.body, c.status)
		}
	}
	if r := b.get("/api/room/ttl?roomId=" + id); r.status != 200 {
		t.Fatal("the foreign DELETE destroyed the room")
	}
}

func TestRateLimits(t *testing.T) {
	gw, _, _ := world(t, httpapi.Config{RateLimits: true})
	b := newBrowser(t, gw.URL)
	var last response
	for i := 0; i < 25; i++ {
		last = b.do("POST", "/api/room/create", nil, nil)
		if last.status == http.StatusTooManyRequests {
			break
		}
	}
	if last.status != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" {
		t.Fatalf("no 429 with Retry-After after 25 creates: %d", last.status)
	}
	if last.json(t)["error"] == nil {
		t.Fatal("429 without a JSON error")
	}
}

func TestRateLimitsOff(t *testing.T) {
	gw, _, _ := world(t, httpapi.Config{RateLimits: false})
	b := newBrowser(t, gw.URL)
	for i := 0; i < 40; i++ {
		if r := b.do("POST", "/api/room/create", nil, nil); r.status != 200 {
			t.Fatalf("create %d: %d", i, r.status)
		}
	}
}

func TestParseOrigins(t *testing.T) {
	got, err := httpapi.ParseOrigins(" https://a.example , http://localhost:3000 ")
	if err != nil || len(got) != 2 || got[0] != "https://a.example" || got[1] != "http://localhost:3000" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"a.example", "ftp://x", "https://x/path", "https://"} {
		if _, err := httpapi.ParseOrigins(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
