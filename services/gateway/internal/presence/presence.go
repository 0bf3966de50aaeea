// Package presence tells each member of a room whether the other one has
// a socket open, on this gateway or any other. Gateways announce on the
// room's presence subject when a member's first socket opens on them and
// when its last one goes; they answer news from another gateway with what
// they hold, and refresh all of it every interval in a few batched
// messages, so a gateway that dies without a word is forgotten when its
// lease runs out.
package presence

import (
	"encoding/json"
	"slices"
	"sync"
	"time"

	"wisp/contract"
)

// Publisher sends presence to all gateways: an announcement of one room,
// or one batch of a refresh.
type Publisher interface {
	PublishPresence(roomID string, p contract.Presence) error
	PublishRefresh(r contract.PresenceRefresh) error
}

// refreshBatch is how many rooms one refresh message lists: ~100 KB.
const refreshBatch = 1000

// Deliver queues a frame for the room's local sockets of one member.
type Deliver func(roomID string, frame []byte, member string)

// Tracker keeps the room-by-room picture for this gateway.
type Tracker struct {
	gateway  string
	pub      Publisher
	deliver  Deliver
	interval time.Duration
	now      func() time.Time

	mu    sync.Mutex
	rooms map[string]*room
}

// room is what this gateway knows of one room's members: a short slice
// (a room has two members), not maps, so that a held room costs little.
type room struct {
	members []memberState
}

type memberState struct {
	id     string
	local  int     // sockets on this gateway
	remote []lease // other gateways holding a socket of it
	told   bool    // its local sockets were told the peer's presence…
	online bool    // …and this is what they were told
}

type lease struct {
	gateway string
	end     time.Time
}

// of returns the member's entry, adding it when add is set (nil otherwise).
func (r *room) of(id string, add bool) *memberState {
	for i := range r.members {
		if r.members[i].id == id {
			return &r.members[i]
		}
	}
	if !add {
		return nil
	}
	if r.members == nil {
		r.members = make([]memberState, 0, 2)
	}
	r.members = append(r.members, memberState{id: id})
	return &r.members[len(r.members)-1]
}

// present: the member has a socket somewhere, as far as this gateway knows.
func (m *memberState) present(now time.Time) bool {
	if m.local > 0 {
		return true
	}
	for _, l := range m.remote {
		if l.end.After(now) {
			return true
		}
	}
	return false
}

// NewTracker returns the tracker of the gateway named gateway (unique per
// process). Holdings are refreshed every interval and last three of them.
func NewTracker(gateway string, interval time.Duration, pub Publisher, deliver Deliver) *Tracker {
	return &Tracker{gateway: gateway, pub: pub, deliver: deliver, interval: interval, now: time.Now,
		rooms: map[string]*room{}}
}

func (t *Tracker) lease() time.Duration { return 3 * t.interval }

// Opened records a socket of member in the room on this gateway and hands
// first the socket's first frame: whether the other member is online now.
// Later changes reach all of the member's sockets through Deliver, in order
// after it.
func (t *Tracker) Opened(roomID, member string, first func(frame []byte)) {
	t.mu.Lock()
	r := t.rooms[roomID]
	if r == nil {
		r = &room{}
		t.rooms[roomID] = r
	}
	m := r.of(member, true)
	m.local++
	isFirst := m.local == 1
	t.settle(roomID, r)
	first(contract.PresenceEvent(r.of(member, false).online))
	t.mu.Unlock()
	if isFirst {
		t.announce(roomID, member, true, false)
	}
}

// Closed records that a socket of member in the room has gone.
func (t *Tracker) Closed(roomID, member string) {
	t.mu.Lock()
	r := t.rooms[roomID]
	var m *memberState
	if r != nil {
		m = r.of(member, false)
	}
	if m == nil || m.local == 0 {
		t.mu.Unlock()
		return
	}
	m.local--
	last := m.local == 0
	t.settle(roomID, r)
	if !r.anyLocal() {
		// Nobody here to tell: forget the room until a socket comes back.
		delete(t.rooms, roomID)
	}
	t.mu.Unlock()
	if last {
		t.announce(roomID, member, false, false)
	}
}

func (r *room) anyLocal() bool {
	for _, m := range r.members {
		if m.local > 0 {
			return true
		}
	}
	return false
}

// Heard handles another gateway's announcement (the payload as published).
func (t *Tracker) Heard(roomID string, data []byte) {
	var p contract.Presence
	if json.Unmarshal(data, &p) != nil || p.Gateway == "" || p.Gateway == t.gateway || p.Member == "" {
		return
	}
	t.mu.Lock()
	r := t.rooms[roomID]
	if r == nil {
		t.mu.Unlock()
		return
	}
	r.hold(p.Member, p.Gateway, p.Online, t.leaseEnd(p.LeaseMS))
	t.settle(roomID, r)
	var mine []string
	if p.Online && !p.Sync {
		// News from a gateway that may not know what we hold: tell it.
		for _, m := range r.members {
			if m.local > 0 {
				mine = append(mine, m.id)
			}
		}
	}
	t.mu.Unlock()
	for _, m := range mine {
		t.announce(roomID, m, true, true)
	}
}

// HeardRefresh handles a batch of another gateway's refresh (the payload as
// published): the leases of the rooms held here are renewed. A gateway's
// own refresh is dropped before it is decoded.
func (t *Tracker) HeardRefresh(gateway string, data []byte) {
	if gateway == "" || gateway == t.gateway {
		return
	}
	var p contract.PresenceRefresh
	if json.Unmarshal(data, &p) != nil || p.Gateway != gateway {
		return
	}
	end := t.leaseEnd(p.LeaseMS)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, h := range p.Rooms {
		r := t.rooms[h.Room]
		if r == nil {
			continue
		}
		for _, m := range h.Members {
			if m != "" {
				r.hold(m, gateway, true, end)
			}
		}
		t.settle(h.Room, r)
	}
}

// leaseEnd is when a lease of ms milliseconds (0: this gateway's own
// length) taken now runs out.
func (t *Tracker) leaseEnd(ms int64) time.Time {
	d := time.Duration(ms) * time.Millisecond
	if d <= 0 {
		d = t.lease()
	}
	return t.now().Add(d)
}

// hold records that gateway holds (online) or no longer holds a socket of
// member, until end.
func (r *room) hold(member, gateway string, online bool, end time.Time) {
	m := r.of(member, online)
	if m == nil {
		return
	}
	m.remote = slices.DeleteFunc(m.remote, func(l lease) bool { return l.gateway == gateway })
	if online {
		m.remote = append(m.remote, lease{gateway: gateway, end: end})
	}
}

// Run refreshes this gateway's holdings and lets other gateways' leases
// run out, every interval until stop is closed.
func (t *Tracker) Run(stop <-chan struct{}) {
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			t.refresh()
		}
	}
}

func (t *Tracker) refresh() {
	var mine []contract.RoomHolding
	t.mu.Lock()
	for id, r := range t.rooms {
		t.settle(id, r)
		h := contract.RoomHolding{Room: id}
		for _, m := range r.members {
			if m.local > 0 {
				h.Members = append(h.Members, m.id)
			}
		}
		if len(h.Members) > 0 {
			mine = append(mine, h)
		}
	}
	t.mu.Unlock()
	for batch := range slices.Chunk(mine, refreshBatch) {
		// A lost batch is repaired by the next refresh, within the lease.
		_ = t.pub.PublishRefresh(contract.PresenceRefresh{Gateway: t.gateway, LeaseMS: t.lease().Milliseconds(), Rooms: batch})
	}
}

func (t *Tracker) announce(roomID, member string, online, sync bool) {
	p := contract.Presence{Member: member, Gateway: t.gateway, Online: online, Sync: sync}
	if online {
		p.LeaseMS = t.lease().Milliseconds()
	}
	// A lost announcement is repaired by the next refresh.
	_ = t.pub.PublishPresence(roomID, p)
}

// settle drops leases that ran out and tells each local member's sockets
// when the other member's presence changed. Called with t.mu held; the
// delivery only queues frames.
func (t *Tracker) settle(roomID string, r *room) {
	now := t.now()
	for i := range r.members {
		m := &r.members[i]
		m.remote = slices.DeleteFunc(m.remote, func(l lease) bool { return !l.end.After(now) })
	}
	for i := range r.members {
		m := &r.members[i]
		if m.local == 0 {
			m.told = false
			continue
		}
		online := r.peerOnline(m.id, now)
		if m.told && m.online != online {
			t.deliver(roomID, contract.PresenceEvent(online), m.id)
		}
		m.told, m.online = true, online
	}
	// A member neither here nor anywhere else is forgotten.
	r.members = slices.DeleteFunc(r.members, func(m memberState) bool { return m.local == 0 && len(m.remote) == 0 })
}

// peerOnline: some member other than id has a socket somewhere.
func (r *room) peerOnline(id string, now time.Time) bool {
	for i := range r.members {
		if r.members[i].id != id && r.members[i].present(now) {
			return true
		}
	}
	return false
}
