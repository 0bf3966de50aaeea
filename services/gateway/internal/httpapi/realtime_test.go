package httpapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	fastws "github.com/fasthttp/websocket"
	"github.com/nats-io/nats-server/v2/server"

	"wisp/contract"
	"wisp/services/gateway/internal/httpapi"
	"wisp/testkit"
)

// dial opens the room's WebSocket as b would, from origin.
func (b *browser) dial(id, origin string) (*fastws.Conn, *http.Response, error) {
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	if c := b.cookie(id); c != nil {
		h.Set("Cookie", c.Name+"="+c.Value)
	}
	url := "ws" + strings.TrimPrefix(b.base, "http") + "/api/realtime?roomId=" + id
	return fastws.DefaultDialer.Dial(url, h)
}

func (b *browser) mustDial(id string) *fastws.Conn {
	b.t.Helper()
	ws, resp, err := b.dial(id, b.base)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		b.t.Fatalf("dial: %v (%d)", err, status)
	}
	b.t.Cleanup(func() { ws.Close() })
	// Every socket opens with the other member's presence.
	if f := readAnyFrame(b.t, ws); f.Event != contract.EventPresence {
		b.t.Fatalf("first frame %s %s, want chat.presence", f.Event, f.Data)
	}
	return ws
}

type frame struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// readFrame returns the next frame that is not a presence update (those
// come whenever the other member's sockets open and close).
func readFrame(t *testing.T, ws *fastws.Conn) frame {
	t.Helper()
	for {
		if f := readAnyFrame(t, ws); f.Event != contract.EventPresence {
			return f
		}
	}
}

func readAnyFrame(t *testing.T, ws *fastws.Conn) frame {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("frame %s: %v", data, err)
	}
	return f
}

func TestRealtimeUpgradeIsGuarded(t *testing.T) {
	gw, _, _ := world(t, httpapi.Config{})
	member, stranger := newBrowser(t, gw.URL), newBrowser(t, gw.URL)
	id := member.createRoom()
	member.join(id)
	cases := []struct {
		name   string
		who    *browser
		origin string
		status int
	}{
		{"no origin", member, "", 403},
		{"foreign origin", member, "https://evil.example", 403},
		{"no cookie", stranger, gw.URL, 401},
	}
	for _, c := range cases {
		_, resp, err := c.who.dial(id, c.origin)
		if err == nil || resp == nil || resp.StatusCode != c.status {
			got := 0
			if resp != nil {
				got = resp.StatusCode
			}
			t.Errorf("%s: upgraded or %d, want %d", c.name, got, c.status)
		}
	}
	if r := member.get("/api/realtime?roomId=" + id); r.status != http.StatusUpgradeRequired {
		t.Errorf("plain GET: %d", r.status)
	}
}

// TestRealtimeDeliversToBothMembersThenDestroy: both sockets get each
// message (without token) and chat.destroy, then are closed; the gateway
// drops its room subscription when they are gone.
func TestRealtimeDeliversToBothMembersThenDestroy(t *testing.T) {
	gw, _, ns := world(t, httpapi.Config{})
	alice, bob := newBrowser(t, gw.URL), newBrowser(t, gw.URL)
	id := alice.createRoom()
	alice.join(id)
	bob.join(id)
	subsBefore := feedSubs(t, ns, id)
	wa, wb := alice.mustDial(id), bob.mustDial(id)
	if got := feedSubs(t, ns, id); gw.hub.Rooms() != 1 || got != subsBefore+1 {
		t.Fatalf("want one room feed, got rooms=%d subs %d→%d", gw.hub.Rooms(), subsBefore, got)
	}

	alice.do("POST", "/api/messages?roomId="+id, []byte(`{"sender":"alice","text":"hi bob"}`), nil)
	for _, ws := range []*fastws.Conn{wa, wb} {
		f := readFrame(t, ws)
		var m map[string]any
		_ = json.Unmarshal(f.Data, &m)
		if f.Event != "chat.message" || m["text"] != "hi bob" || m["seq"] != float64(1) {
			t.Fatalf("frame %+v", f)
		}
		if _, ok := m["token"]; ok {
			t.Fatal("chat.message carries a token")
		}
	}
	bob.do("DELETE", "/api/room?roomId="+id, nil, nil)
	for _, ws := range []*fastws.Conn{wa, wb} {
		f := readFrame(t, ws)
		if f.Event != "chat.destroy" || !strings.Contains(string(f.Data), `"isDestroyed":true`) || !strings.Contains(string(f.Data), `"reason":"destroyed"`) {
			t.Fatalf("frame %+v", f)
		}
		_, _, err := ws.ReadMessage()
		var ce *fastws.CloseError
		if !errors.As(err, &ce) || ce.Code != fastws.CloseNormalClosure {
			t.Fatalf("socket not closed after chat.destroy: %v", err)
		}
	}
	testkit.Eventually(t, 3*time.Second, func() error {
		if got := feedSubs(t, ns, id); gw.hub.Rooms() != 0 || got != subsBefore {
			return fmt.Errorf("rooms=%d subs=%d", gw.hub.Rooms(), got)
		}
		return nil
	})
}

// feedSubs counts the subscriptions a room's message would reach; the
// server's total also moves with reply inboxes other clients open lazily.
func feedSubs(t *testing.T, ns *server.Server, roomID string) int {
	t.Helper()
	sz, err := ns.Subsz(&server.SubszOptions{Subscriptions: true, Test: contract.MessageSubject(roomID)})
	if err != nil {
		t.Fatal(err)
	}
	return sz.Total
}

// TestRealtimeAcrossTwoGateways: a message posted through one gateway
// reaches a member connected to another.
func TestRealtimeAcrossTwoGateways(t *testing.T) {
	ns := testkit.StartNATS(t)
	fb := newFakeBackend(testkit.Connect(t, ns))
	gw1 := startGateway(t, ns, fb, httpapi.Config{})
	gw2 := startGateway(t, ns, fb, httpapi.Config{})
	alice, bob := newBrowser(t, gw1.URL), newBrowser(t, gw2.URL)
	id := alice.createRoom()
	alice.join(id)
	bob.join(id)
	wa, wb := alice.mustDial(id), bob.mustDial(id)
	alice.do("POST", "/api/messages?roomId="+id, []byte(`{"sender":"a","text":"via gw1"}`), nil)
	bob.do("POST", "/api/messages?roomId="+id, []byte(`{"sender":"b","text":"via gw2"}`), nil)
	for _, ws := range []*fastws.Conn{wa, wb} {
		for _, want := range []string{"via gw1", "via gw2"} {
			if f := readFrame(t, ws); !strings.Contains(string(f.Data), want) {
				t.Fatalf("want %q, got %s", want, f.Data)
			}
		}
	}
}

// TestSlowReaderIsDisconnected: a member who stops reading is dropped while
// the other member keeps receiving everything.
func TestSlowReaderIsDisconnected(t *testing.T) {
	gw, _, ns := world(t, httpapi.Config{})
	alice, bob := newBrowser(t, gw.URL), newBrowser(t, gw.URL)
	id := alice.createRoom()
	alice.join(id)
	bob.join(id)
	wa := alice.mustDial(id)
	wb := bob.mustDial(id) // bob never reads until the end
	pub := testkit.Connect(t, ns)

	// Publish in batches no larger than half a client queue and let alice
	// drain each batch, so only bob — who reads nothing — can fall behind.
	const n, batch = 3000, 32
	payload := strings.Repeat("x", 16<<10)
	var got atomic.Int64
	go func() {
		for {
			_ = wa.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, _, err := wa.ReadMessage(); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	for i := 0; i < n; i++ {
		m := contract.Message{ID: fmt.Sprint(i), Seq: int64(i + 1), Sender: "s", Text: payload, RoomID: id}
		if err := pub.Publish(contract.MessageSubject(id), contract.MessageEvent(m)); err != nil {
			t.Fatal(err)
		}
		if (i+1)%batch == 0 || i == n-1 {
			sent := int64(i + 1)
			testkit.Eventually(t, 10*time.Second, func() error {
				if got.Load() < sent {
					return fmt.Errorf("alice has %d of %d", got.Load(), sent)
				}
				return nil
			})
		}
	}
	if gw.hub.Stats.Dropped.Load() == 0 {
		t.Fatal("slow reader was not dropped")
	}
	// Bob's socket ends (after whatever the kernel buffered): closed with
	// 1013 or cut off by the write deadline, never left hanging.
	_ = wb.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, _, err := wb.ReadMessage()
		if err == nil {
			continue
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			t.Fatal("the slow reader's socket was never closed")
		}
		// 1006: the connection ended without a close frame (the one sent
		// waited behind the unread frames until the write deadline).
		if code := closeCode(err); code != 0 && code != fastws.CloseTryAgainLater && code != fastws.CloseAbnormalClosure {
			t.Fatalf("slow reader closed with %d, want 1013 or cut off", code)
		}
		break
	}
}
