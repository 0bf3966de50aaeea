package httpapi

import (
	"time"

	"github.com/gofiber/fiber/v2"
)

// cookieName is per room, so one browser can be in several rooms; over
// HTTPS the __Host- prefix pins it to this host, path / and Secure.
func cookieName(c *fiber.Ctx, roomID string) string {
	if c.Protocol() == "https" {
		return "__Host-wisp_" + roomID
	}
	return "wisp_" + roomID
}

// roomToken is the caller's token for roomID, or "".
func roomToken(c *fiber.Ctx, roomID string) string {
	return c.Cookies(cookieName(c, roomID))
}

// setRoomCookie hands the member their token until the room ends. Lax, not
// Strict: a member reopening the link from another site (a chat app) must
// still be recognised instead of taking a second slot; the API's Origin
// checks keep cross-site writes out.
func setRoomCookie(c *fiber.Ctx, roomID, token string, expiresAt time.Time) {
	maxAge := int((time.Until(expiresAt) + time.Second - 1) / time.Second)
	if maxAge < 1 {
		maxAge = 1
	}
	c.Cookie(&fiber.Cookie{
		Name:     cookieName(c, roomID),
		Value:    token,
		Path:     "/",
		MaxAge:   maxAge,
		HTTPOnly: true,
		Secure:   c.Protocol() == "https",
		SameSite: fiber.CookieSameSiteLaxMode,
	})
}

// clearRoomCookie tells the browser to forget the room's cookie at once.
func clearRoomCookie(c *fiber.Ctx, roomID string) {
	c.Cookie(&fiber.Cookie{
		Name:     cookieName(c, roomID),
		Path:     "/",
		MaxAge:   -1, // Max-Age=0 on the wire: delete now
		HTTPOnly: true,
		Secure:   c.Protocol() == "https",
		SameSite: fiber.CookieSameSiteLaxMode,
	})
}
