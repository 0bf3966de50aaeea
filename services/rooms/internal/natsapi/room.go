// Package natsapi exposes the rooms service on NATS: request/reply endpoints
// under the contract's subjects, and chat.destroy events.
package natsapi

import (
	"context"
	"errors"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"wisp/contract"
	"wisp/platform/natsrpc"
	"wisp/services/rooms/internal/room"
)

// Serve registers the rooms endpoints on nc.
func Serve(nc *nats.Conn, svc *room.Service, log *slog.Logger, reg prometheus.Registerer) (*natsrpc.Server, error) {
	srv, err := natsrpc.NewServer(nc, contract.RoomsService, "1.0.0", log, reg, classify)
	if err != nil {
		return nil, err
	}
	eps := []error{
		natsrpc.Handle(srv, "create", contract.SubjectRoomCreate, func(ctx context.Context, _ struct{}) (contract.CreateRoomReply, error) {
			r, err := svc.Create(ctx)
			return contract.CreateRoomReply{RoomID: r.ID, CreatedAt: r.CreatedAt.UnixMilli(), ExpiresAt: r.ExpiresAt.UnixMilli()}, err
		}),
		natsrpc.Handle(srv, "join", contract.SubjectRoomJoin, func(ctx context.Context, req contract.RoomRequest) (contract.JoinReply, error) {
			m, err := svc.Join(ctx, req.RoomID, req.Token)
			return contract.JoinReply{Token: m.Token, Joined: m.Joined, ExpiresAt: m.ExpiresAt.UnixMilli()}, err
		}),
		natsrpc.Handle(srv, "authorize", contract.SubjectRoomAuth, func(ctx context.Context, req contract.RoomRequest) (contract.AuthorizeReply, error) {
			exp, err := svc.Authorize(ctx, req.RoomID, req.Token)
			return contract.AuthorizeReply{ExpiresAt: exp.UnixMilli()}, err
		}),
		natsrpc.Handle(srv, "ttl", contract.SubjectRoomTTL, func(ctx context.Context, req contract.RoomRequest) (contract.TTLReply, error) {
			ttl, err := svc.TTL(ctx, req.RoomID, req.Token)
			return contract.TTLReply{TTL: ttl}, err
		}),
		natsrpc.Handle(srv, "destroy", contract.SubjectRoomDestroy, func(ctx context.Context, req contract.RoomRequest) (contract.DestroyReply, error) {
			return contract.DestroyReply{}, svc.Destroy(ctx, req.RoomID, req.Token)
		}),
	}
	if err := errors.Join(eps...); err != nil {
		return nil, err
	}
	return srv, nil
}

func classify(err error) (string, string, bool) {
	switch {
	case errors.Is(err, room.ErrNotFound), errors.Is(err, room.ErrInvalidID):
		return contract.CodeNotFound, "room not found", true
	case errors.Is(err, room.ErrFull):
		return contract.CodeConflict, "room is full", true
	case errors.Is(err, room.ErrUnauthorized):
		return contract.CodeUnauthorized, "Unauthorized", true
	}
	return "", "", false
}

// Publisher publishes room events on NATS.
type Publisher struct{ nc *nats.Conn }

// NewPublisher returns a publisher on nc.
func NewPublisher(nc *nats.Conn) *Publisher { return &Publisher{nc: nc} }

// Destroyed publishes chat.destroy for the room.
func (p *Publisher) Destroyed(_ context.Context, roomID, reason string) error {
	return p.nc.Publish(contract.DestroySubject(roomID), contract.DestroyEvent(reason))
}
