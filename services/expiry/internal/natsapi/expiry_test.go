package natsapi_test

import (
	"context"
	"testing"
	"time"

	"wisp/contract"
	"wisp/services/expiry/internal/natsapi"
	"wisp/testkit"
)

func TestExpiredPublishesTheContractFrameOnTheRoomSubject(t *testing.T) {
	ns := testkit.StartNATS(t)
	subConn := testkit.Connect(t, ns)
	sub, err := subConn.SubscribeSync(contract.AllDestroys)
	if err != nil {
		t.Fatal(err)
	}
	if err := subConn.Flush(); err != nil {
		t.Fatal(err)
	}
	pubConn := testkit.Connect(t, ns)
	id := "V1StGXR8_Z5jdHi6B-myT"
	if err := natsapi.NewPublisher(pubConn).Expired(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if err := pubConn.Flush(); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != contract.DestroySubject(id) {
		t.Fatalf("subject %q, want %q", m.Subject, contract.DestroySubject(id))
	}
	if want := string(contract.DestroyEvent(contract.ReasonExpired)); string(m.Data) != want {
		t.Fatalf("payload %s, want %s", m.Data, want)
	}
}
