// Package natsapi is the expiry service's NATS side: it publishes the
// chat.destroy event of each ended room, and the resync after Redis lost
// its data.
package natsapi

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"wisp/contract"
	"wisp/platform/republish"
	"wisp/services/expiry/internal/expiry"
)

// The same frames for every room; Publish copies them.
var events = map[string][]byte{
	contract.ReasonExpired:   contract.DestroyEvent(contract.ReasonExpired),
	contract.ReasonDestroyed: contract.DestroyEvent(contract.ReasonDestroyed),
}

// Publisher implements expiry.Publisher on NATS.
type Publisher struct {
	nc           *nats.Conn
	events       republish.Events
	flushTimeout time.Duration
}

// NewPublisher returns a publisher of events on nc whose Flush waits at
// most flushTimeout for NATS to confirm.
func NewPublisher(nc *nats.Conn, events republish.Events, flushTimeout time.Duration) *Publisher {
	return &Publisher{nc: nc, events: events, flushTimeout: flushTimeout}
}

var _ expiry.Publisher = (*Publisher)(nil)

// Ended publishes chat.destroy with the reason on the room's subject.
// While NATS reconnects the client buffers it; only Flush says it arrived.
func (p *Publisher) Ended(_ context.Context, roomID, reason string) error {
	ev, ok := events[reason]
	if !ok {
		ev = contract.DestroyEvent(reason)
	}
	return p.events.Publish(contract.DestroySubject(roomID), ev)
}

// Resync publishes on contract.SubjectResync.
func (p *Publisher) Resync(context.Context) error {
	return p.nc.Publish(contract.SubjectResync, nil)
}

// Flush waits for NATS to have everything published so far. Disconnected,
// it fails at once: what sits in the reconnect buffer is not delivered yet
// (and gateways that reconnect later would miss it anyway), so the ends
// stay in the outbox for another try.
func (p *Publisher) Flush(ctx context.Context) error {
	if !p.nc.IsConnected() {
		return nats.ErrConnectionReconnecting
	}
	ctx, cancel := context.WithTimeout(ctx, p.flushTimeout)
	defer cancel()
	return p.nc.FlushWithContext(ctx)
}
