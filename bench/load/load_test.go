package load

import (
	"testing"
	"time"
)

func TestTextOfFindsTheIDWithoutDecoding(t *testing.T) {
	frame := []byte(`{"event":"chat.message","data":{"id":"x","seq":3,"sender":"bench","text":"L42.xxxx","timestamp":1,"roomId":"r"}}`)
	if text, ok := textOf(frame); !ok || string(text) != "L42.xxxx" {
		t.Fatalf("textOf = %q %v", text, ok)
	}
	if _, ok := textOf([]byte(`{"event":"chat.destroy","data":{"isDestroyed":true,"reason":"expired"}}`)); ok {
		t.Fatal("a destroy frame has no text")
	}
}

// TestOnFrameCountsOtherMemberEchoesDuplicatesAndStrays: message i is sent
// by member i mod 2N; only the other member's copy is a delivery.
func TestOnFrameCountsOtherMemberEchoesDuplicatesAndStrays(t *testing.T) {
	r := &run{cfg: Config{Rooms: 2}, base: time.Now(), slots: make([]slot, 8), members: 4}
	rooms := []*Room{{Index: 0}, {Index: 1}}
	for _, rm := range rooms {
		for k := range rm.Members {
			rm.Members[k] = &Member{Room: rm, Index: k}
		}
	}
	msg := func(i int) []byte {
		return []byte(`{"event":"chat.message","data":{"text":"L` + string(rune('0'+i)) + `.x"}}`)
	}
	// Message 1 is member 1 of room 0's.
	r.onFrame(rooms[0].Members[1], msg(1)) // its own echo
	r.onFrame(rooms[0].Members[0], msg(1)) // delivered
	r.onFrame(rooms[0].Members[0], msg(1)) // again: a duplicate
	r.onFrame(rooms[1].Members[0], msg(1)) // another room: misrouted
	if r.echoes.Load() != 1 || r.slots[1].recv.Load() == 0 || r.slots[1].dups.Load() != 1 || r.misrouted.Load() != 1 {
		t.Fatalf("echoes %d recv %d dups %d misrouted %d", r.echoes.Load(), r.slots[1].recv.Load(), r.slots[1].dups.Load(), r.misrouted.Load())
	}
}

func TestPercentilesAndSustained(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 1000; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	p := percentiles(d)
	if p.P50 != 501*time.Millisecond || p.P99 != 991*time.Millisecond || p.Max != time.Second || p.N != 1000 {
		t.Fatalf("%+v", p)
	}
	res := Result{Scheduled: 10, Delivered: 10, SentOK: 10, Errors: map[string]int{}, Latency: Percentiles{P99: 40 * time.Millisecond}}
	if !res.Sustained(50 * time.Millisecond) {
		t.Fatal("a clean run under the limit is sustained")
	}
	res.Lost = 1
	if res.Sustained(50 * time.Millisecond) {
		t.Fatal("a run that lost a message is not sustained")
	}
}
