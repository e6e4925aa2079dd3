package messaging

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/mesh"
)

// Telemetry serves trellis:telemetry: Publish {topic: str, body: bin} → nil
// sends body to trellis.<lattice>.tm.<host>.<topic>, when a telemetry
// grant pattern matches topic. The topic is one or more dot-separated
// tokens without wildcards; the body may be as large as the bus allows.
//
// With a JetStream (WithJetStream) the publish is durable: it returns only
// once the device's telemetry stream has stored the message, and a stream
// that is full under the reject policy is an error the actor sees.
type Telemetry struct {
	nc            *nats.Conn
	js            jetstream.JetStream
	lattice, host string

	published, rejected atomic.Uint64
}

// TelemetryStats counts durable publishes.
type TelemetryStats struct {
	Published uint64 // stored by the device's stream
	Rejected  uint64 // refused because the stream was full (reject policy)
}

// WithJetStream makes publishes durable through js (the device's own
// JetStream, whose telemetry stream captures the subjects).
func (t *Telemetry) WithJetStream(js jetstream.JetStream) *Telemetry {
	t.js = js
	return t
}

// Stats returns the durable publish counters.
func (t *Telemetry) Stats() TelemetryStats {
	return TelemetryStats{Published: t.published.Load(), Rejected: t.rejected.Load()}
}

// NewTelemetry publishes on nc for host in lattice; both are single subject
// tokens (the agent's lattice id and host id).
func NewTelemetry(nc *nats.Conn, lattice, host string) *Telemetry {
	return &Telemetry{nc: nc, lattice: lattice, host: host}
}

// Subject returns where a topic of this host is published.
func (t *Telemetry) Subject(topic string) string {
	return "trellis." + t.lattice + ".tm." + t.host + "." + topic
}

// Handle implements capabilities.Handler.
func (t *Telemetry) Handle(ctx context.Context, call capabilities.Call) ([]byte, error) {
	if call.Operation != OpPublish {
		return nil, fmt.Errorf("%w: %s %s", capabilities.ErrUnknownOperation, capabilities.Telemetry, quote(call.Operation))
	}
	r, err := decodeTelemetry(call.Payload)
	if err != nil {
		return nil, err
	}
	granted := false
	for _, p := range call.Grants.Telemetry {
		if capabilities.Covers(p, r.Topic) {
			granted = true
			break
		}
	}
	if !granted {
		return nil, fmt.Errorf("%w: actor %s has no telemetry grant for topic %s", capabilities.ErrDenied, call.Actor, quote(r.Topic))
	}
	if limit := t.nc.MaxPayload(); limit > 0 && int64(len(r.Body)) > limit {
		return nil, fmt.Errorf("%w: %s: body of %d bytes is over the bus's limit of %d", capabilities.ErrBadPayload, OpPublish, len(r.Body), limit)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if t.js == nil {
		if err := t.nc.Publish(t.Subject(r.Topic), r.Body); err != nil {
			return nil, busError(OpPublish, r.Topic, err)
		}
		return nil, nil
	}
	if _, err := t.js.Publish(ctx, t.Subject(r.Topic), r.Body); err != nil {
		switch {
		case mesh.IsTelemetryFull(err):
			t.rejected.Add(1)
			return nil, fmt.Errorf("%w: telemetry %s: the device's telemetry buffer is full and its policy is to reject new messages (%v)",
				capabilities.ErrUnavailable, quote(r.Topic), err)
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			return nil, err
		}
		return nil, fmt.Errorf("%w: telemetry %s: not stored: %v", capabilities.ErrUnavailable, quote(r.Topic), err)
	}
	t.published.Add(1)
	return nil, nil
}
