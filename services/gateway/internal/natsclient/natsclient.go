// Package natsclient is the gateway's side of NATS: requests to the rooms and
// messages services, and per-room event feeds for the relay.
package natsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// once and retried mark whether a call may be sent a second time: a
// retried call does the same thing twice over (reads, destroy, a send with
// a clientId), a once call would not (create, join, a send without one).
const (
	once    = false
	retried = true
)

func call[Rep any](ctx context.Context, b *Backend, subject string, req any, retry bool) (Rep, error) {
	var rep Rep
	data, err := raw(ctx, b, subject, req, retry)
	if err != nil {
		return rep, err
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		return rep, fmt.Errorf("decode %s reply: %w", subject, err)
	}
	return rep, nil
}

// retryPause is how long a retried call waits before its second try: long
// enough for a replica that came back to register again.
const retryPause = 150 * time.Millisecond

// raw sends a request and returns the reply's JSON as sent. With NATS away
// it answers 503 at once rather than wait out the timeout; a call that may
// be retried is tried once more when no replica answered or one said it
// was unavailable — the queue group hands the retry to another replica.
// Any call is tried once more when no replica received it (no responders):
// a replica that just started, or moved, may not be known yet to this
// gateway's node of a NATS cluster.
func raw(ctx context.Context, b *Backend, subject string, req any, retry bool) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	if !b.nc.IsConnected() {
		return nil, errUnavailable
	}
	data, err := natsrpc.Request(ctx, b.nc, subject, req)
	again := errors.Is(err, nats.ErrNoResponders) || retry && unavailable(err)
	if again && ctx.Err() == nil {
		select {
		case <-time.After(retryPause):
			data, err = natsrpc.Request(ctx, b.nc, subject, req)
		case <-ctx.Done():
		}
	}
	return data, err
}

var errUnavailable = &contract.Error{Code: contract.CodeUnavailable, Description: "service unavailable"}

func unavailable(err error) bool {
	ce, ok := errors.AsType[*contract.Error](err)
	return ok && ce.Code == contract.CodeUnavailable
}

// CreateRoom creates a room that lives req.TTL seconds (0: the default),
// end-to-end when req.E2E is set.
func (b *Backend) CreateRoom(ctx context.Context, req contract.CreateRoomRequest) (contract.CreateRoomReply, error) {
	return call[contract.CreateRoomReply](ctx, b, contract.SubjectRoomCreate, req, once)
}

// Join admits the holder of token (possibly "") to the room.
func (b *Backend) Join(ctx context.Context, roomID, token string) (contract.JoinReply, error) {
	return call[contract.JoinReply](ctx, b, contract.SubjectRoomJoin, contract.RoomRequest{RoomID: roomID, Token: token}, once)
}

// Authorize checks the token's membership of the live room.
func (b *Backend) Authorize(ctx context.Context, roomID, token string) (contract.AuthorizeReply, error) {
	return call[contract.AuthorizeReply](ctx, b, contract.SubjectRoomAuth, contract.RoomRequest{RoomID: roomID, Token: token}, retried)
}

// TTL returns the rooms service's reply as sent: it is already the API's
// {"ttl": n}.
func (b *Backend) TTL(ctx context.Context, roomID, token string) ([]byte, error) {
	return raw(ctx, b, contract.SubjectRoomTTL, contract.RoomRequest{RoomID: roomID, Token: token}, retried)
}

// Destroy ends the room.
func (b *Backend) Destroy(ctx context.Context, roomID, token string) error {
	_, err := raw(ctx, b, contract.SubjectRoomDestroy, contract.RoomRequest{RoomID: roomID, Token: token}, retried)
	return err
}

// Send returns the messages service's reply as sent: it is already the
// API's {"message": …}, so the hot path relays bytes without re-encoding.
func (b *Backend) Send(ctx context.Context, req contract.SendRequest) ([]byte, error) {
	return raw(ctx, b, contract.SubjectMessageSend, req, req.ClientID != "")
}

// pagesPerList is how many of the messages service's pages (each at most
// 256 KiB) one public list answer gathers: up to 1 MiB, which is every
// message of an ordinary room in one answer.
const pagesPerList = 4

// List returns the messages after seq `after`, a few service pages at a
// time; More says to ask again after the last seq.
func (b *Backend) List(ctx context.Context, roomID, token string, after int64) (contract.ListReply, error) {
	var out contract.ListReply
	for range pagesPerList {
		page, err := call[contract.ListReply](ctx, b, contract.SubjectMessageList,
			contract.ListRequest{RoomID: roomID, Token: token, After: after}, retried)
		if err != nil {
			return contract.ListReply{}, err
		}
		out.Messages = append(out.Messages, page.Messages...)
		if out.More = page.More && len(page.Messages) > 0; !out.More {
			break
		}
		after = page.Messages[len(page.Messages)-1].Seq
	}
	if out.Messages == nil {
		out.Messages = []contract.Message{}
	}
	return out, nil
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

// Handlers take a room's events, each kind its own way.
type Handlers struct {
	// Event gets stored events (chat.message, chat.destroy) as published:
	// they are the exact frames clients receive; last marks chat.destroy.
	Event func(roomID string, data []byte, last bool)
	// Signal gets a member's typing, read receipt or public key, for the
	// other member.
	Signal func(roomID string, data []byte, member string)
	// Presence gets another gateway's presence announcement.
	Presence func(roomID string, data []byte)
	// Refresh gets a batch of a gateway's presence refresh, and which
	// gateway sent it (this one's own come back too).
	Refresh func(gateway string, data []byte)
}

// Run hands events to h in arrival order until ctx ends.
func (f *Feeds) Run(ctx context.Context, h Handlers) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-f.msgs:
			if m.Subject == contract.SubjectPresenceRefresh {
				h.Refresh(m.Header.Get(contract.HeaderGateway), m.Data)
				continue
			}
			event, roomID, ok := splitSubject(m.Subject)
			if !ok {
				continue
			}
			switch event {
			case contract.EventMessage, contract.EventDestroy:
				h.Event(roomID, m.Data, event == contract.EventDestroy)
			case contract.EventTyping, contract.EventRead, contract.EventKey:
				if member := m.Header.Get(contract.HeaderMember); member != "" {
					h.Signal(roomID, m.Data, member)
				}
			case contract.EventPresence:
				h.Presence(roomID, m.Data)
			}
		}
	}
}

// Signal publishes a member's typing or read receipt on subject.
func (f *Feeds) Signal(subject, member string, frame []byte) error {
	m := nats.NewMsg(subject)
	m.Header.Set(contract.HeaderMember, member)
	m.Data = frame
	return f.nc.PublishMsg(m)
}

// PublishPresence tells every gateway of the room what this one holds.
func (f *Feeds) PublishPresence(roomID string, p contract.Presence) error {
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return f.nc.Publish(contract.PresenceSubject(roomID), data)
}

// PublishRefresh sends one batch of this gateway's presence refresh.
func (f *Feeds) PublishRefresh(r contract.PresenceRefresh) error {
	m := nats.NewMsg(contract.SubjectPresenceRefresh)
	m.Header.Set(contract.HeaderGateway, r.Gateway)
	var err error
	if m.Data, err = json.Marshal(r); err != nil {
		return err
	}
	return f.nc.PublishMsg(m)
}

// SubscribeRefresh hears every gateway's presence refreshes, in order with
// the room feeds.
func (f *Feeds) SubscribeRefresh() (func(), error) {
	sub, err := f.nc.ChanSubscribe(contract.SubjectPresenceRefresh, f.msgs)
	if err != nil {
		return nil, err
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// splitSubject turns "chat.message.<id>" into ("chat.message", "<id>").
func splitSubject(s string) (event, roomID string, ok bool) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// OnOutage adds down and up to the connection's own disconnect and
// reconnect handlers (which log and count): down runs when the connection
// drops, up after it is back — its subscriptions too.
func OnOutage(nc *nats.Conn, down, up func()) {
	prevDown, prevUp := nc.Opts.DisconnectedErrCB, nc.Opts.ReconnectedCB
	nc.SetDisconnectErrHandler(func(c *nats.Conn, err error) {
		if prevDown != nil {
			prevDown(c, err)
		}
		down()
	})
	nc.SetReconnectHandler(func(c *nats.Conn) {
		if prevUp != nil {
			prevUp(c)
		}
		up()
	})
}

// OnResync calls f whenever some service says rooms may have ended or
// messages been lost without their events (Redis lost its data).
func OnResync(nc *nats.Conn, f func()) (unsubscribe func(), err error) {
	sub, err := nc.Subscribe(contract.SubjectResync, func(*nats.Msg) { f() })
	if err != nil {
		return nil, err
	}
	return func() { _ = sub.Unsubscribe() }, nil
}
