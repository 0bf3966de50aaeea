// Package tcpproxy forwards TCP connections for tests, and can make the far
// end fall silent or die without stopping it: a server that died before
// passing on what it was sent, as seen from the client.
package tcpproxy

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards each connection it accepts to one address.
type Proxy struct {
	ln        net.Listener
	swallowed atomic.Int64

	mu    sync.Mutex
	pairs []*pair
}

type pair struct {
	client, server net.Conn
	swallow        atomic.Bool
}

// Start listens on a loopback port and forwards to to until the test ends.
func Start(tb testing.TB, to string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{ln: ln}
	tb.Cleanup(func() { _ = ln.Close(); p.Cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", to)
			if err != nil {
				_ = c.Close()
				continue
			}
			pr := &pair{client: c, server: s}
			p.mu.Lock()
			p.pairs = append(p.pairs, pr)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(c, s) }()
			go p.upstream(pr)
		}
	}()
	return p
}

// Addr is the host:port clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) upstream(pr *pair) {
	buf := make([]byte, 32<<10)
	for {
		n, err := pr.client.Read(buf)
		if n > 0 {
			if pr.swallow.Load() {
				p.swallowed.Add(int64(n))
			} else if _, werr := pr.server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Swallow drops from now on what clients write on the connections open
// now; connections accepted later are forwarded as usual.
func (p *Proxy) Swallow() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.pairs {
		pr.swallow.Store(true)
	}
}

// Swallowed is how many bytes were dropped so far.
func (p *Proxy) Swallowed() int64 { return p.swallowed.Load() }

// Cut closes every open connection, as when the server's process dies.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.pairs {
		_ = pr.client.Close()
		_ = pr.server.Close()
	}
	p.pairs = nil
}
