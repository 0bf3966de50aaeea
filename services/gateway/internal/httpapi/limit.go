package httpapi

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// limit allows budget requests per window per client IP for one route group
// (routes of a group share one budget, across every gateway when the
// limiter is Redis); the numbers are far above what two people chatting
// need. Over the limit: 429 with Retry-After.
func (s *Server) limit(group string, budget int, window time.Duration) fiber.Handler {
	if !s.cfg.RateLimits {
		return func(c *fiber.Ctx) error { return c.Next() }
	}
	return func(c *fiber.Ctx) error {
		ok, retry := s.limiter.Take(c.UserContext(), group+"|"+s.clientIP(c), budget, window)
		if !ok {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(max(1, int(retry.Round(time.Second)/time.Second))))
			return fiber.NewError(fiber.StatusTooManyRequests, "too many requests, slow down")
		}
		return c.Next()
	}
}

// clientIP is the address a request came from. Behind trusted proxies it is
// the rightmost X-Forwarded-For entry that is not a trusted proxy: entries
// further left were written by the client and could be anything, so a
// client cannot pick its own rate-limit bucket.
func (s *Server) clientIP(c *fiber.Ctx) string {
	peer := c.Context().RemoteIP().String()
	if !s.trusted(peer) {
		return peer
	}
	hops := strings.Split(c.Get(fiber.HeaderXForwardedFor), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		if !s.trusted(hop) {
			return hop
		}
		peer = hop
	}
	return peer
}

func (s *Server) trusted(ip string) bool {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	for _, p := range s.proxies {
		if p.Contains(addr.Unmap()) {
			return true
		}
	}
	return false
}

// parseProxies reads TRUSTED_PROXIES entries (IPs or CIDRs); the gateway's
// config check has already refused malformed ones.
func parseProxies(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range list {
		if pfx, err := ParseProxy(p); err == nil {
			out = append(out, pfx)
		}
	}
	return out
}

// ParseProxy parses one TRUSTED_PROXIES entry: an IP or a CIDR.
func ParseProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
