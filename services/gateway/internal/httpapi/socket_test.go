package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	fastws "github.com/fasthttp/websocket"

	"wisp/contract"
	"wisp/services/gateway/internal/httpapi"
	"wisp/services/gateway/internal/ws"
	"wisp/testkit"
)

// socketPair is one member's socket in a fresh room.
func socketPair(t *testing.T) (*gateway, *browser, string, *fastws.Conn) {
	gw, _, _ := world(t, httpapi.Config{})
	alice := newBrowser(t, gw.URL)
	id := alice.createRoom()
	alice.join(id)
	return gw, alice, id, alice.mustDial(id)
}

// readClose reads past any frames to the server's close and returns its
// code (0 when the connection ended without one, or nothing came in 5 s).
func readClose(t *testing.T, ws *fastws.Conn) int {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			return closeCode(err)
		}
	}
}

func closeCode(err error) int {
	var ce *fastws.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}

// TestSocketAnswersPingsAndKeepsDelivering: a client ping gets its pong
// with the same payload; frames the client sends (even fragmented) are
// read and dropped without ending the socket.
func TestSocketAnswersPingsAndKeepsDelivering(t *testing.T) {
	_, alice, id, ws := socketPair(t)
	pong := make(chan string, 1)
	ws.SetPongHandler(func(p string) error { pong <- p; return nil })
	if err := ws.WriteControl(fastws.PingMessage, []byte("are you there"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	w, err := ws.NextWriter(fastws.TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	// A fragmented message: the writer sends several frames.
	for _, part := range []string{`{"type":"typing",`, `"pad":"` + strings.Repeat("y", 300), `"}`} {
		_, _ = w.Write([]byte(part))
	}
	_ = w.Close()
	alice.do("POST", "/api/messages?roomId="+id, []byte(`{"sender":"a","text":"still here"}`), nil)
	// Reading runs the pong handler for a pong that came before the message;
	// one that comes after it needs one more read.
	if f := readFrame(t, ws); !strings.Contains(string(f.Data), "still here") {
		t.Fatalf("frame %s", f.Data)
	}
	if len(pong) == 0 {
		_ = ws.SetReadDeadline(time.Now().Add(time.Second))
		_, _, _ = ws.ReadMessage()
	}
	select {
	case p := <-pong:
		if p != "are you there" {
			t.Fatalf("pong %q", p)
		}
	default:
		t.Fatal("no pong")
	}
}

// TestSocketClosedByClient: the client's close is answered with its code
// and the gateway lets the room go.
func TestSocketClosedByClient(t *testing.T) {
	gw, _, _, ws := socketPair(t)
	msg := fastws.FormatCloseMessage(fastws.CloseNormalClosure, "bye")
	if err := ws.WriteControl(fastws.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if code := readClose(t, ws); code != fastws.CloseNormalClosure {
		t.Fatalf("close answered with %d", code)
	}
	testkit.Eventually(t, 3*time.Second, func() error {
		if n := gw.hub.Connections(); n != 0 {
			return fmt.Errorf("%d connections left", n)
		}
		return nil
	})
}

// TestSocketReadLimit: a message over the read limit ends the socket with
// 1009, even when it comes in fragments.
func TestSocketReadLimit(t *testing.T) {
	for _, fragments := range []int{1, 5} {
		t.Run(fmt.Sprint(fragments), func(t *testing.T) {
			_, _, _, ws := socketPair(t)
			w, err := ws.NextWriter(fastws.TextMessage)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = w.Write([]byte(`{"type":"typing","pad":"`))
			for range fragments {
				_, _ = w.Write([]byte(strings.Repeat("z", 17000/fragments)))
			}
			_, _ = w.Write([]byte(`"}`))
			_ = w.Close()
			if code := readClose(t, ws); code != fastws.CloseMessageTooBig {
				t.Fatalf("oversized message closed with %d", code)
			}
		})
	}
}

// TestSocketGoingAwayOnShutdown: shutdown sends every socket a going-away
// close and waits for them.
func TestSocketGoingAwayOnShutdown(t *testing.T) {
	gw, _, _, ws := socketPair(t)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- gw.srv.Shutdown(ctx)
	}()
	if code := readClose(t, ws); code != fastws.CloseGoingAway {
		t.Fatalf("on shutdown: %d", code)
	}
	_ = ws.Close()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// TestManySocketsEachGetTheirRoom: with many rooms upgraded one after
// another (request buffers reused between them), every socket receives its
// own room's message and no other.
func TestManySocketsEachGetTheirRoom(t *testing.T) {
	gw, _, _ := world(t, httpapi.Config{})
	type room struct {
		id string
		b  *browser
		ws *fastws.Conn
	}
	var rooms []room
	for range 40 {
		b := newBrowser(t, gw.URL)
		id := b.createRoom()
		b.join(id)
		rooms = append(rooms, room{id, b, b.mustDial(id)})
	}
	if gw.hub.Rooms() != len(rooms) {
		t.Fatalf("hub has %d rooms for %d sockets", gw.hub.Rooms(), len(rooms))
	}
	for i, r := range rooms {
		r.b.do("POST", "/api/messages?roomId="+r.id, []byte(fmt.Sprintf(`{"sender":"a","text":"room %d"}`, i)), nil)
	}
	for i, r := range rooms {
		if f := readFrame(t, r.ws); !strings.Contains(string(f.Data), fmt.Sprintf(`"room %d"`, i)) {
			t.Fatalf("room %d got %s", i, f.Data)
		}
	}
}

// TestPausedReaderGetsEveryFrameIntact: a member who stops reading long
// enough for the send buffers to fill (but not 64 frames behind) gets every
// frame, whole and in order, once they read again — frames a non-blocking
// write could not finish are completed before any other.
func TestPausedReaderGetsEveryFrameIntact(t *testing.T) {
	gw, _, ns := world(t, httpapi.Config{})
	alice := newBrowser(t, gw.URL)
	id := alice.createRoom()
	alice.join(id)
	ws := alice.mustDial(id)
	pub := testkit.Connect(t, ns)
	const n = 48
	payload := strings.Repeat("p", 200<<10)
	for i := range n {
		m := contract.Message{ID: fmt.Sprint(i), Seq: int64(i + 1), Sender: "s", Text: payload, RoomID: id}
		if err := pub.Publish(contract.MessageSubject(id), contract.MessageEvent(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	// Every frame is queued (and a non-blocking write tried for it) before
	// the reader starts: 9.6 MB cannot fit the socket buffers, so some write
	// came back short and the rest went through the writer goroutine.
	testkit.Eventually(t, 5*time.Second, func() error {
		if got := gw.hub.Stats.Relayed.Load(); got < n {
			return fmt.Errorf("%d frames relayed", got)
		}
		return nil
	})
	for i := range n {
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("frame %d: %v (dropped %d)", i, err, gw.hub.Stats.Dropped.Load())
		}
		var f struct {
			Data contract.Message `json:"data"`
		}
		if err := json.Unmarshal(data, &f); err != nil || f.Data.Seq != int64(i+1) || f.Data.Text != payload {
			t.Fatalf("frame %d: seq %d, %d bytes of text, %v", i, f.Data.Seq, len(f.Data.Text), err)
		}
	}
}

// TestAbandonedUpgradesGiveTheirPlaceBack: a browser that sends the
// upgrade and drops the connection at once (its 101 may never be written,
// or the socket starts on a dead connection) leaves no client in the room:
// within the handshake timeout every place is given back, wave after wave.
func TestAbandonedUpgradesGiveTheirPlaceBack(t *testing.T) {
	gw, alice, id, ws := socketPair(t)
	_ = ws.Close()
	testkit.Eventually(t, 3*time.Second, func() error {
		if n := gw.hub.Connections(); n != 0 {
			return fmt.Errorf("%d connections left", n)
		}
		return nil
	})
	u, err := url.Parse(gw.URL)
	if err != nil {
		t.Fatal(err)
	}
	ck := alice.cookie(id)
	req := "GET /api/realtime?roomId=" + id + " HTTP/1.1\r\nHost: " + u.Host + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Version: 13\r\nOrigin: " + gw.URL + "\r\nCookie: " + ck.Name + "=" + ck.Value + "\r\n\r\n"
	// Two waves, so the 5 s handshake timeout runs out twice.
	for range 2 {
		for i := range 10 {
			conn, err := net.Dial("tcp", u.Host)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(conn, req); err != nil {
				t.Fatal(err)
			}
			// Half of them reset the connection at once, half after the server
			// had a moment to take the upgrade in.
			if i%2 == 1 {
				time.Sleep(20 * time.Millisecond)
			}
			_ = conn.(*net.TCPConn).SetLinger(0)
			_ = conn.Close()
		}
		testkit.Eventually(t, 10*time.Second, func() error {
			if n := gw.hub.Connections(); n != 0 {
				return fmt.Errorf("%d of 10 abandoned upgrades still hold a place in the room", n)
			}
			return nil
		})
	}
	// The room is still theirs: a proper socket opens and is counted.
	again := alice.mustDial(id)
	defer again.Close()
	testkit.Eventually(t, 3*time.Second, func() error {
		if n := gw.hub.Connections(); n != 1 {
			return fmt.Errorf("%d connections, want the new socket's", n)
		}
		return nil
	})
}

// TestSilentPeerIsClosedAfterPongWait: a peer that answers no ping and
// sends nothing is dropped once PongWait passes (and no sooner than its
// pings were due); its place in the room is given back.
func TestSilentPeerIsClosedAfterPongWait(t *testing.T) {
	set := ws.Settings{PingInterval: 200 * time.Millisecond, PongWait: 700 * time.Millisecond, WriteWait: 300 * time.Millisecond, ReadLimit: 16 << 10}
	ns := testkit.StartNATS(t)
	gw := startGatewayWith(t, ns, newFakeBackend(testkit.Connect(t, ns)), httpapi.Config{}, set, time.Second)
	alice := newBrowser(t, gw.URL)
	id := alice.createRoom()
	alice.join(id)
	c := alice.mustDial(id)
	var pings atomic.Int32
	c.SetPingHandler(func(string) error { pings.Add(1); return nil }) // no pong
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
	}
	took := time.Since(start)
	if took < set.PongWait || took > set.PongWait+2*time.Second {
		t.Fatalf("silent peer dropped after %v; want just past the %v pong wait", took, set.PongWait)
	}
	if pings.Load() < 2 {
		t.Fatalf("%d pings before the drop", pings.Load())
	}
	testkit.Eventually(t, 3*time.Second, func() error {
		if n := gw.hub.Connections(); n != 0 {
			return fmt.Errorf("%d connections left", n)
		}
		return nil
	})
}
