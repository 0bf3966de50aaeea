// Package realtime is wisp's chat protocol on one member's socket: it
// reads the client's frames (send, typing, read, key), answers sends with
// an ack or an error, and passes typing, read receipts and public keys on
// to the other member. Framing is package ws's job, fan-out package relay's.
package realtime

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"time"

	"wisp/contract"
	"wisp/services/gateway/internal/ws"
)

// Backend stores messages (the messages service).
type Backend interface {
	Send(ctx context.Context, req contract.SendRequest) ([]byte, error)
}

// Signals publishes a member's typing, read receipts and keys to the room.
type Signals interface {
	Signal(subject, member string, frame []byte) error
}

// Outbox queues a frame for this socket alone. Hold, when a send goes
// out, lets the outbox keep what comes meanwhile, so that the message's
// own event and the answer (Answer; seq is the stored message's, 0 for an
// error) are written together.
type Outbox interface {
	Send(frame []byte) bool
	Hold()
	Answer(frame []byte, seq int64) bool
}

// Limits of what one socket may send.
const (
	// FrameRate and FrameBurst bound a socket's frames (token bucket).
	FrameRate  = 10
	FrameBurst = 20
	// MaxOverLimit frames in a row over the rate close the socket.
	MaxOverLimit = 100
	// SignalEvery is the least time between two relayed typing signals, or
	// two repeats of one read receipt.
	SignalEvery = time.Second
	// MaxInFlight sends of one socket may wait for the messages service;
	// beyond that the socket's reader waits too.
	MaxInFlight = 16
	// MaxGatewaySends may wait for it across all of a gateway's sockets: a
	// waiting send holds a goroutine and its request (about 8 KB), so with
	// the messages service slow, thousands of busy sockets would otherwise
	// hold a gateway's memory limit. Beyond it, readers wait, and clients'
	// frames stay in their connections' buffers.
	MaxGatewaySends = 4096
)

// Config is what every session shares.
type Config struct {
	Backend Backend
	Signals Signals
	// Status maps a failed send to the HTTP status and text the HTTP API
	// would answer with (one mapping for both).
	Status func(error) (int, string)
	// RateLimits turns the per-socket frame limits on.
	RateLimits bool
	// Timeout bounds one send's call to the backend.
	Timeout time.Duration
	// Sends is shared by the sessions: one slot per send waiting for the
	// backend (NewSends).
	Sends chan struct{}
}

// NewSends returns the slots of a gateway's waiting sends.
func NewSends() chan struct{} { return make(chan struct{}, MaxGatewaySends) }

// Session is one socket's protocol state. OnText runs on the socket's
// reader goroutine only, so the fields it alone uses need no lock.
type Session struct {
	cfg    *Config
	out    Outbox
	roomID string
	token  string
	member string

	tokens     float64 // rate bucket
	refilled   time.Time
	overLimit  int
	lastTyping time.Time
	lastRead   int64
	lastReadAt time.Time
	inflight   chan struct{}
}

// NewSession returns the protocol state of a member's socket in a room.
func NewSession(cfg *Config, out Outbox, roomID, token, member string) *Session {
	return &Session{cfg: cfg, out: out, roomID: roomID, token: token, member: member, tokens: FrameBurst}
}

// frame is any client frame; fields of other types are left nil.
type frame struct {
	Type     string  `json:"type"`
	ClientID *string `json:"clientId"`
	Sender   *string `json:"sender"`
	Text     *string `json:"text"`
	Envelope *string `json:"envelope"`
	Seq      *int64  `json:"seq"`
	Alg      *string `json:"alg"`
	Key      *string `json:"key"`
	Peer     *string `json:"peer"`
}

// OnText handles one client message; a non-zero code closes the socket.
func (s *Session) OnText(msg []byte) (ws.StatusCode, string) {
	var f frame
	if err := json.Unmarshal(msg, &f); err != nil || !bytes.HasPrefix(bytes.TrimLeft(msg, " \t\r\n"), []byte("{")) {
		return ws.StatusPolicy, "frames are JSON objects"
	}
	switch f.Type {
	case "send", "typing", "read", "key":
	default:
		return ws.StatusPolicy, "unknown frame type"
	}
	if !s.allow(time.Now()) {
		if s.overLimit++; s.overLimit >= MaxOverLimit {
			return ws.StatusPolicy, "too many frames"
		}
		if f.Type == "send" {
			s.fail(f.ClientID, 429, "too many messages, slow down")
		}
		return 0, ""
	}
	s.overLimit = 0
	switch f.Type {
	case "send":
		s.send(f)
	case "typing":
		s.typing()
	case "read":
		if f.Seq == nil || *f.Seq < 1 {
			return ws.StatusPolicy, "read needs a seq of 1 or more"
		}
		s.read(*f.Seq)
	case "key":
		d, ok := keyData(f)
		if !ok {
			return ws.StatusPolicy, "key needs alg X25519 (32 bytes) or P-256 (65 bytes) and peer of 16 bytes, in base64url"
		}
		_ = s.cfg.Signals.Signal(contract.KeySubject(s.roomID), s.member, contract.KeyEvent(d))
	}
	return 0, ""
}

// keyLen is the raw public key's length for each key agreement a page may
// use: X25519, or P-256 (uncompressed point) where X25519 is missing.
var keyLen = map[string]int{"X25519": 32, "P-256": 65}

// fingerprintLen is the length of a key fingerprint in bytes (128 bits).
const fingerprintLen = 16

// keyData checks a key frame and returns what the other member receives.
// Keys are relayed on every frame, never throttled like typing: a page
// answers the other's key with its own, and a lost one would leave both
// without a key. The socket's frame budget still bounds them.
func keyData(f frame) (contract.KeyData, bool) {
	if f.Alg == nil || f.Key == nil {
		return contract.KeyData{}, false
	}
	want, ok := keyLen[*f.Alg]
	if !ok || decodedLen(*f.Key) != want {
		return contract.KeyData{}, false
	}
	d := contract.KeyData{Alg: *f.Alg, Key: *f.Key}
	if f.Peer != nil && *f.Peer != "" {
		if decodedLen(*f.Peer) != fingerprintLen {
			return contract.KeyData{}, false
		}
		d.Peer = *f.Peer
	}
	return d, true
}

// decodedLen is the length of s as unpadded base64url, -1 when it is not.
func decodedLen(s string) int {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return -1
	}
	return len(b)
}

// allow takes a token from the socket's bucket.
func (s *Session) allow(now time.Time) bool {
	if !s.cfg.RateLimits {
		return true
	}
	if !s.refilled.IsZero() {
		s.tokens = min(FrameBurst, s.tokens+now.Sub(s.refilled).Seconds()*FrameRate)
	}
	s.refilled = now
	if s.tokens < 1 {
		return false
	}
	s.tokens--
	return true
}

func (s *Session) send(f frame) {
	if f.ClientID == nil || !contract.ValidClientID(*f.ClientID) {
		s.fail(nil, 400, "send needs a clientId of 1-64 characters A-Z a-z 0-9 _ -")
		return
	}
	req := contract.SendRequest{RoomID: s.roomID, Token: s.token, ClientID: *f.ClientID}
	switch {
	case f.Sender != nil && f.Text != nil:
		req.Sender, req.Text = *f.Sender, *f.Text
		if f.Envelope != nil {
			req.Envelope = *f.Envelope
		}
	case f.Envelope != nil && *f.Envelope != "":
		req.Envelope = *f.Envelope
	default:
		s.fail(f.ClientID, 400, "sender and text (or an envelope) are required")
		return
	}
	if s.inflight == nil {
		s.inflight = make(chan struct{}, MaxInFlight)
	}
	s.inflight <- struct{}{}
	s.cfg.Sends <- struct{}{}
	s.out.Hold()
	go func() {
		defer func() { <-s.cfg.Sends; <-s.inflight }()
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
		defer cancel()
		raw, err := s.cfg.Backend.Send(ctx, req)
		if err != nil {
			status, text := s.cfg.Status(err)
			s.out.Answer(errorFrame(&req.ClientID, status, text), 0)
			return
		}
		seq, _ := contract.ReplySeq(raw)
		s.out.Answer(AckFrame(req.ClientID, raw), seq)
	}()
}

// AckFrame wraps the messages service's reply ({"message": …}) as the ack
// of clientID without decoding it: {"event":"ack","data":{"clientId":…,"message":…}}.
// clientID is validated, so it needs no escaping.
func AckFrame(clientID string, reply []byte) []byte {
	b := make([]byte, 0, len(reply)+len(clientID)+40)
	b = append(b, `{"event":"ack","data":{"clientId":"`...)
	b = append(b, clientID...)
	b = append(b, `",`...)
	b = append(b, bytes.TrimPrefix(bytes.TrimSpace(reply), []byte("{"))...)
	return append(b, '}')
}

type errorData struct {
	ClientID string `json:"clientId,omitempty"`
	Status   int    `json:"status"`
	Error    string `json:"error"`
}

func (s *Session) fail(clientID *string, status int, text string) {
	s.out.Send(errorFrame(clientID, status, text))
}

func errorFrame(clientID *string, status int, text string) []byte {
	d := errorData{Status: status, Error: text}
	if clientID != nil && contract.ValidClientID(*clientID) {
		d.ClientID = *clientID
	}
	data, _ := json.Marshal(d) // a fixed struct always encodes
	return append(append([]byte(`{"event":"error","data":`), data...), '}')
}

func (s *Session) typing() {
	now := time.Now()
	if now.Sub(s.lastTyping) < SignalEvery {
		return
	}
	s.lastTyping = now
	_ = s.cfg.Signals.Signal(contract.TypingSubject(s.roomID), s.member, contract.TypingEvent)
}

// read relays a receipt that advances; repeating the last one (as a page
// does when the other member comes back online) is relayed at most once per
// SignalEvery.
func (s *Session) read(seq int64) {
	now := time.Now()
	if seq < s.lastRead || seq == s.lastRead && now.Sub(s.lastReadAt) < SignalEvery {
		return
	}
	s.lastRead, s.lastReadAt = seq, now
	_ = s.cfg.Signals.Signal(contract.ReadSubject(s.roomID), s.member, contract.ReadEvent(seq))
}
