package relay

import (
	"fmt"
	"strconv"
	"testing"
)

// The gateway's fan-out: one event to the two clients of its room, with
// many other rooms on the hub.
//
//	go test -run '^$' -bench . -benchmem ./internal/relay/

type nopSub struct{}

func (nopSub) Subscribe(string) (func(), error) { return func() {}, nil }

func benchHub(b *testing.B, rooms int) (*Hub, []string, [][2]*Client) {
	h := NewHub(nopSub{})
	ids := make([]string, rooms)
	clients := make([][2]*Client, rooms)
	for i := range rooms {
		ids[i] = fmt.Sprintf("room-%021d", i)
		for k := range 2 {
			c := NewClient("m", "tok", 64)
			if err := h.Join(ids[i], c, State{}); err != nil {
				b.Fatal(err)
			}
			clients[i][k] = c
		}
	}
	return h, ids, clients
}

var benchEvent = []byte(`{"event":"chat.message","data":{"id":"V1StGXR8_Z5jdHi6B-myA","seq":42,"sender":"anonymous-wolf","text":"a chat message of a typical length","timestamp":1700000000000,"roomId":"V1StGXR8_Z5jdHi6B-myT"}}`)

// BenchmarkDeliver queues each event for both clients of its room and the
// clients take it off their queues.
func BenchmarkDeliver(b *testing.B) {
	for _, rooms := range []int{1, 5000} {
		b.Run(strconv.Itoa(rooms)+"rooms", func(b *testing.B) {
			h, ids, clients := benchHub(b, rooms)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := i % rooms
				h.Deliver(ids[r], benchEvent, false)
				for _, c := range clients[r] {
					c.Next()
				}
				i++
			}
		})
	}
}
