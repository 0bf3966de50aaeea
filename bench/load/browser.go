package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// Gateway speaks to one gateway the way browsers do: Origin on writes and
// on the WebSocket, the room cookie that the room page handed out. All
// members share its keep-alive connection pool (a browser would hold a
// couple of connections of its own; thousands of idle ones would only
// distort the gateway's memory figures), but each member keeps its own
// cookie, as its own browser would.
type Gateway struct {
	Base string // http://host:port
	host string
	hc   *fasthttp.HostClient
	ws   websocket.Dialer
}

// NewGateway returns a client of the gateway at base with at most conns
// HTTP connections.
func NewGateway(base string, conns int) (*Gateway, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("gateway url %q: want http://host:port", base)
	}
	return &Gateway{
		Base: u.Scheme + "://" + u.Host,
		host: u.Host,
		hc: &fasthttp.HostClient{
			Addr:                          u.Host,
			MaxConns:                      conns,
			MaxIdleConnDuration:           30 * time.Second,
			ReadTimeout:                   15 * time.Second,
			WriteTimeout:                  15 * time.Second,
			MaxConnWaitTimeout:            15 * time.Second,
			ReadBufferSize:                4096,
			WriteBufferSize:               4096,
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true,
		},
		ws: websocket.Dialer{HandshakeTimeout: 15 * time.Second, ReadBufferSize: 512, WriteBufferSize: 256},
	}, nil
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Status   int
	Location string
}

func (e *StatusError) Error() string { return fmt.Sprintf("status %d %s", e.Status, e.Location) }

func (g *Gateway) do(method, path, cookie string, body []byte, resp *fasthttp.Response) error {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI(g.Base + path)
	req.Header.SetMethod(method)
	if method != http.MethodGet {
		req.Header.Set("Origin", g.Base)
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	if err := g.hc.Do(req, resp); err != nil {
		return err
	}
	if s := resp.StatusCode(); s >= 300 {
		return &StatusError{Status: s, Location: string(resp.Header.Peek("Location"))}
	}
	return nil
}

// CreateRoom makes a room and returns its id.
func (g *Gateway) CreateRoom() (string, error) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := g.do(http.MethodPost, "/api/room/create", "", nil, resp); err != nil {
		return "", err
	}
	var r struct {
		RoomID string `json:"roomId"`
	}
	if err := json.Unmarshal(resp.Body(), &r); err != nil || r.RoomID == "" {
		return "", fmt.Errorf("create: bad reply %q", resp.Body())
	}
	return r.RoomID, nil
}

// Join opens the room's page as a new visitor and returns the room cookie
// it hands out ("name=value"), the one the member presents from then on.
func (g *Gateway) Join(roomID string) (string, error) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	resp.SkipBody = true
	if err := g.do(http.MethodGet, "/room/"+roomID, "", nil, resp); err != nil {
		return "", err
	}
	var c fasthttp.Cookie
	c.SetKey("wisp_" + roomID)
	if !resp.Header.Cookie(&c) {
		return "", fmt.Errorf("join %s: no room cookie", roomID)
	}
	return "wisp_" + roomID + "=" + string(c.Value()), nil
}

// Send posts a message body and returns the HTTP status (0 with an error
// when there was no answer).
func (g *Gateway) Send(roomID, cookie string, body []byte, resp *fasthttp.Response) (int, error) {
	err := g.do(http.MethodPost, "/api/messages?roomId="+roomID, cookie, body, resp)
	if se, ok := err.(*StatusError); ok {
		return se.Status, err
	}
	if err != nil {
		return 0, err
	}
	return resp.StatusCode(), nil
}

// Dial opens the room's WebSocket with the member's cookie.
func (g *Gateway) Dial(ctx context.Context, roomID, cookie string) (*websocket.Conn, error) {
	h := http.Header{"Origin": {g.Base}, "Cookie": {cookie}}
	conn, resp, err := g.ws.DialContext(ctx, "ws://"+g.host+"/api/realtime?roomId="+roomID, h)
	if err != nil {
		if resp != nil {
			return nil, &StatusError{Status: resp.StatusCode}
		}
		return nil, err
	}
	return conn, nil
}

// RaiseFileLimit lifts the soft limit on open files to the hard limit, for
// runs with tens of thousands of sockets.
func RaiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}

// textOf finds the text of a chat.message frame without decoding the JSON:
// the generator writes texts without characters JSON would escape.
func textOf(frame []byte) ([]byte, bool) {
	i := bytes.Index(frame, textKey)
	if i < 0 {
		return nil, false
	}
	rest := frame[i+len(textKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}

var (
	textKey      = []byte(`"text":"`)
	destroyEvent = []byte(`"event":"chat.destroy"`)
)
