package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"wisp/contract"
	"wisp/stack/client"
)

// heard is what one member's socket received until the room ended.
type heard struct {
	texts   map[string]int
	acks    map[string]contract.Message
	destroy bool
	err     error
	pings   atomic.Int32
	// online is the other member's presence as last told; wentOffline counts
	// the times it was told offline after being online, before the end.
	online, everOnline bool
	wentOffline        int
}

// listen reads every frame (presence too) until chat.destroy and its close, answering the
// server's pings as a browser does (and counting them).
func listen(ws *client.Socket, h *heard, done chan<- struct{}) {
	defer close(done)
	h.texts, h.acks = map[string]int{}, map[string]contract.Message{}
	ws.SetPingHandler(func(p string) error {
		h.pings.Add(1)
		return ws.WriteControl(websocket.PongMessage, []byte(p), time.Now().Add(time.Second))
	})
	for {
		f, err := ws.NextAny(2 * time.Minute)
		if err != nil {
			if !h.destroy {
				h.err = err
			} else if ce := (*websocket.CloseError)(nil); !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
				h.err = fmt.Errorf("after chat.destroy: %w", err)
			}
			return
		}
		switch f.Event {
		case contract.EventMessage:
			m, _ := f.Message()
			h.texts[m.Text]++
		case "ack":
			a, _ := f.Ack()
			h.acks[a.ClientID] = a.Message
		case "error":
			a, _ := f.Ack()
			h.err = fmt.Errorf("send %s failed: %d %s", a.ClientID, a.Status, a.Error)
		case contract.EventPresence:
			var p contract.PresenceData
			if err := json.Unmarshal(f.Data, &p); err != nil {
				h.err = fmt.Errorf("presence frame %s: %w", f.Data, err)
			}
			if h.online && !p.Online && !h.destroy {
				h.wentOffline++
			}
			h.online = p.Online
			h.everOnline = h.everOnline || p.Online
		case contract.EventDestroy:
			h.destroy = true
		}
	}
}

// TestSocketsOutlivePings holds two members' sockets, on two gateways, for
// more than three ping intervals while they talk — one over its socket,
// the other by POST — and checks that every message, every ack and the
// final chat.destroy arrive on the sockets first opened: no reconnect, no
// gap-fill; each sees the other online throughout (the presence leases are
// refreshed). Once with the timers shortened (several write and pong
// deadlines and presence leases pass too), once at their real values (25 s
// pings, 20 s presence refreshes: a 125 s hold outlives the 60 s pong wait
// and presence lease twice).
func TestSocketsOutlivePings(t *testing.T) {
	for _, c := range []struct {
		name       string
		env        map[string]string
		ping, hold time.Duration
		sendEvery  time.Duration
		long       bool
	}{
		{name: "short timers", ping: 400 * time.Millisecond, hold: 4 * time.Second, sendEvery: 100 * time.Millisecond,
			env: map[string]string{"WS_PING_INTERVAL": "400ms", "WS_PONG_WAIT": "1200ms", "WS_WRITE_WAIT": "300ms", "PRESENCE_INTERVAL": "300ms"}},
		// 125 s: more than twice the 60 s pong wait and presence lease.
		{name: "real timers", ping: 25 * time.Second, hold: 125 * time.Second, sendEvery: time.Second, long: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.long && testing.Short() {
				t.Skip("runs 125 s")
			}
			t.Parallel()
			s := startStack(t, 2, c.env)
			gws := s.Gateways()
			ctx := context.Background()
			p := openRoom(t, ctx, gws[0], gws[1])
			var ha, hb heard
			da, db := make(chan struct{}), make(chan struct{})
			go listen(p.wsA, &ha, da)
			go listen(p.wsB, &hb, db)

			sent := 0
			start := time.Now()
			for time.Since(start) < c.hold {
				text := fmt.Sprintf("m%d", sent)
				if sent%2 == 0 {
					if err := p.wsA.SendFrame(fmt.Sprintf("c%d", sent), "alice", text); err != nil {
						t.Fatalf("alice's socket, %s in: %v", time.Since(start), err)
					}
				} else if _, err := p.b.Send(ctx, p.id, "bob", text); err != nil {
					t.Fatalf("bob's POST, %s in: %v", time.Since(start), err)
				}
				sent++
				time.Sleep(c.sendEvery)
			}
			time.Sleep(500 * time.Millisecond) // the last messages on their way
			if err := p.a.Destroy(ctx, p.id); err != nil {
				t.Fatal(err)
			}
			for who, w := range map[string]chan struct{}{"alice": da, "bob": db} {
				select {
				case <-w:
				case <-time.After(10 * time.Second):
					t.Fatalf("%s's socket never ended", who)
				}
			}
			for who, h := range map[string]*heard{"alice": &ha, "bob": &hb} {
				if h.err != nil {
					t.Errorf("%s: %v", who, h.err)
				}
				if !h.destroy {
					t.Errorf("%s never got chat.destroy", who)
				}
				if len(h.texts) != sent {
					t.Errorf("%s got %d of %d messages", who, len(h.texts), sent)
				}
				for text, n := range h.texts {
					if n != 1 {
						t.Errorf("%s got %s %d times", who, text, n)
					}
				}
				if !h.everOnline {
					t.Errorf("%s never saw the other member online", who)
				}
				if h.wentOffline > 0 {
					t.Errorf("%s was told %d times that the other member went offline, both sockets open throughout", who, h.wentOffline)
				}
				if want := int32(c.hold / c.ping); h.pings.Load() < want-1 {
					t.Errorf("%s's socket was pinged %d times in %s", who, h.pings.Load(), c.hold)
				}
			}
			if want := (sent + 1) / 2; len(ha.acks) != want {
				t.Errorf("alice got %d acks for %d sends", len(ha.acks), want)
			}
			t.Logf("%d messages over %s, %d and %d pings", sent, c.hold, ha.pings.Load(), hb.pings.Load())
		})
	}
}
