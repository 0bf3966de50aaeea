// Package redisstore keeps messages in Redis with the key layout of
// wisp/contract; append (idempotent by clientId) and list are one Lua
// script each.
package redisstore

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"wisp/contract"
	"wisp/platform/redisbatch"
	"wisp/services/messages/internal/message"
)

var (
	//go:embed lua/append.lua
	appendSrc string
	//go:embed lua/list.lua
	listSrc string

	appendScript = redis.NewScript(appendSrc)
	listScript   = redis.NewScript(listSrc)
)

// Messages implements message.Store.
type Messages struct {
	rdb     redis.UniversalClient
	appends *redisbatch.Batcher
}

// NewMessages returns a store on rdb.
func NewMessages(rdb redis.UniversalClient) *Messages {
	return &Messages{rdb: rdb, appends: redisbatch.New(rdb)}
}

var _ message.Store = (*Messages)(nil)

// body is the stored JSON after the seq and author the script prepends.
type body struct {
	ID        string `json:"id"`
	Sender    string `json:"sender"`
	Text      string `json:"text"`
	Envelope  string `json:"envelope,omitempty"`
	Timestamp int64  `json:"timestamp"`
	RoomID    string `json:"roomId"`
}

// entry is a stored list element.
type entry struct {
	Seq    int64  `json:"seq"`
	Author string `json:"author"`
	body
}

// Append runs the append script. Appends that arrive while others are in
// flight go to Redis together, in one pipeline (see redisbatch).
func (s *Messages) Append(ctx context.Context, d message.Draft, tokenHash string, limit int) (message.Stored, error) {
	raw, err := json.Marshal(body{ID: d.ID, Sender: d.Sender, Text: d.Text, Envelope: d.Envelope,
		Timestamp: d.Timestamp.UnixMilli(), RoomID: d.RoomID})
	if err != nil {
		return message.Stored{}, err
	}
	sealed := ""
	if d.Envelope != "" {
		sealed = "1"
	}
	res, err := s.appends.Run(ctx, appendScript,
		[]string{contract.RoomKey(d.RoomID), contract.MembersKey(d.RoomID), contract.MessagesKey(d.RoomID), contract.ClientsKey(d.RoomID)},
		tokenHash, raw[1:], limit, d.ClientID, sealed).Slice()
	if err != nil {
		return message.Stored{}, classify(err)
	}
	switch len(res) {
	case 2:
		seq, _ := res[0].(int64)
		marker, _ := res[1].(string)
		return message.Stored{Draft: d, Seq: seq, Author: marker}, nil
	case 3:
		// A retry: the message as the first send stored it.
		first, _ := res[2].(string)
		st, err := decodeEntry(first)
		if err != nil {
			return message.Stored{}, fmt.Errorf("append: %w", err)
		}
		return st, nil
	}
	return message.Stored{}, fmt.Errorf("append: unexpected reply %v", res)
}

// List runs the list script.
func (s *Messages) List(ctx context.Context, roomID, tokenHash string, after int64, max int) ([]message.Stored, string, error) {
	res, err := listScript.Run(ctx, s.rdb, []string{contract.MembersKey(roomID), contract.MessagesKey(roomID)},
		tokenHash, after, max).StringSlice()
	if err != nil {
		return nil, "", classify(err)
	}
	if len(res) == 0 {
		return nil, "", fmt.Errorf("list: empty reply")
	}
	out := make([]message.Stored, 0, len(res)-1)
	for _, raw := range res[1:] {
		st, err := decodeEntry(raw)
		if err != nil {
			return nil, "", fmt.Errorf("list: %w", err)
		}
		out = append(out, st)
	}
	return out, res[0], nil
}

// decodeEntry reads a list element back into a stored message.
func decodeEntry(raw string) (message.Stored, error) {
	var e entry
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return message.Stored{}, fmt.Errorf("bad entry: %w", err)
	}
	return message.Stored{Seq: e.Seq, Author: e.Author, Draft: message.Draft{
		ID: e.ID, RoomID: e.RoomID, Sender: e.Sender, Text: e.Text, Envelope: e.Envelope, Timestamp: time.UnixMilli(e.Timestamp)}}, nil
}

// classify turns the scripts' error replies into domain errors.
func classify(err error) error {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "GONE"):
		return message.ErrRoomGone
	case strings.HasPrefix(msg, "UNAUTHORIZED"):
		return message.ErrUnauthorized
	case strings.HasPrefix(msg, "LIMIT"):
		return message.ErrRoomFull
	case strings.HasPrefix(msg, "SEALED"):
		return message.ErrSealedOnly
	case strings.HasPrefix(msg, "PLAIN"):
		return message.ErrPlainOnly
	}
	return err
}
