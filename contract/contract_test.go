package contract

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestGolden pins the JSON form of every payload: renaming a field or tag
// fails here instead of between two deployed services.
func TestGolden(t *testing.T) {
	msg := Message{ID: "m1", Seq: 3, Sender: "anonymous-wolf-AbC12", Text: "hi 👋", Timestamp: 1700000000000, RoomID: "V1StGXR8_Z5jdHi6B-myT", Token: "mk"}
	cases := map[string]any{
		"message":       msg,
		"create_reply":  CreateRoomReply{RoomID: "V1StGXR8_Z5jdHi6B-myT", CreatedAt: 1700000000000, ExpiresAt: 1700000600000},
		"room_request":  RoomRequest{RoomID: "V1StGXR8_Z5jdHi6B-myT", Token: "secret"},
		"join_reply":    JoinReply{Token: "secret", Joined: true, ExpiresAt: 1700000600000},
		"auth_reply":    AuthorizeReply{ExpiresAt: 1700000600000},
		"ttl_reply":     TTLReply{TTL: 599},
		"destroy_reply": DestroyReply{},
		"send_request":  SendRequest{RoomID: "V1StGXR8_Z5jdHi6B-myT", Token: "secret", Sender: "a", Text: "b"},
		"send_reply":    SendReply{Message: msg},
		"list_request":  ListRequest{RoomID: "V1StGXR8_Z5jdHi6B-myT", Token: "secret", After: 2},
		"list_reply":    ListReply{Messages: []Message{msg}},
		"event_message": json.RawMessage(MessageEvent(msg)),
		"event_destroy": json.RawMessage(DestroyEvent(ReasonExpired)),
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("missing golden file (run go test -update): %v", err)
			}
			if string(want) != string(got)+"\n" {
				t.Errorf("%s changed:\n got %s\nwant %s", name, got, want)
			}
		})
	}
}

func TestMessageEventOmitsToken(t *testing.T) {
	var ev struct {
		Event string         `json:"event"`
		Data  map[string]any `json:"data"`
	}
	if err := json.Unmarshal(MessageEvent(Message{ID: "x", Token: "marker"}), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Event != "chat.message" {
		t.Fatalf("event = %q", ev.Event)
	}
	if _, ok := ev.Data["token"]; ok {
		t.Fatal("chat.message frame carries a token")
	}
}

func TestSubjectsAreRoomScoped(t *testing.T) {
	id := "V1StGXR8_Z5jdHi6B-myT"
	if got := MessageSubject(id); got != "chat.message."+id {
		t.Errorf("MessageSubject = %q", got)
	}
	if got := DestroySubject(id); got != "chat.destroy."+id {
		t.Errorf("DestroySubject = %q", got)
	}
	if got := RoomEventsSubject(id); got != "chat.*."+id {
		t.Errorf("RoomEventsSubject = %q", got)
	}
}

func TestRoomKeysShareHashTag(t *testing.T) {
	id := "V1StGXR8_Z5jdHi6B-myT"
	for _, k := range []string{RoomKey(id), MembersKey(id), MessagesKey(id)} {
		if want := "{" + id + "}"; !strings.Contains(k, want) {
			t.Errorf("%s lacks hash tag %s", k, want)
		}
	}
	if got, ok := RoomIDFromKey(RoomKey(id)); !ok || got != id {
		t.Errorf("RoomIDFromKey(RoomKey) = %q, %v", got, ok)
	}
	for _, k := range []string{MembersKey(id), MessagesKey(id), DeadlinesKey, "wisp:room:{bad id}"} {
		if _, ok := RoomIDFromKey(k); ok {
			t.Errorf("RoomIDFromKey(%q) accepted a non-room key", k)
		}
	}
}

func TestValidRoomID(t *testing.T) {
	cases := map[string]bool{
		"V1StGXR8_Z5jdHi6B-myT":       true,
		"short":                       false,
		"V1StGXR8_Z5jdHi6B-my.":       false,
		"V1StGXR8_Z5jdHi6B-my*":       false,
		"V1StGXR8 Z5jdHi6B-myT":       false,
		"../../../../etc/passwd/xxxx": false,
		string(make([]byte, 65)):      false,
	}
	for id, want := range cases {
		if got := ValidRoomID(id); got != want {
			t.Errorf("ValidRoomID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestErrorFromHeader(t *testing.T) {
	if ErrorFromHeader(map[string][]string{}) != nil {
		t.Fatal("success reply read as error")
	}
	e := ErrorFromHeader(map[string][]string{HeaderErrorCode: {"409"}, HeaderError: {"room is full"}})
	if e == nil || e.Code != CodeConflict || e.Description != "room is full" {
		t.Fatalf("got %+v", e)
	}
}
