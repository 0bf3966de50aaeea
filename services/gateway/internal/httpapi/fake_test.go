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
	sends int           // messages stored
	ttl   time.Duration // lifetime of rooms created from now on; 0: 10 minutes
	asked []int64       // the ttl of every CreateRoom
	e2e   []bool        // whether each CreateRoom asked for an end-to-end room
	// pageSize, when set, is the most messages one List answers.
	pageSize int
	// listGate, when set, holds every List until it is closed.
	listGate chan struct{}
}

type fakeRoom struct {
	members   map[string]string // token -> marker
	expires   time.Time
	msgs      []contract.Message
	authors   []string
	clientIDs []string
}

func newFakeBackend(nc *nats.Conn) *fakeBackend {
	return &fakeBackend{nc: nc, rooms: map[string]*fakeRoom{}}
}

func cerr(code, desc string) error { return &contract.Error{Code: code, Description: desc} }

func (f *fakeBackend) CreateRoom(_ context.Context, req contract.CreateRoomRequest) (contract.CreateRoomReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	seconds := req.TTL
	f.asked = append(f.asked, seconds)
	f.e2e = append(f.e2e, req.E2E)
	if seconds != 0 && (seconds < 60 || seconds > 3600) {
		return contract.CreateRoomReply{}, cerr(contract.CodeBadRequest, "ttl must be between 60 and 3600 seconds")
	}
	id := contract.RandomID(contract.RoomIDLen)
	now, ttl := time.Now(), f.ttl
	if seconds != 0 {
		ttl = time.Duration(seconds) * time.Second
	}
	if ttl == 0 {
		ttl = 10 * time.Minute
	}
	f.rooms[id] = &fakeRoom{members: map[string]string{}, expires: now.Add(ttl)}
	return contract.CreateRoomReply{RoomID: id, CreatedAt: now.UnixMilli(), ExpiresAt: now.Add(ttl).UnixMilli()}, nil
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
	r, marker, err := f.member(roomID, token)
	if err != nil {
		return contract.AuthorizeReply{}, err
	}
	return contract.AuthorizeReply{ExpiresAt: r.expires.UnixMilli(), Member: marker}, nil
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
	_ = f.nc.Publish(contract.DestroySubject(roomID), contract.DestroyEvent(contract.ReasonDestroyed))
	return nil
}

func (f *fakeBackend) Send(_ context.Context, req contract.SendRequest) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, marker, err := f.member(req.RoomID, req.Token)
	if err != nil {
		return nil, err
	}
	if req.Envelope == "" && (strings.TrimSpace(req.Text) == "" || strings.TrimSpace(req.Sender) == "") {
		return nil, cerr(contract.CodeBadRequest, "text must not be empty")
	}
	if req.ClientID != "" {
		// Idempotent by clientId, as the messages service is.
		for i, m := range r.msgs {
			if r.clientIDs[i] == marker+":"+req.ClientID {
				m.Token = marker
				return json.Marshal(contract.SendReply{Message: m})
			}
		}
	}
	f.sends++
	m := contract.Message{ID: contract.RandomID(21), Seq: int64(len(r.msgs) + 1), Sender: req.Sender, Text: req.Text,
		Envelope: req.Envelope, Timestamp: time.Now().UnixMilli(), RoomID: req.RoomID}
	r.msgs = append(r.msgs, m)
	r.authors = append(r.authors, marker)
	r.clientIDs = append(r.clientIDs, marker+":"+req.ClientID)
	// Stored whether or not the event goes out: with NATS away it is lost,
	// and the members' gateways must catch up.
	_ = f.nc.Publish(contract.MessageSubject(req.RoomID), contract.MessageEvent(m))
	m.Token = marker
	return json.Marshal(contract.SendReply{Message: m})
}

func (f *fakeBackend) List(_ context.Context, roomID, token string, after int64) (contract.ListReply, error) {
	if f.listGate != nil {
		<-f.listGate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r, marker, err := f.member(roomID, token)
	if err != nil {
		return contract.ListReply{}, err
	}
	out := contract.ListReply{Messages: []contract.Message{}}
	for i, m := range r.msgs {
		if m.Seq <= after {
			continue
		}
		if len(out.Messages) == f.pageSize && f.pageSize > 0 {
			out.More = true
			break
		}
		if r.authors[i] == marker {
			m.Token = marker
		}
		out.Messages = append(out.Messages, m)
	}
	return out, nil
}

func (f *fakeBackend) joinCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.joins
}
