package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"wisp/stack/chaos"
)

// TestFaultSuite runs steady traffic — rooms of two members, one on each
// gateway, members that reconnect and gap-fill like the web UI, rooms that
// expire or are destroyed and are replaced — on the real topology (two of
// each service, nats-server and redis-server as processes), and breaks one
// part at a time: NATS killed and restarted, Redis stalled, each service's
// replica killed and restarted, Redis restarted empty. It prints acked /
// delivered / lost / duplicated / recovery per fault and wants no
// acknowledged message lost, none stored twice, and every member told of
// every room's end. CHAOS=full (make chaos) runs the long version.
func TestFaultSuite(t *testing.T) {
	full := os.Getenv("CHAOS") == "full"
	opt := chaos.Options{Rooms: 10, SendEvery: 300 * time.Millisecond, RoomTTL: 15 * time.Second, DestroyShare: 0.3}
	settle, down := 5*time.Second, time.Second
	if full {
		opt = chaos.Options{Rooms: 50, SendEvery: 500 * time.Millisecond, RoomTTL: 40 * time.Second, DestroyShare: 0.3}
		settle, down = 12*time.Second, 3*time.Second
	}
	s := startStack(t, 2, map[string]string{"ROOM_TTL": opt.RoomTTL.String(), "RATE_LIMITS": "off"})
	load, err := chaos.Start(s, opt)
	if err != nil {
		t.Fatal(err)
	}
	faults := []chaos.Fault{
		chaos.KillNATS(down + time.Second),
		chaos.StallRedis(down + time.Second),
		chaos.KillService("messages", down),
		chaos.KillService("rooms", down),
		chaos.KillService("expiry", down),
		chaos.KillService("gateway", down),
	}
	if full { // each again, the other replica this time
		faults = append(faults, faults...)
	}
	faults = append(faults, chaos.WipeRedis()) // last: it ends every room
	windows := chaos.Run(context.Background(), s, load, settle, faults...)
	load.Stop(30 * time.Second)
	figs := chaos.Account(load, windows)

	var out strings.Builder
	if err := chaos.Print(&out, figs); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rooms of 2 members, a send every %v each, rooms live %v:\n%s", opt.Rooms, opt.SendEvery, opt.RoomTTL, out.String())
	total := chaos.Totals(figs)
	for _, w := range windows {
		if w.Err != nil {
			t.Errorf("%s: %v", w.Name, w.Err)
		}
	}
	if total.Acked == 0 || total.Ends == 0 {
		t.Fatalf("no traffic: %d acked, %d rooms ended", total.Acked, total.Ends)
	}
	if total.Lost != 0 || total.Duplicated != 0 || total.NotTold != 0 {
		t.Fatalf("%d acknowledged messages lost, %d stored twice, %d members not told of their room's end", total.Lost, total.Duplicated, total.NotTold)
	}
}
