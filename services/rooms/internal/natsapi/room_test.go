package natsapi_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"wisp/contract"
	"wisp/platform/natsrpc"
	"wisp/services/rooms/internal/natsapi"
	"wisp/services/rooms/internal/redisstore"
	"wisp/services/rooms/internal/room"
	"wisp/testkit"
)

// startReplicas runs n rooms replicas, each on its own NATS connection.
func startReplicas(t *testing.T, n int) (*nats.Conn, []*natsrpc.Server) {
	client, srvs, _ := startReplicasOn(t, n)
	return client, srvs
}

// startReplicasOn is startReplicas that also returns their Redis.
func startReplicasOn(t *testing.T, n int) (*nats.Conn, []*natsrpc.Server, *testkit.Redis) {
	r := testkit.StartRedis(t)
	ns := testkit.StartNATS(t)
	var srvs []*natsrpc.Server
	for range n {
		nc := testkit.Connect(t, ns)
		svc := room.NewService(redisstore.NewRooms(r.Client(t)), natsapi.NewPublisher(nc, nc, time.Second), time.Minute, time.Second)
		srv, err := natsapi.Serve(nc, svc, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		srvs = append(srvs, srv)
		if err := nc.Flush(); err != nil { // the replica's subscriptions are live
			t.Fatal(err)
		}
	}
	return testkit.Connect(t, ns), srvs, r
}

// TestRedisAwayIsUnavailableNotInternal: while the replica cannot reach
// Redis its answers are 503 (try again), never 500.
func TestRedisAwayIsUnavailableNotInternal(t *testing.T) {
	client, _, r := startReplicasOn(t, 1)
	r.Stop()
	_, e := testkit.Call[contract.CreateRoomReply](t, client, contract.SubjectRoomCreate, struct{}{})
	if e == nil || e.Code != contract.CodeUnavailable {
		t.Fatalf("create with Redis away: %v, want %s", e, contract.CodeUnavailable)
	}
	r.Restart(t)
	testkit.Eventually(t, 10*time.Second, func() error {
		if _, e := testkit.Call[contract.CreateRoomReply](t, client, contract.SubjectRoomCreate, struct{}{}); e != nil {
			return e
		}
		return nil
	})
}

// TestEndpointsOverNATSWithTwoReplicas walks a room's whole life over NATS
// while two replicas share the work through the micro queue group.
func TestEndpointsOverNATSWithTwoReplicas(t *testing.T) {
	client, srvs := startReplicas(t, 2)
	destroys, _ := client.SubscribeSync(contract.AllDestroys)

	created, e := testkit.Call[contract.CreateRoomReply](t, client, contract.SubjectRoomCreate, struct{}{})
	if e != nil || !contract.ValidRoomID(created.RoomID) || created.ExpiresAt-created.CreatedAt != 60000 {
		t.Fatalf("create: %+v %v", created, e)
	}
	id := created.RoomID
	a, e := testkit.Call[contract.JoinReply](t, client, contract.SubjectRoomJoin, contract.RoomRequest{RoomID: id})
	if e != nil || !a.Joined || a.Token == "" || a.ExpiresAt != created.ExpiresAt {
		t.Fatalf("join a: %+v %v", a, e)
	}
	again, e := testkit.Call[contract.JoinReply](t, client, contract.SubjectRoomJoin, contract.RoomRequest{RoomID: id, Token: a.Token})
	if e != nil || again.Joined || again.Token != a.Token {
		t.Fatalf("rejoin: %+v %v", again, e)
	}
	b, e := testkit.Call[contract.JoinReply](t, client, contract.SubjectRoomJoin, contract.RoomRequest{RoomID: id})
	if e != nil {
		t.Fatalf("join b: %v", e)
	}
	if _, e := testkit.Call[contract.JoinReply](t, client, contract.SubjectRoomJoin, contract.RoomRequest{RoomID: id}); e == nil || e.Code != contract.CodeConflict {
		t.Fatalf("third join: %v, want 409", e)
	}
	if _, e := testkit.Call[contract.JoinReply](t, client, contract.SubjectRoomJoin, contract.RoomRequest{RoomID: "no-such-room-xxxxxxxxx"}); e == nil || e.Code != contract.CodeNotFound {
		t.Fatalf("join unknown: %v, want 404", e)
	}
	if _, e := testkit.Call[contract.JoinReply](t, client, contract.SubjectRoomJoin, contract.RoomRequest{RoomID: "../bad"}); e == nil || e.Code != contract.CodeNotFound {
		t.Fatalf("join malformed: %v, want 404", e)
	}
	auth, e := testkit.Call[contract.AuthorizeReply](t, client, contract.SubjectRoomAuth, contract.RoomRequest{RoomID: id, Token: a.Token})
	if e != nil || auth.ExpiresAt != created.ExpiresAt || auth.Member == "" || auth.Member == a.Token {
		t.Fatalf("authorize: %+v %v; want the deadline and a's public marker (not its token)", auth, e)
	}
	// Whichever replica answers, a is the same member and b another.
	for range 4 {
		again, e := testkit.Call[contract.AuthorizeReply](t, client, contract.SubjectRoomAuth, contract.RoomRequest{RoomID: id, Token: a.Token})
		if e != nil || again.Member != auth.Member {
			t.Fatalf("authorize a again: %+v %v, want member %q", again, e, auth.Member)
		}
	}
	authB, e := testkit.Call[contract.AuthorizeReply](t, client, contract.SubjectRoomAuth, contract.RoomRequest{RoomID: id, Token: b.Token})
	if e != nil || authB.Member == "" || authB.Member == auth.Member || authB.Member == b.Token {
		t.Fatalf("authorize b: %+v %v; want a marker of its own (a's is %q)", authB, e, auth.Member)
	}
	if _, e := testkit.Call[contract.AuthorizeReply](t, client, contract.SubjectRoomAuth, contract.RoomRequest{RoomID: id, Token: "x"}); e == nil || e.Code != contract.CodeUnauthorized {
		t.Fatalf("authorize stranger: %v", e)
	}
	ttl, e := testkit.Call[contract.TTLReply](t, client, contract.SubjectRoomTTL, contract.RoomRequest{RoomID: id, Token: a.Token})
	if e != nil || ttl.TTL < 58 || ttl.TTL > 60 {
		t.Fatalf("ttl: %+v %v", ttl, e)
	}
	if _, e := testkit.Call[contract.DestroyReply](t, client, contract.SubjectRoomDestroy, contract.RoomRequest{RoomID: id, Token: "x"}); e == nil || e.Code != contract.CodeUnauthorized {
		t.Fatalf("destroy by stranger: %v", e)
	}
	if _, e := testkit.Call[contract.DestroyReply](t, client, contract.SubjectRoomDestroy, contract.RoomRequest{RoomID: id, Token: a.Token}); e != nil {
		t.Fatalf("destroy: %v", e)
	}
	msg, err := destroys.NextMsg(2 * time.Second)
	if err != nil || msg.Subject != contract.DestroySubject(id) || string(msg.Data) != string(contract.DestroyEvent(contract.ReasonDestroyed)) {
		t.Fatalf("chat.destroy: %v %v", msg, err)
	}
	if _, e := testkit.Call[contract.DestroyReply](t, client, contract.SubjectRoomDestroy, contract.RoomRequest{RoomID: id, Token: a.Token}); e == nil || e.Code != contract.CodeUnauthorized {
		t.Fatalf("second destroy: %v", e)
	}
	// Fence: destroy another room and wait for its chat.destroy. A replica
	// publishes before it replies, and NATS delivers one connection's
	// messages in order, so a chat.destroy of the second destroy would
	// arrive before the fence's; none may.
	fence := destroyNewRoom(t, client)
	msg, err = destroys.NextMsg(2 * time.Second)
	if err != nil {
		t.Fatalf("the fence room's chat.destroy: %v", err)
	}
	if msg.Subject != contract.DestroySubject(fence) {
		t.Fatalf("second destroy published %s on %s", msg.Data, msg.Subject)
	}
	if _, e := testkit.Call[contract.TTLReply](t, client, contract.SubjectRoomTTL, contract.RoomRequest{RoomID: id, Token: a.Token}); e == nil || e.Code != contract.CodeUnauthorized {
		t.Fatalf("ttl of destroyed room: %v", e)
	}
	if _, e := testkit.Call[contract.JoinReply](t, client, contract.SubjectRoomJoin, []int{1}); e == nil || e.Code != contract.CodeBadRequest {
		t.Fatalf("malformed body: %v, want 400", e)
	}

	// Both replicas took part.
	for range 40 {
		if _, e := testkit.Call[contract.CreateRoomReply](t, client, contract.SubjectRoomCreate, struct{}{}); e != nil {
			t.Fatalf("create: %v", e)
		}
	}
	for i, s := range srvs {
		if s.Served() == 0 {
			t.Fatalf("replica %d served no request", i)
		}
	}
}

// destroyNewRoom creates a room, joins it and destroys it, returning its id.
func destroyNewRoom(t *testing.T, client *nats.Conn) string {
	t.Helper()
	created, e := testkit.Call[contract.CreateRoomReply](t, client, contract.SubjectRoomCreate, struct{}{})
	if e != nil {
		t.Fatalf("create: %v", e)
	}
	m, e := testkit.Call[contract.JoinReply](t, client, contract.SubjectRoomJoin, contract.RoomRequest{RoomID: created.RoomID})
	if e != nil {
		t.Fatalf("join: %v", e)
	}
	if _, e := testkit.Call[contract.DestroyReply](t, client, contract.SubjectRoomDestroy, contract.RoomRequest{RoomID: created.RoomID, Token: m.Token}); e != nil {
		t.Fatalf("destroy: %v", e)
	}
	return created.RoomID
}

// TestReplicasListedUnderSRV: both replicas answer $SRV.PING.rooms.
func TestReplicasListedUnderSRV(t *testing.T) {
	client, _ := startReplicas(t, 2)
	inbox := nats.NewInbox()
	sub, _ := client.SubscribeSync(inbox)
	if err := client.PublishRequest("$SRV.PING."+contract.RoomsService, inbox, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := sub.NextMsg(2 * time.Second); err != nil {
			t.Fatalf("ping reply %d: %v", i, err)
		}
	}
}
