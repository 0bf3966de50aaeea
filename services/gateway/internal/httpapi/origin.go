package httpapi

import (
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// siteOrigin is the origin this request was made to: scheme, host, port.
func siteOrigin(c *fiber.Ctx) string {
	return c.Protocol() + "://" + string(c.Request().Host())
}

func (s *Server) originAllowed(c *fiber.Ctx, origin string) bool {
	if strings.EqualFold(origin, siteOrigin(c)) {
		return true
	}
	for _, o := range s.cfg.AllowedOrigins {
		if strings.EqualFold(origin, o) {
			return true
		}
	}
	return false
}

// sameOrigin refuses state-changing requests from other sites: a POST or
// DELETE whose Origin is foreign, or that has no Origin but a browser says
// it is cross-site. A request with neither header (curl) passes.
func (s *Server) sameOrigin(c *fiber.Ctx) error {
	if c.Method() != fiber.MethodPost && c.Method() != fiber.MethodDelete {
		return c.Next()
	}
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" {
		if c.Get("Sec-Fetch-Site") == "cross-site" {
			return fiber.NewError(fiber.StatusForbidden, "cross-site request refused")
		}
		return c.Next()
	}
	if !s.originAllowed(c, origin) {
		return fiber.NewError(fiber.StatusForbidden, "origin not allowed")
	}
	return c.Next()
}

// ParseOrigins validates ALLOWED_ORIGINS entries: scheme://host[:port].
func ParseOrigins(list string) ([]string, error) {
	var out []string
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, &originError{raw}
		}
		out = append(out, u.Scheme+"://"+u.Host)
	}
	return out, nil
}

type originError struct{ origin string }

func (e *originError) Error() string {
	return "ALLOWED_ORIGINS: " + e.origin + " is not scheme://host[:port]"
}
