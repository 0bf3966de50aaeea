// Package natsapi is the gateway's side of NATS: requests to the rooms and
// messages services, and per-room event feeds for the relay.
package natsapi

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"wisp/contract"
	"wisp/platform/natsrpc"
)

// Backend calls the rooms and messages services.
type Backend struct {
	nc      *nats.Conn
	timeout time.Duration
}

// NewBackend returns a client whose calls give up after timeout.
func NewBackend(nc *nats.Conn, timeout time.Duration) *Backend {
	return &Backend{nc: nc, timeout: timeout}
}

func call[Rep any](ctx context.Context, b *Backend, subject string, req any) (Rep, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return natsrpc.Call[Rep](ctx, b.nc, subject, req)
}

func raw(ctx context.Context, b *Backend, subject string, req any) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return natsrpc.Request(ctx, b.nc, subject, req)
}

// CreateRoom creates a room.
func (b *Backend) CreateRoom(ctx context.Context) (contract.CreateRoomReply, error) {
	return call[contract.CreateRoomReply](ctx, b, contract.SubjectRoomCreate, struct{}{})
}

// Join admits the holder of token (possibly "") to the room.
func (b *Backend) Join(ctx context.Context, roomID, token string) (contract.JoinReply, error) {
	return call[contract.JoinReply](ctx, b, contract.SubjectRoomJoin, contract.RoomRequest{RoomID: roomID, Token: token})
}

// Authorize checks the token's membership of the live room.
func (b *Backend) Authorize(ctx context.Context, roomID, token string) (contract.AuthorizeReply, error) {
	return call[contract.AuthorizeReply](ctx, b, contract.SubjectRoomAuth, contract.RoomRequest{RoomID: roomID, Token: token})
}

// TTL returns the rooms service's reply as sent: it is already the API's
// {"ttl": n}.
func (b *Backend) TTL(ctx context.Context, roomID, token string) ([]byte, error) {
	return raw(ctx, b, contract.SubjectRoomTTL, contract.RoomRequest{RoomID: roomID, Token: token})
}

// Destroy ends the room.
func (b *Backend) Destroy(ctx context.Context, roomID, token string) error {
	_, err := raw(ctx, b, contract.SubjectRoomDestroy, contract.RoomRequest{RoomID: roomID, Token: token})
	return err
}

// Send returns the messages service's reply as sent: it is already the
// API's {"message": …}, so the hot path relays bytes without re-encoding.
func (b *Backend) Send(ctx context.Context, req contract.SendRequest) ([]byte, error) {
	return raw(ctx, b, contract.SubjectMessageSend, req)
}

// List returns every message after seq `after`, asking page by page.
func (b *Backend) List(ctx context.Context, roomID, token string, after int64) ([]contract.Message, error) {
	var all []contract.Message
	for {
		page, err := call[contract.ListReply](ctx, b, contract.SubjectMessageList,
			contract.ListRequest{RoomID: roomID, Token: token, After: after})
		if err != nil {
			return nil, err
		}
		all = append(all, page.Messages...)
		if !page.More || len(page.Messages) == 0 {
			return all, nil
		}
		after = page.Messages[len(page.Messages)-1].Seq
	}
}

// Feeds subscribes to rooms' event subjects on demand. All room
// subscriptions share one channel and one dispatching goroutine, so an idle
// room costs a subscription record, not a goroutine.
type Feeds struct {
	nc   *nats.Conn
	msgs chan *nats.Msg
}

// feedBuffer is how many events may wait for dispatch; dispatch never
// blocks (the relay drops slow clients), so it only absorbs bursts.
const feedBuffer = 65536

// NewFeeds returns feeds on nc; Run hands their events on.
func NewFeeds(nc *nats.Conn) *Feeds {
	return &Feeds{nc: nc, msgs: make(chan *nats.Msg, feedBuffer)}
}

// Subscribe registers interest in the room's events and waits until the
// server has it, so no event published after this returns is missed.
func (f *Feeds) Subscribe(roomID string) (func(), error) {
	sub, err := f.nc.ChanSubscribe(contract.RoomEventsSubject(roomID), f.msgs)
	if err != nil {
		return nil, err
	}
	if err := f.nc.FlushTimeout(2 * time.Second); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// Run hands events to deliver in arrival order until ctx ends.
func (f *Feeds) Run(ctx context.Context, deliver func(roomID string, data []byte, last bool)) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-f.msgs:
			event, roomID, ok := splitSubject(m.Subject)
			if !ok {
				continue
			}
			deliver(roomID, m.Data, event == contract.EventDestroy)
		}
	}
}

// splitSubject turns "chat.message.<id>" into ("chat.message", "<id>").
func splitSubject(s string) (event, roomID string, ok bool) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}
