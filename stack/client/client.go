// Package client speaks wisp's public API the way a browser does: one
// cookie jar per person, Origin on writes and on the WebSocket. The
// end-to-end tests and the load generator use it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"github.com/fasthttp/websocket"

	"wisp/contract"
)

// Person is one browser: a cookie jar against one gateway.
type Person struct {
	Base  string
	http  *http.Client
	local net.Addr // the source address of its connections; nil for the kernel's choice
}

// New returns a person using the gateway at base (http://host:port).
func New(base string) *Person { return NewFrom(base, nil) }

// NewFrom is New with every connection made from the loopback address src
// (127.x.y.z), so that many people on one machine are many client
// addresses to the gateway, as browsers are; nil is the kernel's choice.
func NewFrom(base string, src net.IP) *Person {
	jar, _ := cookiejar.New(nil)
	p := &Person{Base: strings.TrimSuffix(base, "/")}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if src != nil {
		p.local = &net.TCPAddr{IP: src}
		dialer.LocalAddr = p.local
	}
	p.http = &http.Client{
		Jar:           jar,
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
	}
	return p
}

// At returns the same person (same cookies) talking to another gateway.
func (p *Person) At(base string) *Person {
	return &Person{Base: strings.TrimSuffix(base, "/"), local: p.local, http: &http.Client{
		Jar: p.http.Jar, Timeout: p.http.Timeout, CheckRedirect: p.http.CheckRedirect, Transport: p.http.Transport,
	}}
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Status   int
	Message  string
	Location string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%d %s%s", e.Status, e.Message, e.Location)
}

// Do sends a request and decodes a JSON answer into out (when not nil).
func (p *Person) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.Base+path, rd)
	if err != nil {
		return err
	}
	if method != http.MethodGet {
		req.Header.Set("Origin", p.Base)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		_ = json.Unmarshal(data, &e)
		return &StatusError{Status: resp.StatusCode, Message: e.Error, Location: resp.Header.Get("Location")}
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// Create makes a room and returns its id.
func (p *Person) Create(ctx context.Context) (string, error) {
	var r struct{ RoomID string }
	err := p.Do(ctx, http.MethodPost, "/api/room/create", nil, &r)
	return r.RoomID, err
}

// Join opens the room's page, which admits the person (their cookie).
// A refusal is a *StatusError with the redirect's Location.
func (p *Person) Join(ctx context.Context, roomID string) error {
	return p.Do(ctx, http.MethodGet, "/room/"+roomID, nil, nil)
}

// Send posts a message and returns it as stored.
func (p *Person) Send(ctx context.Context, roomID, sender, text string) (contract.Message, error) {
	var r contract.SendReply
	err := p.Do(ctx, http.MethodPost, "/api/messages?roomId="+url.QueryEscape(roomID),
		map[string]string{"sender": sender, "text": text}, &r)
	return r.Message, err
}

// List returns the first page of the room's messages after seq.
func (p *Person) List(ctx context.Context, roomID string, after int64) ([]contract.Message, error) {
	r, err := p.Page(ctx, roomID, after)
	return r.Messages, err
}

// Page returns one page of the room's messages after seq, with More set
// when later ones remain (the next page starts after the last seq).
func (p *Person) Page(ctx context.Context, roomID string, after int64) (contract.ListReply, error) {
	var r contract.ListReply
	err := p.Do(ctx, http.MethodGet, fmt.Sprintf("/api/messages?roomId=%s&after=%d", url.QueryEscape(roomID), after), nil, &r)
	return r, err
}

// TTL returns the seconds the room has left.
func (p *Person) TTL(ctx context.Context, roomID string) (int64, error) {
	var r contract.TTLReply
	err := p.Do(ctx, http.MethodGet, "/api/room/ttl?roomId="+url.QueryEscape(roomID), nil, &r)
	return r.TTL, err
}

// Destroy ends the room now.
func (p *Person) Destroy(ctx context.Context, roomID string) error {
	return p.Do(ctx, http.MethodDelete, "/api/room?roomId="+url.QueryEscape(roomID), nil, nil)
}

// Socket is a room's WebSocket.
type Socket struct{ *websocket.Conn }

// Frame is one realtime event.
type Frame struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// Dial opens the room's WebSocket with the person's cookie.
func (p *Person) Dial(ctx context.Context, roomID string) (*Socket, error) {
	u, _ := url.Parse(p.Base)
	h := http.Header{"Origin": {p.Base}}
	var cookies []string
	for _, c := range p.http.Jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	if len(cookies) > 0 {
		h.Set("Cookie", strings.Join(cookies, "; "))
	}
	ws := "ws" + strings.TrimPrefix(p.Base, "http") + "/api/realtime?roomId=" + url.QueryEscape(roomID)
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 256}
	if p.local != nil {
		d.NetDialContext = (&net.Dialer{Timeout: 5 * time.Second, LocalAddr: p.local}).DialContext
	}
	conn, resp, err := d.DialContext(ctx, ws, h)
	if err != nil {
		if resp != nil {
			return nil, &StatusError{Status: resp.StatusCode, Message: err.Error()}
		}
		return nil, err
	}
	return &Socket{conn}, nil
}

// Next reads the next stored event (chat.message, chat.destroy) or answer
// to a send (ack, error), skipping the other member's signals (presence,
// typing, read receipts); it waits at most timeout.
func (s *Socket) Next(timeout time.Duration) (Frame, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := s.next(deadline)
		if err != nil {
			return f, err
		}
		switch f.Event {
		case contract.EventPresence, contract.EventTyping, contract.EventRead:
			continue
		}
		return f, nil
	}
}

// NextAny reads the next frame of any kind, waiting at most timeout.
func (s *Socket) NextAny(timeout time.Duration) (Frame, error) {
	return s.next(time.Now().Add(timeout))
}

// SendFrame writes a send frame; the answer is an ack or error frame with
// the same clientID.
func (s *Socket) SendFrame(clientID, sender, text string) error {
	data, err := json.Marshal(map[string]string{"type": "send", "clientId": clientID, "sender": sender, "text": text})
	if err != nil {
		return err
	}
	return s.WriteMessage(websocket.TextMessage, data)
}

// Ack is the data of an ack or error frame.
type Ack struct {
	ClientID string           `json:"clientId"`
	Message  contract.Message `json:"message"`
	Status   int              `json:"status"`
	Error    string           `json:"error"`
}

// Ack decodes an ack or error frame.
func (f Frame) Ack() (Ack, error) {
	var a Ack
	if f.Event != "ack" && f.Event != "error" {
		return a, fmt.Errorf("frame is %s", f.Event)
	}
	err := json.Unmarshal(f.Data, &a)
	return a, err
}

func (s *Socket) next(deadline time.Time) (Frame, error) {
	_ = s.SetReadDeadline(deadline)
	_, data, err := s.ReadMessage()
	if err != nil {
		return Frame{}, err
	}
	var f Frame
	err = json.Unmarshal(data, &f)
	return f, err
}

// Message decodes a chat.message frame.
func (f Frame) Message() (contract.Message, error) {
	var m contract.Message
	if f.Event != contract.EventMessage {
		return m, fmt.Errorf("frame is %s", f.Event)
	}
	err := json.Unmarshal(f.Data, &m)
	return m, err
}
