package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"wisp/contract"
)

// fakeBackend plays the rooms and messages services for the gateway's
// tests: same contract, same errors, events published on real NATS.
type fakeBackend struct {
	nc    *nats.Conn
	mu    sync.Mutex
	rooms map[string]*fakeRoom
	joins int
}

type fakeRoom struct {
	members map[string]string // token -> marker
	expires time.Time
	msgs    []contract.Message
	authors []string
}

func newFakeBackend(nc *nats.Conn) *fakeBackend {
	return &fakeBackend{nc: nc, rooms: map[string]*fakeRoom{}}
}

func cerr(code, desc string) error { return &contract.Error{Code: code, Description: desc} }

func (f *fakeBackend) CreateRoom(context.Context) (contract.CreateRoomReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := contract.RandomID(contract.RoomIDLen)
	now := time.Now()
	f.rooms[id] = &fakeRoom{members: map[string]string{}, expires: now.Add(10 * time.Minute)}
	return contract.CreateRoomReply{RoomID: id, CreatedAt: now.UnixMilli(), ExpiresAt: now.Add(10 * time.Minute).UnixMilli()}, nil
}

func (f *fakeBackend) Join(_ context.Context, roomID, token string) (contract.JoinReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rooms[roomID]
	if !ok {
		return contract.JoinReply{}, cerr(contract.CodeNotFound, "room not found")
	}
	if _, member := r.members[token]; member && token != "" {
		return contract.JoinReply{Token: token, ExpiresAt: r.expires.UnixMilli()}, nil
	}
	if len(r.members) >= 2 {
		return contract.JoinReply{}, cerr(contract.CodeConflict, "room is full")
	}
	f.joins++
	tok := contract.RandomID(32)
	r.members[tok] = contract.RandomID(16)
	return contract.JoinReply{Token: tok, Joined: true, ExpiresAt: r.expires.UnixMilli()}, nil
}

func (f *fakeBackend) member(roomID, token string) (*fakeRoom, string, error) {
	r, ok := f.rooms[roomID]
	if !ok {
		return nil, "", cerr(contract.CodeUnauthorized, "Unauthorized")
	}
	marker, ok := r.members[token]
	if !ok {
		return nil, "", cerr(contract.CodeUnauthorized, "Unauthorized")
	}
	return r, marker, nil
}

func (f *fakeBackend) Authorize(_ context.Context, roomID, token string) (contract.AuthorizeReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, _, err := f.member(roomID, token)
	if err != nil {
		return contract.AuthorizeReply{}, err
	}
	return contract.AuthorizeReply{ExpiresAt: r.expires.UnixMilli()}, nil
}

func (f *fakeBackend) TTL(_ context.Context, roomID, token string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, _, err := f.member(roomID, token)
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, `{"ttl":%d}`, int(time.Until(r.expires).Seconds())), nil
}

func (f *fakeBackend) Destroy(_ context.Context, roomID, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, _, err := f.member(roomID, token); err != nil {
		return err
	}
	delete(f.rooms, roomID)
	return f.nc.Publish(contract.DestroySubject(roomID), contract.DestroyEvent(contract.ReasonDestroyed))
}

func (f *fakeBackend) Send(_ context.Context, req contract.SendRequest) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, marker, err := f.member(req.RoomID, req.Token)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Text) == "" || strings.TrimSpace(req.Sender) == "" {
		return nil, cerr(contract.CodeBadRequest, "text must not be empty")
	}
	m := contract.Message{ID: contract.RandomID(21), Seq: int64(len(r.msgs) + 1), Sender: req.Sender, Text: req.Text,
		Timestamp: time.Now().UnixMilli(), RoomID: req.RoomID}
	r.msgs = append(r.msgs, m)
	r.authors = append(r.authors, marker)
	if err := f.nc.Publish(contract.MessageSubject(req.RoomID), contract.MessageEvent(m)); err != nil {
		return nil, err
	}
	m.Token = marker
	return json.Marshal(contract.SendReply{Message: m})
}

func (f *fakeBackend) List(_ context.Context, roomID, token string, after int64) ([]contract.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, marker, err := f.member(roomID, token)
	if err != nil {
		return nil, err
	}
	var out []contract.Message
	for i, m := range r.msgs {
		if m.Seq > after {
			if r.authors[i] == marker {
				m.Token = marker
			}
			out = append(out, m)
		}
	}
	return out, nil
}

func (f *fakeBackend) joinCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.joins
}
