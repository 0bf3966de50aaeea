package contract

import "testing"

// The event encodings are on every message's path: the messages service
// encodes chat.message once per send, and gateways relay the bytes as they are.
//
//	go test -run '^$' -bench . -benchmem

var benchMessage = Message{ID: "V1StGXR8_Z5jdHi6B-myA", Seq: 42, Sender: "anonymous-wolf-AbC12",
	Text: "a chat message of a typical length, with an emoji 👋 and \"quotes\"", Timestamp: 1700000000000,
	RoomID: "V1StGXR8_Z5jdHi6B-myT", Token: "marker-of-the-author"}

func BenchmarkMessageEvent(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = MessageEvent(benchMessage)
	}
}

func BenchmarkDestroyEvent(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = DestroyEvent(ReasonExpired)
	}
}
