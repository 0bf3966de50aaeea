package httpapi

import (
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/limiter"
)

// limit allows max requests per window per client IP for one route group;
// the numbers are far above what two people chatting need. Over the limit:
// 429 with Retry-After.
func (s *Server) limit(group string, max int, window time.Duration) fiber.Handler {
	if !s.cfg.RateLimits {
		return func(c *fiber.Ctx) error { return c.Next() }
	}
	return limiter.New(limiter.Config{
		Max:               max,
		Expiration:        window,
		LimiterMiddleware: limiter.SlidingWindow{},
		KeyGenerator:      func(c *fiber.Ctx) string { return group + "|" + c.IP() },
		LimitReached: func(*fiber.Ctx) error {
			return fiber.NewError(fiber.StatusTooManyRequests, "too many requests, slow down")
		},
	})
}
