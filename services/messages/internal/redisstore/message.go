// Package redisstore keeps messages in Redis with the key layout of
// wisp/contract; append and list are one Lua script each.
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
	appends pipeliner
}

// NewMessages returns a store on rdb.
func NewMessages(rdb redis.UniversalClient) *Messages {
	return &Messages{rdb: rdb, appends: pipeliner{rdb: rdb}}
}

var _ message.Store = (*Messages)(nil)

// body is the stored JSON after the seq and author the script prepends.
type body struct {
	ID        string `json:"id"`
	Sender    string `json:"sender"`
	Text      string `json:"text"`
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
// flight go to Redis together, in one pipeline (see pipeliner).
func (s *Messages) Append(ctx context.Context, d message.Draft, tokenHash string, limit int) (message.Stored, error) {
	raw, err := json.Marshal(body{ID: d.ID, Sender: d.Sender, Text: d.Text, Timestamp: d.Timestamp.UnixMilli(), RoomID: d.RoomID})
	if err != nil {
		return message.Stored{}, err
	}
	res, err := s.appends.run(ctx, appendScript,
		[]string{contract.RoomKey(d.RoomID), contract.MembersKey(d.RoomID), contract.MessagesKey(d.RoomID)},
		tokenHash, raw[1:], limit)
	if err != nil {
		return message.Stored{}, classify(err)
	}
	if len(res) != 2 {
		return message.Stored{}, fmt.Errorf("append: unexpected reply %v", res)
	}
	seq, _ := res[0].(int64)
	marker, _ := res[1].(string)
	return message.Stored{Draft: d, Seq: seq, Author: marker}, nil
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
		var e entry
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			return nil, "", fmt.Errorf("list: bad entry: %w", err)
		}
		out = append(out, message.Stored{Seq: e.Seq, Author: e.Author, Draft: message.Draft{
			ID: e.ID, RoomID: e.RoomID, Sender: e.Sender, Text: e.Text, Timestamp: time.UnixMilli(e.Timestamp)}})
	}
	return out, res[0], nil
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
	}
	return err
}
