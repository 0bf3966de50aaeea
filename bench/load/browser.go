package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// Gateway is one gateway as browsers see it: Origin on writes and on the
// WebSocket, the room cookie the room page handed out.
//
// By default every member is a browser of its own: its own HTTP keep-alive
// connection (a Client with one connection) and its own WebSocket. The
// extra, not browser-like mode GatewayOptions.SharedConns makes all members
// share one pool of keep-alive connections instead (each still presenting
// only its own cookie); it was the generator's only mode before, and is
// kept to compare with figures taken that way.
type Gateway struct {
	Base string // http://host:port
	host string
	opts GatewayOptions
	ws   websocket.Dialer
	pool *Client // SharedConns > 0: the connections all members share

	sources []net.IP // client source addresses, taken in turn; empty: the kernel's choice
	next    atomic.Uint64
}

// GatewayOptions says how members reach a gateway.
type GatewayOptions struct {
	// SharedConns > 0 (extra mode, not browser-like): members share a pool
	// of this many keep-alive HTTP connections. 0: each member has its own.
	SharedConns int
	// Sources spreads the client side of connections to a loopback gateway
	// over this many source addresses (127.0.1.1, 127.0.1.2, …), each with
	// its own ephemeral ports, so tens of thousands of sockets do not run
	// out of them. 0: one address, the kernel's choice.
	Sources int
}

// DefaultSources is how many loopback source addresses connections are
// spread over unless told otherwise (each has ~28,000 ephemeral ports).
const DefaultSources = 16

// NewGateway returns a client of the gateway at base.
func NewGateway(base string, opts GatewayOptions) (*Gateway, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("gateway url %q: want http://host:port", base)
	}
	g := &Gateway{
		Base: u.Scheme + "://" + u.Host,
		host: u.Host,
		opts: opts,
		ws:   websocket.Dialer{HandshakeTimeout: 15 * time.Second, ReadBufferSize: 512, WriteBufferSize: 256},
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() && ip.To4() != nil {
		g.sources = loopbackSources(opts.Sources)
	}
	if opts.SharedConns > 0 {
		g.pool = g.newClient(opts.SharedConns, nil)
	}
	return g, nil
}

// loopbackSources are n source addresses in 127.0.0.0/8: 127.0.1.1 up.
func loopbackSources(n int) []net.IP {
	out := make([]net.IP, 0, n)
	for k := range n {
		out = append(out, net.IPv4(127, 0, byte(1+k/250), byte(1+k%250)))
	}
	return out
}

// source is the next client source address, nil for the kernel's choice.
func (g *Gateway) source() net.IP {
	if len(g.sources) == 0 {
		return nil
	}
	return g.sources[(g.next.Add(1)-1)%uint64(len(g.sources))]
}

// Shared says whether members share a connection pool (the extra mode).
func (g *Gateway) Shared() bool { return g.pool != nil }

// acceptEncoding is what Chromium sends on every request: the gateway
// answers with compressed pages, and the member reads them as they come.
const acceptEncoding = "gzip, deflate, br, zstd"

// Client is one browser's HTTP side: its own keep-alive connection (or,
// in the shared mode, the pool).
type Client struct {
	gw *Gateway
	hc *fasthttp.HostClient
	// conns is one slot per connection: a request waits here for one, so
	// the HostClient never has to queue it. Its own queue can miss a
	// connection handed back just before the waiter registers, and the
	// request then waits out MaxConnWaitTimeout for nothing
	// (valyala/fasthttp#2391, open as of v1.58).
	conns chan struct{}
}

// NewClient returns a client with a keep-alive connection of its own, as a
// browser tab has (the pool when members share one).
func (g *Gateway) NewClient() *Client { return g.clientFrom(g.source()) }

func (g *Gateway) clientFrom(local net.IP) *Client {
	if g.pool != nil {
		return g.pool
	}
	return g.newClient(1, local)
}

func (g *Gateway) newClient(conns int, local net.IP) *Client {
	hc := &fasthttp.HostClient{
		Addr:                          g.host,
		MaxConns:                      conns,
		MaxIdleConnDuration:           90 * time.Second, // the gateway's idle timeout (75 s) decides, as with browsers
		ReadTimeout:                   15 * time.Second,
		WriteTimeout:                  15 * time.Second,
		MaxConnWaitTimeout:            15 * time.Second,
		ReadBufferSize:                4096,
		WriteBufferSize:               4096,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
	}
	if local != nil {
		d := &net.Dialer{Timeout: 15 * time.Second, LocalAddr: &net.TCPAddr{IP: local}}
		hc.Dial = func(addr string) (net.Conn, error) { return d.Dial("tcp", addr) }
	}
	return &Client{gw: g, hc: hc, conns: make(chan struct{}, conns)}
}

// CloseIdle closes the client's idle keep-alive connections.
func (c *Client) CloseIdle() { c.hc.CloseIdleConnections() }

// StatusError is a non-2xx answer.
type StatusError struct {
	Status   int
	Location string
}

func (e *StatusError) Error() string { return fmt.Sprintf("status %d %s", e.Status, e.Location) }

func (c *Client) do(method, path, cookie string, body []byte, resp *fasthttp.Response) error {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI(c.gw.Base + path)
	req.Header.SetMethod(method)
	req.Header.Set("Accept-Encoding", acceptEncoding)
	if method != http.MethodGet {
		req.Header.Set("Origin", c.gw.Base)
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	select {
	case c.conns <- struct{}{}:
	default:
		wait := time.NewTimer(c.hc.MaxConnWaitTimeout)
		select {
		case c.conns <- struct{}{}:
			wait.Stop()
		case <-wait.C:
			return fasthttp.ErrNoFreeConns
		}
	}
	err := c.hc.Do(req, resp)
	<-c.conns
	if err != nil {
		return err
	}
	if s := resp.StatusCode(); s >= 300 {
		return &StatusError{Status: s, Location: string(resp.Header.Peek("Location"))}
	}
	return nil
}

// CreateRoom makes a room and returns its id.
func (c *Client) CreateRoom() (string, error) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := c.do(http.MethodPost, "/api/room/create", "", nil, resp); err != nil {
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
func (c *Client) Join(roomID string) (string, error) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	// The page is read whole, as a browser does: a body left unread (the
	// client's SkipBody) would stay on the keep-alive connection and be
	// taken for the next request's answer once the page outgrows the
	// client's read buffer.
	if err := c.do(http.MethodGet, "/room/"+roomID, "", nil, resp); err != nil {
		return "", err
	}
	var ck fasthttp.Cookie
	ck.SetKey("wisp_" + roomID)
	if !resp.Header.Cookie(&ck) {
		return "", fmt.Errorf("join %s: no room cookie", roomID)
	}
	return "wisp_" + roomID + "=" + string(ck.Value()), nil
}

// Send posts a message body and returns the HTTP status (0 with an error
// when there was no answer); resp holds the answer.
func (c *Client) Send(roomID, cookie string, body []byte, resp *fasthttp.Response) (int, error) {
	err := c.do(http.MethodPost, "/api/messages?roomId="+roomID, cookie, body, resp)
	if se, ok := errors.AsType[*StatusError](err); ok {
		return se.Status, err
	}
	if err != nil {
		return 0, err
	}
	return resp.StatusCode(), nil
}

// Dial opens the room's WebSocket with the member's cookie, from source
// address local (nil: the kernel's choice).
func (g *Gateway) Dial(ctx context.Context, roomID, cookie string, local net.IP) (*websocket.Conn, error) {
	d := g.ws
	if local != nil {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: local}}
		d.NetDialContext = nd.DialContext
	}
	h := http.Header{"Origin": {g.Base}, "Cookie": {cookie}}
	conn, resp, err := d.DialContext(ctx, "ws://"+g.host+"/api/realtime?roomId="+roomID, h)
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
