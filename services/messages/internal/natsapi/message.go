// Package natsapi exposes the messages service on NATS: request/reply
// endpoints under the contract's subjects, and chat.message events.
package natsapi

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"wisp/contract"
	"wisp/platform/natsrpc"
	"wisp/platform/republish"
	"wisp/services/messages/internal/message"
)

// Serve registers the messages endpoints on nc.
func Serve(nc *nats.Conn, svc *message.Service, log *slog.Logger, reg prometheus.Registerer) (*natsrpc.Server, error) {
	srv, err := natsrpc.NewServer(nc, contract.MessagesService, "1.0.0", log, reg, classify)
	if err != nil {
		return nil, err
	}
	err = errors.Join(
		natsrpc.Handle(srv, "send", contract.SubjectMessageSend, func(ctx context.Context, req contract.SendRequest) (contract.SendReply, error) {
			m, err := svc.Send(ctx, req)
			return contract.SendReply{Message: m}, err
		}),
		natsrpc.Handle(srv, "list", contract.SubjectMessageList, func(ctx context.Context, req contract.ListRequest) (contract.ListReply, error) {
			return svc.Page(ctx, req.RoomID, req.Token, req.After)
		}),
	)
	if err != nil {
		return nil, err
	}
	return srv, nil
}

func classify(err error) (string, string, bool) {
	var inv *message.InvalidError
	switch {
	case errors.As(err, &inv):
		return contract.CodeBadRequest, inv.Reason, true
	case errors.Is(err, message.ErrUnauthorized):
		return contract.CodeUnauthorized, "Unauthorized", true
	case errors.Is(err, message.ErrRoomGone):
		return contract.CodeNotFound, "room gone", true
	case errors.Is(err, message.ErrRoomFull):
		return contract.CodeConflict, "this room has reached its message limit", true
	}
	return "", "", false
}

// Publisher publishes chat.message events on NATS.
type Publisher struct{ events republish.Events }

// NewPublisher returns a publisher on events.
func NewPublisher(events republish.Events) *Publisher { return &Publisher{events: events} }

// Published publishes the message, without its token, to the room.
func (p *Publisher) Published(_ context.Context, m contract.Message) error {
	return p.events.Publish(contract.MessageSubject(m.RoomID), contract.MessageEvent(m))
}
