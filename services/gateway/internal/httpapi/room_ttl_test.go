package httpapi_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"wisp/services/gateway/internal/httpapi"
)

// TestCreateRoomLifetime: POST /api/room/create takes an optional
// {"ttl": seconds}; no body (the original client) or no ttl asks for the
// default (0 to the rooms service); a ttl that is not a positive whole number
// is refused here, one out of bounds by the rooms service, both as 400 JSON.
func TestCreateRoomLifetime(t *testing.T) {
	gw, fb, _ := world(t, httpapi.Config{})
	b := newBrowser(t, gw.URL)
	for _, tc := range []struct {
		body   string
		status int
		asked  int64 // what reached the rooms service; -1 nothing
		err    string
	}{
		{"", 200, 0, ""},
		{"  ", 200, 0, ""},
		{`{}`, 200, 0, ""},
		{`{"ttl": null}`, 200, 0, ""},
		{`{"ttl": 60}`, 200, 60, ""},
		{`{"ttl": 300, "other": true}`, 200, 300, ""},
		{`{"ttl": 3600}`, 200, 3600, ""},
		{`{"ttl": 6e2}`, 400, -1, "ttl must be a whole number of seconds"},
		{`{"ttl": 59}`, 400, 59, "ttl must be between 60 and 3600 seconds"},
		{`{"ttl": 3601}`, 400, 3601, "ttl must be between 60 and 3600 seconds"},
		{`{"ttl": 0}`, 400, -1, "ttl must be a whole number of seconds"},
		{`{"ttl": -60}`, 400, -1, "ttl must be a whole number of seconds"},
		{`{"ttl": 90.5}`, 400, -1, "ttl must be a whole number of seconds"},
		{`{"ttl": "600"}`, 400, -1, "ttl must be a whole number of seconds"},
		{`{"ttl": 99999999999999999999}`, 400, -1, "ttl must be a whole number of seconds"},
		{`[600]`, 400, -1, "the body must be a JSON object"},
		{`ttl=600`, 400, -1, "the body must be a JSON object"},
	} {
		fb.mu.Lock()
		before := len(fb.asked)
		fb.mu.Unlock()
		r := b.do(http.MethodPost, "/api/room/create", []byte(tc.body), map[string]string{"Content-Type": "application/json"})
		if r.status != tc.status {
			t.Errorf("body %q: %d %s, want %d", tc.body, r.status, r.body, tc.status)
			continue
		}
		got := r.json(t)
		if tc.status == 200 {
			if id, _ := got["roomId"].(string); id == "" || len(got) != 1 {
				t.Errorf("body %q: %s, want only {roomId}", tc.body, r.body)
			}
		} else if got["error"] != tc.err {
			t.Errorf("body %q: %s, want error %q", tc.body, r.body, tc.err)
		}
		fb.mu.Lock()
		asked := slices.Clone(fb.asked[before:])
		fb.mu.Unlock()
		switch {
		case tc.asked < 0 && len(asked) != 0:
			t.Errorf("body %q reached the rooms service with %v", tc.body, asked)
		case tc.asked >= 0 && (len(asked) != 1 || asked[0] != tc.asked):
			t.Errorf("body %q asked the rooms service for %v, want [%d]", tc.body, asked, tc.asked)
		}
	}
}

// TestCreateEndToEndRoom: {"e2e": true} asks the rooms service for an
// end-to-end room; false, null or no e2e for a plain one; anything else is
// a 400 that creates nothing.
func TestCreateEndToEndRoom(t *testing.T) {
	gw, fb, _ := world(t, httpapi.Config{})
	b := newBrowser(t, gw.URL)
	for _, tc := range []struct {
		body   string
		status int
		e2e    bool
	}{
		{`{"e2e": true}`, 200, true},
		{`{"e2e": true, "ttl": 300}`, 200, true},
		{`{"e2e": false}`, 200, false},
		{`{"e2e": null}`, 200, false},
		{``, 200, false},
		{`{"e2e": "true"}`, 400, false},
		{`{"e2e": 1}`, 400, false},
	} {
		fb.mu.Lock()
		before := len(fb.e2e)
		fb.mu.Unlock()
		r := b.do(http.MethodPost, "/api/room/create", []byte(tc.body), map[string]string{"Content-Type": "application/json"})
		fb.mu.Lock()
		asked := slices.Clone(fb.e2e[before:])
		fb.mu.Unlock()
		switch {
		case r.status != tc.status:
			t.Errorf("body %q: %d %s, want %d", tc.body, r.status, r.body, tc.status)
		case tc.status == 200 && (len(asked) != 1 || asked[0] != tc.e2e):
			t.Errorf("body %q asked for e2e %v, want [%v]", tc.body, asked, tc.e2e)
		case tc.status != 200 && (len(asked) != 0 || r.json(t)["error"] != "e2e must be true or false"):
			t.Errorf("body %q: %s, asked %v", tc.body, r.body, asked)
		}
	}
}

// TestLeaveDropsTheCookie: POST /api/room/leave answers {} and deletes the
// room's cookie, whether or not the room still lives.
func TestLeaveDropsTheCookie(t *testing.T) {
	gw, _, _ := world(t, httpapi.Config{})
	b := newBrowser(t, gw.URL)
	id := b.createRoom()
	b.join(id)
	if b.cookie(id) == nil {
		t.Fatal("no cookie after joining")
	}
	r := b.do(http.MethodPost, "/api/room/leave?roomId="+id, nil, nil)
	if r.status != 200 || string(r.body) != "{}" || !strings.Contains(r.header.Get("Set-Cookie"), "wisp_"+id+"=;") {
		t.Fatalf("leave: %d %s %q", r.status, r.body, r.header.Get("Set-Cookie"))
	}
	if b.cookie(id) != nil {
		t.Fatal("the cookie is still there")
	}
	if r := b.do(http.MethodPost, "/api/room/leave?roomId=x", nil, nil); r.status != 400 {
		t.Fatalf("leave with a bad id: %d", r.status)
	}
}
