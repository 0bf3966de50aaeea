package natsapi_test

import (
	"math"
	"testing"

	"wisp/contract"
	"wisp/testkit"
)

// TestCreateWithChosenLifetime: a create request's ttl is the room's
// lifetime within 60..3600 s, and its deadline and Redis TTL follow it; an
// empty request keeps the default; anything outside is a 400 that creates
// nothing.
func TestCreateWithChosenLifetime(t *testing.T) {
	client, _ := startReplicas(t, 1) // default lifetime: one minute

	for _, tc := range []struct {
		name   string
		req    any
		lifeMs int64
	}{
		{"empty body", struct{}{}, 60_000},
		{"ttl 0 is the default", contract.CreateRoomRequest{}, 60_000},
		{"lowest", contract.CreateRoomRequest{TTL: 60}, 60_000},
		{"five minutes", contract.CreateRoomRequest{TTL: 300}, 300_000},
		{"highest", contract.CreateRoomRequest{TTL: 3600}, 3_600_000},
	} {
		created, e := testkit.Call[contract.CreateRoomReply](t, client, contract.SubjectRoomCreate, tc.req)
		if e != nil || created.ExpiresAt-created.CreatedAt != tc.lifeMs {
			t.Errorf("%s: %+v %v, want a room of %d ms", tc.name, created, e, tc.lifeMs)
			continue
		}
		m, e := testkit.Call[contract.JoinReply](t, client, contract.SubjectRoomJoin, contract.RoomRequest{RoomID: created.RoomID})
		if e != nil {
			t.Fatalf("%s: join: %v", tc.name, e)
		}
		left, e := testkit.Call[contract.TTLReply](t, client, contract.SubjectRoomTTL, contract.RoomRequest{RoomID: created.RoomID, Token: m.Token})
		if e != nil || left.TTL > tc.lifeMs/1000 || left.TTL < tc.lifeMs/1000-2 {
			t.Errorf("%s: ttl %+v %v, want about %d s", tc.name, left, e, tc.lifeMs/1000)
		}
	}

	for _, ttl := range []int64{1, 59, 3601, -60, math.MaxInt64, math.MinInt64, math.MaxInt64/1_000_000_000 + 1} {
		_, e := testkit.Call[contract.CreateRoomReply](t, client, contract.SubjectRoomCreate, contract.CreateRoomRequest{TTL: ttl})
		if e == nil || e.Code != contract.CodeBadRequest || e.Description != "ttl must be between 60 and 3600 seconds" {
			t.Errorf("ttl %d: %v, want 400 ttl must be between 60 and 3600 seconds", ttl, e)
		}
	}
}

// TestCreateEndToEnd: a room created with e2e says so in authorize and ttl
// for its lifetime; one created without it never does.
func TestCreateEndToEnd(t *testing.T) {
	client, _ := startReplicas(t, 1)
	for _, e2e := range []bool{true, false} {
		created, e := testkit.Call[contract.CreateRoomReply](t, client, contract.SubjectRoomCreate, contract.CreateRoomRequest{E2E: e2e})
		if e != nil {
			t.Fatalf("create e2e=%v: %v", e2e, e)
		}
		m, e := testkit.Call[contract.JoinReply](t, client, contract.SubjectRoomJoin, contract.RoomRequest{RoomID: created.RoomID})
		if e != nil {
			t.Fatalf("join: %v", e)
		}
		req := contract.RoomRequest{RoomID: created.RoomID, Token: m.Token}
		auth, e := testkit.Call[contract.AuthorizeReply](t, client, contract.SubjectRoomAuth, req)
		if e != nil || auth.E2E != e2e {
			t.Errorf("authorize of a room created e2e=%v: %+v %v", e2e, auth, e)
		}
		left, e := testkit.Call[contract.TTLReply](t, client, contract.SubjectRoomTTL, req)
		if e != nil || left.E2E != e2e {
			t.Errorf("ttl of a room created e2e=%v: %+v %v", e2e, left, e)
		}
	}
}
