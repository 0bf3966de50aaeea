package ws

import (
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	gws "github.com/gobwas/ws"
)

// emptyOutbox has nothing to write.
type emptyOutbox struct{}

func (emptyOutbox) Next() (*Frame, bool)              { return nil, false }
func (emptyOutbox) Queued() int                       { return 0 }
func (emptyOutbox) Kicked() bool                      { return false }
func (emptyOutbox) CloseStatus() (StatusCode, string) { return 0, "" }

// peers opens n sockets over loopback TCP; it returns the client ends,
// the server's sockets, and counters of texts received and sockets ended.
func peers(t *testing.T, n int, handle time.Duration) (clients []net.Conn, socks []*Socket, texts, ended *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	reg := NewRegistry(DefaultSettings)
	texts, ended = new(atomic.Int64), new(atomic.Int64)
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		k := NewSocket(emptyOutbox{}, Handler{
			OnText:  func([]byte) (StatusCode, string) { time.Sleep(handle); texts.Add(1); return 0, "" },
			OnClose: func() { ended.Add(1) },
		})
		if err := reg.Start(k, s); err != nil {
			t.Fatal(err)
		}
		clients, socks = append(clients, c), append(socks, k)
	}
	return clients, socks, texts, ended
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !ok(); {
		if time.Now().After(end) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestIdleSocketsKeepNoGoroutine: a quiet socket is parked with the poller
// (no goroutine, so no stack, per idle socket), yet every text its peer
// sends is read, and a peer that hangs up, a connection the server gives
// up on and a close nobody answers all end their socket.
func TestIdleSocketsKeepNoGoroutine(t *testing.T) {
	const n = 200
	base := runtime.NumGoroutine()
	clients, socks, texts, ended := peers(t, n, 0)
	eventually(t, "idle sockets park", func() bool { return runtime.NumGoroutine() < base+n/10 })

	// Each peer in turn sends three texts, as chat traffic spreads out:
	// the reader goroutines are as many as the turns at once, not sockets.
	for i, c := range clients {
		for range 3 {
			_ = gws.WriteFrame(c, gws.MaskFrame(gws.NewTextFrame([]byte("hello"))))
		}
		eventually(t, "the texts read", func() bool { return texts.Load() == int64(3*(i+1)) })
	}
	if g := runtime.NumGoroutine(); g >= base+n/10 {
		t.Fatalf("%d goroutines for %d sockets after they all talked, %d before", g, n, base)
	}

	_ = clients[0].Close()           // the peer hangs up
	socks[1].fail()                  // the server gives up on the connection
	socks[2].Close(StatusNormal, "") // and a close the peer never answers
	eventually(t, "hang-up and failure end their sockets", func() bool { return ended.Load() >= 2 })
	// …ends once the wait for the peer's close and the linger ran out
	// (2 × closeLinger; eventually allows 10 s).
	eventually(t, "the unanswered close ends its socket", func() bool { return ended.Load() == 3 })
}
