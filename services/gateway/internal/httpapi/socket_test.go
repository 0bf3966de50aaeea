package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	fastws "github.com/fasthttp/websocket"

	"wisp/contract"
	"wisp/services/gateway/internal/httpapi"
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
	for range 3 { // a fragmented message: the writer sends several frames
		_, _ = w.Write([]byte(strings.Repeat("y", 300)))
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
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); closeCode(err) != fastws.CloseNormalClosure {
		t.Fatalf("close answered with %v", err)
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
			for range fragments {
				_, _ = w.Write([]byte(strings.Repeat("z", 5000/fragments)))
			}
			_ = w.Close()
			_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := ws.ReadMessage(); closeCode(err) != fastws.CloseMessageTooBig {
				t.Fatalf("oversized message: %v", err)
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
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); closeCode(err) != fastws.CloseGoingAway {
		t.Fatalf("on shutdown: %v", err)
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
	time.Sleep(500 * time.Millisecond) // the gateway fills the buffers and waits
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
