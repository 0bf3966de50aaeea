package httpapi_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"wisp/contract"
	"wisp/services/gateway/internal/httpapi"
	"wisp/services/gateway/internal/ws"
	"wisp/testkit"
)

// TestNATSRestartLosesNothing: while NATS is down, messages are stored
// (their events are lost) and a room is destroyed (its chat.destroy is
// lost). Once NATS is back, the gateway catches its sockets up: every
// stored message and the room's end arrive on the sockets opened before,
// with no later traffic to reveal the gap.
func TestNATSRestartLosesNothing(t *testing.T) {
	port, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := testkit.LaunchNATS(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown() })
	url := ns.ClientURL()
	connect := func() *nats.Conn {
		// Publishes while disconnected fail instead of waiting in a buffer:
		// the events of the outage are really lost.
		nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.ReconnectBufSize(-1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	fb := newFakeBackend(connect())
	gwConn := connect()
	gw := startGatewayOn(t, gwConn, fb, httpapi.Config{}, ws.DefaultSettings, time.Second)
	alice, bob := newBrowser(t, gw.URL), newBrowser(t, gw.URL)
	talk, ending := alice.createRoom(), alice.createRoom()
	for _, id := range []string{talk, ending} {
		alice.join(id)
		bob.join(id)
	}
	wb, wEnd := bob.mustDial(talk), bob.mustDial(ending)
	alice.do("POST", "/api/messages?roomId="+talk, []byte(`{"sender":"a","text":"before"}`), nil)
	if f := readFrame(t, wb); !strings.Contains(string(f.Data), "before") {
		t.Fatalf("frame %s", f.Data)
	}

	ns.Shutdown()
	testkit.Eventually(t, 5*time.Second, func() error {
		if gwConn.IsConnected() {
			return fmt.Errorf("gateway still connected")
		}
		return nil
	})
	for i := range 3 {
		if r := alice.do("POST", "/api/messages?roomId="+talk, fmt.Appendf(nil, `{"sender":"a","text":"during %d"}`, i), nil); r.status != 200 {
			t.Fatalf("send during the outage: %d %s", r.status, r.body)
		}
	}
	if r := alice.do("DELETE", "/api/room?roomId="+ending, nil, nil); r.status != 200 {
		t.Fatalf("destroy during the outage: %d", r.status)
	}
	if ns, err = testkit.LaunchNATS(port); err != nil {
		t.Fatal(err)
	}

	for i := range 3 {
		f := readFrame(t, wb)
		if f.Event != contract.EventMessage || !strings.Contains(string(f.Data), fmt.Sprintf("during %d", i)) {
			t.Fatalf("after the outage: %s %s, want during %d", f.Event, f.Data, i)
		}
	}
	if f := readFrame(t, wEnd); f.Event != contract.EventDestroy {
		t.Fatalf("the room destroyed during the outage: %s %s", f.Event, f.Data)
	}
}
