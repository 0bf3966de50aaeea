package httpapi

import (
	"encoding/json"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"wisp/contract"
)

type sendBody struct {
	Sender   *string `json:"sender"`
	Text     *string `json:"text"`
	ClientID string  `json:"clientId"`
	Envelope string  `json:"envelope"`
}

func (s *Server) sendMessage(c *fiber.Ctx) error {
	roomID, token, err := member(c)
	if err != nil {
		return err
	}
	var body sendBody
	if err := json.Unmarshal(c.Body(), &body); err != nil {
		return fiber.NewError(fiber.StatusBadRequest, "body must be JSON {\"sender\": string, \"text\": string}")
	}
	req := contract.SendRequest{RoomID: roomID, Token: token, ClientID: body.ClientID, Envelope: body.Envelope}
	switch {
	case body.Sender != nil && body.Text != nil:
		req.Sender, req.Text = *body.Sender, *body.Text
	case body.Envelope == "":
		return fiber.NewError(fiber.StatusBadRequest, "sender and text (or an envelope) are required")
	}
	raw, err := s.backend.Send(c.UserContext(), req)
	if err != nil {
		return err
	}
	return sendJSON(c, raw)
}

func (s *Server) listMessages(c *fiber.Ctx) error {
	roomID, token, err := member(c)
	if err != nil {
		return err
	}
	var after int64
	if v := c.Query("after"); v != "" {
		after, err = strconv.ParseInt(v, 10, 64)
		if err != nil || after < 0 {
			return fiber.NewError(fiber.StatusBadRequest, "after must be a non-negative integer")
		}
	}
	page, err := s.backend.List(c.UserContext(), roomID, token, after)
	if err != nil {
		return err
	}
	return c.JSON(page)
}
