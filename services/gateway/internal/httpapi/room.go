package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"wisp/contract"
)

// createRoom takes an optional body {"ttl": seconds, "e2e": bool}; without
// it (the original client sends none) the room gets the rooms service's
// default lifetime and is not end-to-end. The rooms service bounds the
// lifetime.
func (s *Server) createRoom(c *fiber.Ctx) error {
	ttl, err := createTTL(c.Body())
	if err != nil {
		return err
	}
	e2e, err := createE2E(c.Body())
	if err != nil {
		return err
	}
	rep, err := s.backend.CreateRoom(c.UserContext(), contract.CreateRoomRequest{TTL: ttl, E2E: e2e})
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"roomId": rep.RoomID})
}

var errBadTTL = fiber.NewError(fiber.StatusBadRequest, "ttl must be a whole number of seconds")

// createTTL reads the seconds asked for in a create body; 0 when none is.
func createTTL(body []byte) (int64, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return 0, nil
	}
	var req struct {
		TTL json.RawMessage `json:"ttl"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, fiber.NewError(fiber.StatusBadRequest, "the body must be a JSON object")
	}
	if len(req.TTL) == 0 || string(req.TTL) == "null" {
		return 0, nil
	}
	// ParseInt refuses a quoted number, a fraction and an exponent alike.
	n, err := strconv.ParseInt(string(req.TTL), 10, 64)
	if err != nil || n <= 0 {
		// 0 would mean "the default" further on: asking for it is a mistake.
		return 0, errBadTTL
	}
	return n, nil
}

// createE2E reads whether a create body asks for an end-to-end room: true,
// false, null or absent; anything else is a 400. createTTL has already
// refused a body that is not a JSON object.
func createE2E(body []byte) (bool, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return false, nil
	}
	var req struct {
		E2E *bool `json:"e2e"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return false, fiber.NewError(fiber.StatusBadRequest, "e2e must be true or false")
	}
	return req.E2E != nil && *req.E2E, nil
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

// leaveRoom drops the caller's cookie for the room: a page leaving a room
// that ended (or a person leaving for good) keeps nothing of it, not even
// a token for a dead room. It asks no service: clearing a cookie is always
// allowed, and answers the same whether the room lives or not.
func (s *Server) leaveRoom(c *fiber.Ctx) error {
	roomID := c.Query("roomId")
	if !contract.ValidRoomID(roomID) {
		return fiber.NewError(fiber.StatusBadRequest, "roomId is required")
	}
	clearRoomCookie(c, roomID)
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
