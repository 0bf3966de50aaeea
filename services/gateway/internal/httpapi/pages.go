package httpapi

import (
	"io/fs"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"wisp/contract"
	"wisp/services/gateway/internal/web"
)

var (
	homeHTML = mustRead(web.HomePage)
	roomHTML = mustRead(web.RoomPage)
)

func mustRead(name string) []byte {
	b, err := fs.ReadFile(web.Static, name)
	if err != nil {
		panic("web: missing embedded page " + name)
	}
	return b
}

// securityHeaders go on every response. no-referrer matters most: the room
// link is the room's only secret besides the cookie.
func securityHeaders(c *fiber.Ctx) error {
	c.Set("Content-Security-Policy", web.CSP)
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("X-Frame-Options", "DENY")
	return c.Next()
}

func sendPage(c *fiber.Ctx, page []byte) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Send(page)
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

func (s *Server) staticAssets() {
	sub, err := fs.Sub(web.Static, "static")
	if err != nil {
		panic(err)
	}
	s.app.Use(web.AssetPrefix, filesystem.New(filesystem.Config{
		Root:   http.FS(sub),
		MaxAge: 300,
	}))
}
