// Package natsapi exposes the rooms service on NATS: request/reply endpoints
// under the contract's subjects, and chat.destroy events.
package natsapi

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"wisp/contract"
	"wisp/platform/natsrpc"
	"wisp/platform/republish"
	"wisp/services/rooms/internal/room"
)

// Serve registers the rooms endpoints on nc.
func Serve(nc *nats.Conn, svc *room.Service, log *slog.Logger, reg prometheus.Registerer) (*natsrpc.Server, error) {
	srv, err := natsrpc.NewServer(nc, contract.RoomsService, "1.0.0", log, reg, classify)
	if err != nil {
		return nil, err
	}
	eps := []error{
		natsrpc.Handle(srv, "create", contract.SubjectRoomCreate, func(ctx context.Context, req contract.CreateRoomRequest) (contract.CreateRoomReply, error) {
			r, err := svc.CreateWith(ctx, seconds(req.TTL), req.E2E)
			return contract.CreateRoomReply{RoomID: r.ID, CreatedAt: r.CreatedAt.UnixMilli(), ExpiresAt: r.ExpiresAt.UnixMilli()}, err
		}),
		natsrpc.Handle(srv, "join", contract.SubjectRoomJoin, func(ctx context.Context, req contract.RoomRequest) (contract.JoinReply, error) {
			m, err := svc.Join(ctx, req.RoomID, req.Token)
			return contract.JoinReply{Token: m.Token, Joined: m.Joined, ExpiresAt: m.ExpiresAt.UnixMilli()}, err
		}),
		natsrpc.Handle(srv, "authorize", contract.SubjectRoomAuth, func(ctx context.Context, req contract.RoomRequest) (contract.AuthorizeReply, error) {
			a, err := svc.Authorize(ctx, req.RoomID, req.Token)
			return contract.AuthorizeReply{ExpiresAt: a.ExpiresAt.UnixMilli(), Member: a.Member, LastSeq: a.LastSeq, E2E: a.E2E}, err
		}),
		natsrpc.Handle(srv, "ttl", contract.SubjectRoomTTL, func(ctx context.Context, req contract.RoomRequest) (contract.TTLReply, error) {
			ttl, e2e, err := svc.TTLOf(ctx, req.RoomID, req.Token)
			return contract.TTLReply{TTL: ttl, E2E: e2e}, err
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

// seconds converts a request's whole seconds to a duration; a count too large
// for one saturates instead of wrapping round into an allowed value.
func seconds(n int64) time.Duration {
	const most = math.MaxInt64 / int64(time.Second)
	switch {
	case n > most:
		return math.MaxInt64
	case n < -most:
		return math.MinInt64
	}
	return time.Duration(n) * time.Second
}

func classify(err error) (string, string, bool) {
	switch {
	case errors.Is(err, room.ErrInvalidTTL):
		return contract.CodeBadRequest, room.ErrInvalidTTL.Error(), true
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
type Publisher struct {
	nc           *nats.Conn
	events       republish.Events
	flushTimeout time.Duration
}

// NewPublisher returns a publisher of events on nc that waits at most
// flushTimeout for NATS to confirm an event.
func NewPublisher(nc *nats.Conn, events republish.Events, flushTimeout time.Duration) *Publisher {
	return &Publisher{nc: nc, events: events, flushTimeout: flushTimeout}
}

// Destroyed publishes chat.destroy for the room and returns once NATS has
// it; an error leaves the claimed end to the expiry service.
func (p *Publisher) Destroyed(ctx context.Context, roomID, reason string) error {
	if err := p.events.Publish(contract.DestroySubject(roomID), contract.DestroyEvent(reason)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.flushTimeout)
	defer cancel()
	return p.nc.FlushWithContext(ctx)
}
