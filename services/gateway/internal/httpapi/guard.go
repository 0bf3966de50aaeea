package httpapi

import (
	"mime"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"
)

// apiHeaders: API answers are about one member's room at one moment; no
// cache (a shared proxy's included) may keep or replay them.
func apiHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Next()
}

// jsonBodies refuses a request body that does not say it is JSON (415):
// a form post from another site cannot pass for an API call, and a client
// learns at once what it sent wrong.
func jsonBodies(c *fiber.Ctx) error {
	if len(c.Body()) == 0 {
		return c.Next()
	}
	mt, _, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if err != nil || mt != fiber.MIMEApplicationJSON {
		return fiber.NewError(fiber.StatusUnsupportedMediaType, "the body must be JSON, sent as Content-Type: application/json")
	}
	return c.Next()
}

// History loads are the API's heaviest answers (up to a page of 1 MiB):
// each client may have listsPerClient in flight and the gateway
// listsInFlight, so a burst of them cannot take its memory.
const (
	listsPerClient = 4
	listsInFlight  = 64
)

// inflight bounds concurrent requests per client and overall.
type inflight struct {
	mu        sync.Mutex
	byClient  map[string]int
	total     int
	perClient int
	max       int
}

func newInflight(perClient, max int) *inflight {
	return &inflight{byClient: map[string]int{}, perClient: perClient, max: max}
}

// bound is a handler that holds a place for the rest of the request: 429
// when the client has too many in flight, 503 when the gateway has.
func (f *inflight) bound(client func(*fiber.Ctx) string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		who := strings.Clone(client(c)) // kept past the request's buffers
		f.mu.Lock()
		switch {
		case f.byClient[who] >= f.perClient:
			f.mu.Unlock()
			return fiber.NewError(fiber.StatusTooManyRequests, "too many history loads at once")
		case f.total >= f.max:
			f.mu.Unlock()
			return fiber.NewError(fiber.StatusServiceUnavailable, "busy, try again")
		}
		f.byClient[who]++
		f.total++
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			if f.byClient[who]--; f.byClient[who] == 0 {
				delete(f.byClient, who)
			}
			f.total--
			f.mu.Unlock()
		}()
		return c.Next()
	}
}
