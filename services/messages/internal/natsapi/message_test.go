package natsapi_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"wisp/contract"
	"wisp/platform/natsrpc"
	"wisp/services/messages/internal/message"
	"wisp/services/messages/internal/natsapi"
	"wisp/services/messages/internal/redisstore"
	"wisp/testkit"
)

const roomID = "V1StGXR8_Z5jdHi6B-myT"

// TestEndpointsOverNATSWithTwoReplicas sends and lists through two messages
// replicas and checks the room's subject carries each message, tokenless.
func TestEndpointsOverNATSWithTwoReplicas(t *testing.T) {
	r := testkit.StartRedis(t)
	ns := testkit.StartNATS(t)
	testkit.SeedRoom(t, r.Client(t), roomID, time.Now().Add(time.Minute), "tok-a", "tok-b")
	var srvs []*natsrpc.Server
	for range 2 {
		nc := testkit.Connect(t, ns)
		svc := message.NewService(redisstore.NewMessages(r.Client(t)), natsapi.NewPublisher(nc), 1000)
		srv, err := natsapi.Serve(nc, svc, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		srvs = append(srvs, srv)
		_ = nc.Flush()
	}
	client := testkit.Connect(t, ns)
	events, _ := client.SubscribeSync(contract.MessageSubject(roomID))

	for i := range 20 {
		tok := []string{"tok-a", "tok-b"}[i%2]
		rep, e := testkit.Call[contract.SendReply](t, client, contract.SubjectMessageSend,
			contract.SendRequest{RoomID: roomID, Token: tok, Sender: "s", Text: "hello"})
		if e != nil || rep.Message.Seq != int64(i+1) || rep.Message.Token == "" {
			t.Fatalf("send %d: %+v %v", i, rep, e)
		}
		ev, err := events.NextMsg(2 * time.Second)
		if err != nil {
			t.Fatalf("chat.message %d: %v", i, err)
		}
		var frame contract.Event
		if err := json.Unmarshal(ev.Data, &frame); err != nil || frame.Event != contract.EventMessage || strings.Contains(string(frame.Data), "token") {
			t.Fatalf("event %s", ev.Data)
		}
	}
	list, e := testkit.Call[contract.ListReply](t, client, contract.SubjectMessageList, contract.ListRequest{RoomID: roomID, Token: "tok-a", After: 15})
	if e != nil || len(list.Messages) != 5 || list.More {
		t.Fatalf("list after 15: %+v %v", list, e)
	}
	for _, m := range list.Messages {
		if mine := m.Seq%2 == 1; mine != (m.Token != "") {
			t.Fatalf("token on %+v", m)
		}
	}

	bad := []struct {
		req  contract.SendRequest
		code string
	}{
		{contract.SendRequest{RoomID: roomID, Token: "tok-a", Sender: "", Text: "x"}, contract.CodeBadRequest},
		{contract.SendRequest{RoomID: roomID, Token: "tok-a", Sender: "s", Text: strings.Repeat("😀", 501)}, contract.CodeBadRequest},
		{contract.SendRequest{RoomID: roomID, Token: "nope", Sender: "s", Text: "x"}, contract.CodeUnauthorized},
		{contract.SendRequest{RoomID: "bad", Token: "tok-a", Sender: "s", Text: "x"}, contract.CodeUnauthorized},
	}
	for _, b := range bad {
		if _, e := testkit.Call[contract.SendReply](t, client, contract.SubjectMessageSend, b.req); e == nil || e.Code != b.code {
			t.Fatalf("send %+v: %v, want %s", b.req, e, b.code)
		}
	}
	if _, e := testkit.Call[contract.ListReply](t, client, contract.SubjectMessageList, contract.ListRequest{RoomID: roomID, Token: "nope"}); e == nil || e.Code != contract.CodeUnauthorized {
		t.Fatalf("list by stranger: %v", e)
	}
	for i, s := range srvs {
		if s.Served() == 0 {
			t.Fatalf("replica %d served no request", i)
		}
	}
}

// TestRetriedSendOverNATS: a send retried with its clientId is answered
// with the message stored first and announced again; a malformed clientId
// is a 400 that stores nothing.
func TestRetriedSendOverNATS(t *testing.T) {
	r := testkit.StartRedis(t)
	ns := testkit.StartNATS(t)
	testkit.SeedRoom(t, r.Client(t), roomID, time.Now().Add(time.Minute), "tok-a", "tok-b")
	nc := testkit.Connect(t, ns)
	svc := message.NewService(redisstore.NewMessages(r.Client(t)), natsapi.NewPublisher(nc), 1000)
	if _, err := natsapi.Serve(nc, svc, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	client := testkit.Connect(t, ns)
	events, _ := client.SubscribeSync(contract.MessageSubject(roomID))

	send := func(text, clientID string) (contract.SendReply, *contract.Error) {
		return testkit.Call[contract.SendReply](t, client, contract.SubjectMessageSend,
			contract.SendRequest{RoomID: roomID, Token: "tok-a", Sender: "s", Text: text, ClientID: clientID})
	}
	announced := func() contract.Message {
		t.Helper()
		ev, err := events.NextMsg(2 * time.Second)
		if err != nil {
			t.Fatalf("chat.message: %v", err)
		}
		var frame struct {
			Event string           `json:"event"`
			Data  contract.Message `json:"data"`
		}
		if err := json.Unmarshal(ev.Data, &frame); err != nil || frame.Event != contract.EventMessage {
			t.Fatalf("event %s", ev.Data)
		}
		return frame.Data
	}

	first, e := send("hello", "Zx9_-q")
	if e != nil || first.Message.Seq != 1 || first.Message.Text != "hello" || first.Message.Token == "" {
		t.Fatalf("first send: %+v %v", first, e)
	}
	if ev := announced(); ev.ID != first.Message.ID {
		t.Fatalf("announced %+v", ev)
	}
	retry, e := send("hello, edited", "Zx9_-q")
	if e != nil || retry != first {
		t.Fatalf("retry: %+v %v; want the first reply %+v", retry, e, first)
	}
	if ev := announced(); ev.ID != first.Message.ID || ev.Seq != 1 || ev.Text != "hello" || ev.Token != "" {
		t.Fatalf("retry announced %+v, want the first message again, tokenless", ev)
	}

	for _, bad := range []string{"has space", "a:b", strings.Repeat("x", message.MaxClientID+1)} {
		if _, e := send("x", bad); e == nil || e.Code != contract.CodeBadRequest || !strings.Contains(e.Description, "clientId") {
			t.Fatalf("clientId %q: %v, want 400 naming clientId", bad, e)
		}
	}
	list, e := testkit.Call[contract.ListReply](t, client, contract.SubjectMessageList, contract.ListRequest{RoomID: roomID, Token: "tok-b"})
	if e != nil || len(list.Messages) != 1 {
		t.Fatalf("list: %+v %v; want only the first message", list, e)
	}
	if extra, err := events.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("a refused send was announced: %s", extra.Data)
	}
}
