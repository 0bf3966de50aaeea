package httpapi

import (
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"wisp/contract"
	"wisp/services/gateway/internal/web"
)

var (
	homeHTML = web.MustLookup(web.HomePage)
	roomHTML = web.MustLookup(web.RoomPage)
)

// securityHeaders go on every response. no-referrer matters most: the room
// link is the room's only secret besides the cookie.
func securityHeaders(c *fiber.Ctx) error {
	c.Set("Content-Security-Policy", web.CSP)
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("X-Frame-Options", "DENY")
	return c.Next()
}

// sendPage answers with a page, which is never to be stored: the room's
// is the answer to a join.
func sendPage(c *fiber.Ctx, page *web.Encoded) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	body, _ := negotiate(c, page)
	return c.Send(body)
}

// negotiate picks the form of f the request's Accept-Encoding asks for
// (pickEncoding) and sets the headers that say which; enc is its content
// coding, "" for none.
func negotiate(c *fiber.Ctx, f *web.Encoded) (body []byte, enc string) {
	body, enc = pickEncoding(c.Request().Header.Peek(fiber.HeaderAcceptEncoding), f)
	c.Vary(fiber.HeaderAcceptEncoding)
	c.Set(fiber.HeaderContentType, f.Type)
	if enc != "" {
		c.Set(fiber.HeaderContentEncoding, enc)
	}
	return body, enc
}

func (s *Server) homePage(c *fiber.Ctx) error { return sendPage(c, homeHTML) }

func redirectHome(c *fiber.Ctx) error { return c.Redirect("/", fiber.StatusSeeOther) }

// roomHead answers link-preview probes without taking a slot.
func (s *Server) roomHead(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.SendStatus(fiber.StatusOK)
}

// joinRoom admits the visitor and shows the room, or sends them home with
// the reason: a member keeps their slot, a newcomer gets a token in the
// room's cookie while there is space.
func (s *Server) joinRoom(c *fiber.Ctx) error {
	id := c.Params("roomId")
	if !contract.ValidRoomID(id) {
		return c.Redirect("/?error=room-not-found", fiber.StatusSeeOther)
	}
	rep, err := s.backend.Join(c.UserContext(), id, roomToken(c, id))
	if err != nil {
		switch code := contractCode(err); code {
		case contract.CodeNotFound:
			return c.Redirect("/?error=room-not-found", fiber.StatusSeeOther)
		case contract.CodeConflict:
			return c.Redirect("/?error=room-full", fiber.StatusSeeOther)
		}
		return err
	}
	setRoomCookie(c, id, rep.Token, time.UnixMilli(rep.ExpiresAt))
	return sendPage(c, roomHTML)
}

// assetMaxAge is how long a browser may use an asset without asking again;
// after it, the ETag makes asking cheap.
const assetMaxAge = "public, max-age=300"

// asset serves a file of the UI under web.AssetPrefix; any other path
// goes on to the not-found answer.
func asset(c *fiber.Ctx) error {
	f, ok := web.Lookup("static/" + c.Params("*"))
	if !ok {
		return c.Next()
	}
	c.Set(fiber.HeaderCacheControl, assetMaxAge)
	body, enc := negotiate(c, f)
	etag := f.ETagOf(enc)
	c.Set(fiber.HeaderETag, etag)
	if fresh(c.Get(fiber.HeaderIfNoneMatch), etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	return c.Send(body)
}

// fresh says whether an If-None-Match header names etag (or is "*").
// Fiber's Ctx.Fresh would also answer 304 to an If-Modified-Since alone,
// and these assets have no modification time to compare.
func fresh(ifNoneMatch, etag string) bool {
	for tag := range strings.SplitSeq(ifNoneMatch, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == etag || tag == "*" {
			return true
		}
	}
	return false
}
