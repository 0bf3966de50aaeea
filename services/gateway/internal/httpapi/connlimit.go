package httpapi

import (
	"net"
	"strconv"
	"sync"
	"time"
)

// MaxConnsPerIP bounds the TCP connections (HTTP and WebSocket alike) one
// client address may hold: a few tabs of two people need far fewer. A
// trusted proxy's address carries everyone behind it and is not bounded.
const MaxConnsPerIP = 64

// tooManyConns is what a connection over the bound reads before it is
// closed: a plain answer rather than a reset.
var tooManyConns = func() []byte {
	body := `{"error":"too many connections from your address"}`
	return []byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 5\r\n" +
		"Cache-Control: no-store\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// connLimit is a listener that counts each address's open connections.
type connLimit struct {
	net.Listener
	max     int
	exempt  func(ip string) bool
	mu      sync.Mutex
	perAddr map[string]int
}

func newConnLimit(ln net.Listener, max int, exempt func(string) bool) *connLimit {
	return &connLimit{Listener: ln, max: max, exempt: exempt, perAddr: map[string]int{}}
}

// Accept returns the next connection within its address's bound; those
// over it are answered 429 and closed here.
func (l *connLimit) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, ok := c.(*net.TCPConn)
		if !ok {
			return c, nil
		}
		ip := tc.RemoteAddr().(*net.TCPAddr).IP.String()
		if l.exempt(ip) {
			return c, nil
		}
		l.mu.Lock()
		if l.perAddr[ip] >= l.max {
			l.mu.Unlock()
			go refuse(tc)
			continue
		}
		l.perAddr[ip]++
		l.mu.Unlock()
		return &countedConn{TCPConn: tc, l: l, ip: ip}, nil
	}
}

func refuse(c *net.TCPConn) {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(tooManyConns)
	_ = c.CloseWrite()
	_ = c.Close()
}

// countedConn gives its place back when closed. It is a *net.TCPConn
// underneath (embedded), so a WebSocket can still write to its descriptor
// and half-close it.
type countedConn struct {
	*net.TCPConn
	l    *connLimit
	ip   string
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.perAddr[c.ip]--; c.l.perAddr[c.ip] <= 0 {
			delete(c.l.perAddr, c.ip)
		}
		c.l.mu.Unlock()
	})
	return c.TCPConn.Close()
}
