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
		"message":        msg,
		"create_request": CreateRoomRequest{TTL: 300},
		// The default lifetime: the same body as before there was a choice.
		"create_default": CreateRoomRequest{},
		"create_reply":   CreateRoomReply{RoomID: "V1StGXR8_Z5jdHi6B-myT", CreatedAt: 1700000000000, ExpiresAt: 1700000600000},
		"room_request":   RoomRequest{RoomID: "V1StGXR8_Z5jdHi6B-myT", Token: "secret"},
		"join_reply":     JoinReply{Token: "secret", Joined: true, ExpiresAt: 1700000600000},
		"auth_reply":     AuthorizeReply{ExpiresAt: 1700000600000, Member: "mk", LastSeq: 7},
		"ttl_reply":      TTLReply{TTL: 599},
		"destroy_reply":  DestroyReply{},
		"send_request":   SendRequest{RoomID: "V1StGXR8_Z5jdHi6B-myT", Token: "secret", Sender: "a", Text: "b", ClientID: "c-1_x"},
		// An old client's send, without a clientId, keeps its old form.
		"send_legacy":   SendRequest{RoomID: "V1StGXR8_Z5jdHi6B-myT", Token: "secret", Sender: "a", Text: "b"},
		"send_reply":    SendReply{Message: msg},
		"list_request":  ListRequest{RoomID: "V1StGXR8_Z5jdHi6B-myT", Token: "secret", After: 2},
		"list_reply":    ListReply{Messages: []Message{msg}},
		"event_message": json.RawMessage(MessageEvent(msg)),
		"event_destroy": json.RawMessage(DestroyEvent(ReasonExpired)),
		// End-to-end rooms: the flag at creation, in authorize and ttl, the
		// envelope in place of sender and text, and the key frame.
		"create_e2e":  CreateRoomRequest{E2E: true},
		"auth_e2e":    AuthorizeReply{ExpiresAt: 1700000600000, Member: "mk", LastSeq: 7, E2E: true},
		"ttl_e2e":     TTLReply{TTL: 599, E2E: true},
		"send_sealed": SendRequest{RoomID: "V1StGXR8_Z5jdHi6B-myT", Token: "secret", ClientID: "c-1_x", Envelope: "AQID"},
		"event_sealed": json.RawMessage(MessageEvent(Message{ID: "m2", Seq: 4, Envelope: "AQID", Timestamp: 1700000000000,
			RoomID: "V1StGXR8_Z5jdHi6B-myT", Token: "mk"})),
		"event_key": json.RawMessage(KeyEvent(KeyData{Alg: "X25519", Key: "a2V5", Peer: "ZnA"})),
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
	keys := RoomKeys(id)
	if len(keys) != 4 || keys[0] != RoomKey(id) || keys[1] != MembersKey(id) {
		t.Fatalf("RoomKeys = %v, want the room and members keys first, and all four", keys)
	}
	for _, k := range keys {
		if want := "{" + id + "}"; !strings.Contains(k, want) {
			t.Errorf("%s lacks hash tag %s", k, want)
		}
	}
	if got, ok := RoomIDFromKey(RoomKey(id)); !ok || got != id {
		t.Errorf("RoomIDFromKey(RoomKey) = %q, %v", got, ok)
	}
	for _, k := range []string{MembersKey(id), MessagesKey(id), ClientsKey(id), DeadlinesKey, "wisp:room:{bad id}"} {
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

func TestSeqOfReadsMessageFrames(t *testing.T) {
	frame := MessageEvent(Message{ID: "V1StGXR8_Z5jdHi6B-myA", Seq: 1234, Sender: "a", Text: `"seq":9`, RoomID: "r"})
	if seq, ok := SeqOf(frame); !ok || seq != 1234 {
		t.Fatalf("SeqOf = %d, %v", seq, ok)
	}
	for _, f := range [][]byte{DestroyEvent(ReasonExpired), PresenceEvent(true), []byte(`{"event":"chat.message","data":{"id":"x"}}`)} {
		if _, ok := SeqOf(f); ok {
			t.Fatalf("seq found in %s", f)
		}
	}
	reply, err := json.Marshal(SendReply{Message: Message{ID: "V1StGXR8_Z5jdHi6B-myA", Seq: 77, Text: `"seq":9`, Token: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	if seq, ok := ReplySeq(reply); !ok || seq != 77 {
		t.Fatalf("ReplySeq(%s) = %d, %v", reply, seq, ok)
	}
	if _, ok := ReplySeq(frame); ok {
		t.Fatal("ReplySeq read a chat.message frame as a reply")
	}
}

// TestDeadlineKeysShareHashTag: the deadline set, its outbox and its epoch
// sit in one Cluster slot, and an ending member round-trips.
func TestDeadlineKeysShareHashTag(t *testing.T) {
	for _, k := range []string{DeadlinesKey, EndingKey, EpochKey, EndingKeyOf(DeadlinesKey), EpochKeyOf(DeadlinesKey)} {
		if !strings.Contains(k, "{deadlines}") {
			t.Errorf("%s lacks the {deadlines} hash tag", k)
		}
	}
	if EndingKey != EndingKeyOf(DeadlinesKey) || EpochKey != EpochKeyOf(DeadlinesKey) {
		t.Fatal("the constants and the per-shard names disagree")
	}
	id := "V1StGXR8_Z5jdHi6B-myT"
	for _, reason := range []string{ReasonExpired, ReasonDestroyed, EndingResync} {
		r, got, ok := ParseEndingMember(EndingMember(reason, id))
		if !ok || r != reason || got != id {
			t.Errorf("ParseEndingMember(EndingMember(%q, id)) = %q, %q, %v", reason, r, got, ok)
		}
	}
	for _, m := range []string{"", "expired", "expired:", "gone:" + id, "expired:bad.id", id} {
		if _, _, ok := ParseEndingMember(m); ok {
			t.Errorf("ParseEndingMember(%q) accepted", m)
		}
	}
}

// TestSlotMatchesRedis: the values CLUSTER KEYSLOT answers (Redis's own
// cluster specification and redis-cli).
func TestSlotMatchesRedis(t *testing.T) {
	cases := map[string]int{
		"foo":                   12182,
		"123456789":             12739,
		"{user1000}.following":  Slot("user1000"),
		"foo{}{bar}":            Slot("foo{}{bar}"), // an empty tag hashes the whole key
		"foo{{bar}}zap":         Slot("{bar"),
		"foo{bar}{zap}":         Slot("bar"),
		"wisp:room:{abc}:extra": Slot("abc"),
	}
	for key, want := range cases {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
	if Slot("foo{}{bar}") == Slot("bar") {
		t.Error("an empty hash tag must not fall through to the next one")
	}
}

// TestDeadlineShards: the shard keys are pinned (renaming one strands its
// rooms), each shard's deadline set, outbox and epoch share a slot, shard I
// lies in the I-th sixteenth of the slot space, and rooms spread over all.
func TestDeadlineShards(t *testing.T) {
	keys := DeadlineShardKeys()
	if len(keys) != DeadlineShards || keys[0] != "wisp:{deadlines.0.10}" || keys[15] != "wisp:{deadlines.15.19}" {
		t.Fatalf("shard keys changed: %v", keys)
	}
	width := ClusterSlots / DeadlineShards
	for i, k := range keys {
		s := Slot(k)
		if s/width != i {
			t.Errorf("shard %d (%s) is in slot %d, outside [%d, %d)", i, k, s, i*width, (i+1)*width)
		}
		if Slot(EndingKeyOf(k)) != s || Slot(EpochKeyOf(k)) != s {
			t.Errorf("shard %d: its ending set or epoch is in another slot", i)
		}
	}
	seen := map[int]int{}
	for range 1600 {
		id := RandomID(RoomIDLen)
		i := DeadlineShardOf(id)
		if DeadlinesKeyOf(id) != keys[i] || Slot(RoomKey(id))/width != i {
			t.Fatalf("room %s: shard %d does not match its slot %d", id, i, Slot(RoomKey(id)))
		}
		seen[i]++
	}
	for i := range DeadlineShards {
		if seen[i] < 50 {
			t.Errorf("shard %d got %d of 1600 rooms", i, seen[i])
		}
	}
}
