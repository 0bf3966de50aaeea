package presence

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"wisp/contract"
)

// net is a fake NATS for several trackers: what one publishes, every
// tracker hears (its own announcements included, as NATS echoes them).
type net struct {
	mu        sync.Mutex
	trackers  []*Tracker
	sent      []contract.Presence
	refreshes []contract.PresenceRefresh
}

func (n *net) PublishRefresh(r contract.PresenceRefresh) error {
	n.mu.Lock()
	n.refreshes = append(n.refreshes, r)
	ts := append([]*Tracker(nil), n.trackers...)
	n.mu.Unlock()
	data, _ := json.Marshal(r)
	for _, t := range ts {
		t.HeardRefresh(r.Gateway, data)
	}
	return nil
}

func (n *net) PublishPresence(roomID string, p contract.Presence) error {
	n.mu.Lock()
	n.sent = append(n.sent, p)
	ts := append([]*Tracker(nil), n.trackers...)
	n.mu.Unlock()
	data, _ := json.Marshal(p)
	for _, t := range ts {
		t.Heard(roomID, data)
	}
	return nil
}

// inbox records the presence frames each member's sockets received.
type inbox struct {
	mu  sync.Mutex
	got map[string][]bool
}

func (b *inbox) deliver(_ string, frame []byte, member string) {
	var f struct {
		Data contract.PresenceData `json:"data"`
	}
	_ = json.Unmarshal(frame, &f)
	b.mu.Lock()
	b.got[member] = append(b.got[member], f.Data.Online)
	b.mu.Unlock()
}

func (b *inbox) of(member string) []bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]bool(nil), b.got[member]...)
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newWorld(gateways int) (*net, []*Tracker, []*inbox, *clock) {
	n, c := &net{}, &clock{t: time.Unix(1000, 0)}
	var boxes []*inbox
	for i := range gateways {
		b := &inbox{got: map[string][]bool{}}
		t := NewTracker(string(rune('A'+i)), time.Second, n, b.deliver)
		t.now = c.now
		n.trackers = append(n.trackers, t)
		boxes = append(boxes, b)
	}
	return n, n.trackers, boxes, c
}

func first(t *testing.T) (func([]byte), *bool) {
	var online bool
	return func(frame []byte) {
		var f struct {
			Event string                `json:"event"`
			Data  contract.PresenceData `json:"data"`
		}
		if json.Unmarshal(frame, &f) != nil || f.Event != contract.EventPresence {
			t.Fatalf("first frame %s", frame)
		}
		online = f.Data.Online
	}, &online
}

func equal(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPresenceAcrossGatewaysAndTabs(t *testing.T) {
	_, g, box, _ := newWorld(2)
	f, online := first(t)
	g[0].Opened("r", "alice", f)
	if *online {
		t.Fatal("alice's first socket sees bob online")
	}
	g[1].Opened("r", "bob", f)
	// Bob's gateway knew nothing of the room: his socket starts offline
	// and hears of alice as soon as her gateway answers the news.
	if *online || !equal(box[1].of("bob"), []bool{true}) {
		t.Fatalf("bob's socket: first %v then %v, want false then [true]", *online, box[1].of("bob"))
	}
	if got := box[0].of("alice"); !equal(got, []bool{true}) {
		t.Fatalf("alice told %v, want [true]", got)
	}
	g[1].Opened("r", "bob", f) // a second tab
	g[1].Closed("r", "bob")    // one of two closes: still online
	if got := box[0].of("alice"); !equal(got, []bool{true}) {
		t.Fatalf("alice told %v after bob's second tab came and went", got)
	}
	g[1].Closed("r", "bob")
	if got := box[0].of("alice"); !equal(got, []bool{true, false}) {
		t.Fatalf("alice told %v, want [true false]", got)
	}
	if got := box[1].of("bob"); !equal(got, []bool{true}) {
		t.Fatalf("bob's sockets told %v, want only [true]", got)
	}
}

func TestPresenceSameGateway(t *testing.T) {
	_, g, box, _ := newWorld(1)
	f, online := first(t)
	g[0].Opened("r", "alice", f)
	g[0].Opened("r", "bob", f)
	if !*online {
		t.Fatal("bob does not see alice on the same gateway")
	}
	g[0].Closed("r", "alice")
	if got := box[0].of("bob"); !equal(got, []bool{false}) {
		t.Fatalf("bob told %v, want [false]", got)
	}
	if got := box[0].of("alice"); !equal(got, []bool{true}) {
		t.Fatalf("alice told %v, want [true]", got)
	}
}

// TestPresenceLeaseExpires: a gateway that stops announcing (it died) is
// forgotten once its lease runs out; one that keeps refreshing is not.
func TestPresenceLeaseExpires(t *testing.T) {
	n, g, box, c := newWorld(2)
	f, _ := first(t)
	g[0].Opened("r", "alice", f)
	g[1].Opened("r", "bob", f)
	// Both refresh for a while: nothing changes.
	for range 5 {
		c.t = c.t.Add(time.Second)
		g[0].refresh()
		g[1].refresh()
	}
	if got := box[0].of("alice"); !equal(got, []bool{true}) {
		t.Fatalf("alice told %v while bob's gateway refreshed", got)
	}
	// Gateway B dies: its refreshes stop.
	n.mu.Lock()
	n.trackers = n.trackers[:1]
	n.mu.Unlock()
	for range 2 {
		c.t = c.t.Add(time.Second)
		g[0].refresh()
	}
	if got := box[0].of("alice"); !equal(got, []bool{true}) {
		t.Fatalf("bob forgotten before his lease ran out: %v", got)
	}
	c.t = c.t.Add(2 * time.Second)
	g[0].refresh()
	if got := box[0].of("alice"); !equal(got, []bool{true, false}) {
		t.Fatalf("alice told %v, want bob offline after the lease", got)
	}
}

// TestPresenceNewsIsAnswered: a gateway that comes late to a room learns
// what the others hold from their answer, without waiting for a refresh;
// answers are not answered again.
func TestPresenceNewsIsAnswered(t *testing.T) {
	n, g, box, _ := newWorld(2)
	f, _ := first(t)
	g[0].Opened("r", "alice", f)
	n.mu.Lock()
	n.sent = nil
	n.mu.Unlock()
	g[1].Opened("r", "bob", f)
	if !equal(box[1].of("bob"), []bool{true}) {
		t.Fatal("late gateway did not learn of alice")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.sent) != 2 || n.sent[0].Sync || !n.sent[1].Sync || n.sent[1].Member != "alice" {
		t.Fatalf("announcements %+v, want bob's news and alice's one answer", n.sent)
	}
}

// TestRefreshIsBatched: a gateway refreshes everything it holds in one
// message per refreshBatch rooms, and those messages keep the other
// gateway's leases of its rooms alive.
func TestRefreshIsBatched(t *testing.T) {
	n, g, box, c := newWorld(2)
	f, _ := first(t)
	rooms := 2*refreshBatch + 1
	for i := range rooms {
		id := fmt.Sprint("r", i)
		g[0].Opened(id, "alice", f)
		g[0].Opened(id, "bob", f)
	}
	last := fmt.Sprint("r", rooms-1)
	g[1].Opened(last, "carol", f) // a third party in one room, on gateway B
	n.mu.Lock()
	n.refreshes = nil
	n.mu.Unlock()
	// Past the first lease, with A refreshing every interval: B keeps
	// alice and bob, so carol is never told they went.
	for range 5 {
		c.t = c.t.Add(time.Second)
		g[0].refresh()
	}
	if got := box[1].of("carol"); !equal(got, []bool{true}) {
		t.Fatalf("carol told %v while A refreshed", got)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.refreshes) != 5*3 {
		t.Fatalf("%d refresh messages for 5 refreshes of %d rooms, want 15", len(n.refreshes), rooms)
	}
	listed := 0
	for _, r := range n.refreshes[:3] {
		if r.Gateway != "A" || r.LeaseMS != 3000 || len(r.Rooms) > refreshBatch {
			t.Fatalf("batch from %s, lease %d ms, %d rooms", r.Gateway, r.LeaseMS, len(r.Rooms))
		}
		for _, h := range r.Rooms {
			if len(h.Members) != 2 {
				t.Fatalf("room %s listed with %v", h.Room, h.Members)
			}
			listed++
		}
	}
	if listed != rooms {
		t.Fatalf("one refresh listed %d rooms, want %d", listed, rooms)
	}
}

// TestOwnRefreshIsIgnored: a refresh that comes back to its sender, or
// names another sender than its header, changes nothing.
func TestOwnRefreshIsIgnored(t *testing.T) {
	_, g, box, _ := newWorld(1)
	f, _ := first(t)
	g[0].Opened("r", "alice", f)
	mine, _ := json.Marshal(contract.PresenceRefresh{Gateway: "A", LeaseMS: 3000,
		Rooms: []contract.RoomHolding{{Room: "r", Members: []string{"bob"}}}})
	g[0].HeardRefresh("A", mine)
	g[0].HeardRefresh("B", mine) // the header says B, the body A
	if got := box[0].of("alice"); len(got) != 0 {
		t.Fatalf("alice told %v by a refresh that is not another gateway's", got)
	}
}
