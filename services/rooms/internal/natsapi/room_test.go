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
	r := testkit.StartRedis(t)
	ns := testkit.StartNATS(t)
	var srvs []*natsrpc.Server
	for range n {
		nc := testkit.Connect(t, ns)
		svc := room.NewService(redisstore.NewRooms(r.Client(t)), natsapi.NewPublisher(nc), time.Minute)
		srv, err := natsapi.Serve(nc, svc, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		srvs = append(srvs, srv)
		if err := nc.Flush(); err != nil { // the replica's subscriptions are live
			t.Fatal(err)
		}
	}
	return testkit.Connect(t, ns), srvs
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
	if _, e := testkit.Call[contract.JoinReply](t, client, contract.SubjectRoomJoin, contract.RoomRequest{RoomID: id}); e != nil {
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
	if e != nil || auth.ExpiresAt != created.ExpiresAt {
		t.Fatalf("authorize: %+v %v", auth, e)
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
	if extra, err := destroys.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("second chat.destroy published: %s", extra.Data)
	}
	if _, e := testkit.Call[contract.TTLReply](t, client, contract.SubjectRoomTTL, contract.RoomRequest{RoomID: id, Token: a.Token}); e == nil || e.Code != contract.CodeUnauthorized {
		t.Fatalf("ttl of destroyed room: %v", e)
	}
	if _, e := testkit.Call[contract.JoinReply](t, client, contract.SubjectRoomJoin, []int{1}); e == nil || e.Code != contract.CodeBadRequest {
		t.Fatalf("malformed body: %v, want 400", e)
	}

	// Both replicas took part.
	for i := 0; i < 40; i++ {
		testkit.Call[contract.CreateRoomReply](t, client, contract.SubjectRoomCreate, struct{}{})
	}
	for i, s := range srvs {
		if s.Served() == 0 {
			t.Fatalf("replica %d served no request", i)
		}
	}
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
