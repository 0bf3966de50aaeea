// Package natsapi is the expiry service's NATS side: it publishes the
// chat.destroy event of each expired room.
package natsapi

import (
	"context"

	"github.com/nats-io/nats.go"

	"wisp/contract"
	"wisp/services/expiry/internal/expiry"
)

// expiredEvent is the same frame for every room; Publish copies it.
var expiredEvent = contract.DestroyEvent(contract.ReasonExpired)

// Publisher implements expiry.Publisher on NATS.
type Publisher struct{ nc *nats.Conn }

// NewPublisher returns a publisher on nc.
func NewPublisher(nc *nats.Conn) *Publisher { return &Publisher{nc: nc} }

var _ expiry.Publisher = (*Publisher)(nil)

// Expired publishes chat.destroy with reason "expired" on the room's
// subject. While NATS reconnects the client buffers it; an error means it
// was not sent, so the caller may hand the room back for a retry.
func (p *Publisher) Expired(_ context.Context, roomID string) error {
	return p.nc.Publish(contract.DestroySubject(roomID), expiredEvent)
}
