package redisstore_test

import (
	"context"
	"testing"
	"time"

	"wisp/contract"
	"wisp/services/messages/internal/message"
	"wisp/services/messages/internal/redisstore"
	"wisp/testkit"
)

// The send script against a real redis-server:
//
//	go test -run '^$' -bench . -benchmem ./internal/redisstore/

const benchLimit = 1 << 30

type nopPublisher struct{}

func (nopPublisher) Published(context.Context, contract.Message) error { return nil }

func benchStore(b *testing.B) *redisstore.Messages {
	r := testkit.StartRedis(b)
	testkit.SeedRoom(b, r.Client(b), roomID, time.Now().Add(time.Hour), "tok-alice", "tok-bob")
	return redisstore.NewMessages(r.Client(b))
}

// BenchmarkAppend is one append script round trip after another.
func BenchmarkAppend(b *testing.B) {
	store := benchStore(b)
	ctx := context.Background()
	hash := contract.TokenHash("tok-alice")
	d := message.Draft{ID: contract.RandomID(21), RoomID: roomID, Sender: "alice", Text: "a chat message of a typical length", Timestamp: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := store.Append(ctx, d, hash, benchLimit); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendParallel is many appends in flight, as the messages
// service runs them (one goroutine per request, one connection pool).
func BenchmarkAppendParallel(b *testing.B) {
	store := benchStore(b)
	hash := contract.TokenHash("tok-alice")
	d := message.Draft{ID: contract.RandomID(21), RoomID: roomID, Sender: "alice", Text: "a chat message of a typical length", Timestamp: time.Now()}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := store.Append(ctx, d, hash, benchLimit); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSend is the messages service's whole send (validation, ids,
// token hash, append, event encoding) with a publisher that drops events.
func BenchmarkSend(b *testing.B) {
	svc := message.NewService(benchStore(b), nopPublisher{}, benchLimit)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.Send(ctx, contract.SendRequest{RoomID: roomID, Token: "tok-alice", Sender: "alice", Text: "a chat message of a typical length"}); err != nil {
			b.Fatal(err)
		}
	}
}
