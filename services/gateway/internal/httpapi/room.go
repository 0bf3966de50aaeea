package httpapi

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"wisp/contract"
)

func (s *Server) createRoom(c *fiber.Ctx) error {
	rep, err := s.backend.CreateRoom(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"roomId": rep.RoomID})
}

func (s *Server) roomTTL(c *fiber.Ctx) error {
	roomID, token, err := member(c)
	if err != nil {
		return err
	}
	raw, err := s.backend.TTL(c.UserContext(), roomID, token)
	if err != nil {
		return err
	}
	return sendJSON(c, raw)
}

func (s *Server) destroyRoom(c *fiber.Ctx) error {
	roomID, token, err := member(c)
	if err != nil {
		return err
	}
	if err := s.backend.Destroy(c.UserContext(), roomID, token); err != nil {
		return err
	}
	return c.JSON(fiber.Map{})
}

// member reads the room id from the query and the caller's token from that
// room's cookie; the services check the token.
func member(c *fiber.Ctx) (roomID, token string, err error) {
	roomID = c.Query("roomId")
	if roomID == "" {
		return "", "", fiber.NewError(fiber.StatusBadRequest, "roomId is required")
	}
	token = roomToken(c, roomID)
	if token == "" {
		return "", "", errUnauthorized
	}
	return roomID, token, nil
}

func sendJSON(c *fiber.Ctx, raw []byte) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(raw)
}

func contractCode(err error) string {
	var ce *contract.Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	return ""
}
