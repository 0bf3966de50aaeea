package httpapi

import (
	"net"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

func TestClientIPIgnoresWhatClientsWriteInXForwardedFor(t *testing.T) {
	s := &Server{proxies: parseProxies([]string{"10.0.0.0/8", "192.168.1.1"})}
	app := fiber.New()
	cases := []struct {
		peer, xff, want string
	}{
		{"203.0.113.7", "1.2.3.4", "203.0.113.7"},                          // untrusted peer: header ignored
		{"10.1.2.3", "198.51.100.9", "198.51.100.9"},                       // one trusted hop
		{"10.1.2.3", "6.6.6.6, 198.51.100.9", "198.51.100.9"},              // client-written entry skipped
		{"10.1.2.3", "6.6.6.6, 198.51.100.9, 192.168.1.1", "198.51.100.9"}, // two trusted hops
		{"10.1.2.3", "", "10.1.2.3"},
	}
	for _, c := range cases {
		fctx := &fasthttp.RequestCtx{}
		fctx.SetRemoteAddr(&net.TCPAddr{IP: net.ParseIP(c.peer), Port: 1})
		if c.xff != "" {
			fctx.Request.Header.Set("X-Forwarded-For", c.xff)
		}
		ctx := app.AcquireCtx(fctx)
		if got := s.clientIP(ctx); got != c.want {
			t.Errorf("peer %s xff %q: %s, want %s", c.peer, c.xff, got, c.want)
		}
		app.ReleaseCtx(ctx)
	}
	if _, err := ParseProxy("not-an-ip"); err == nil {
		t.Fatal("bad proxy accepted")
	}
}
