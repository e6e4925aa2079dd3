package messaging

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/trellis-edge/trellis/capabilities"
)

// Telemetry serves trellis:telemetry: Publish {topic: str, body: bin} → nil
// sends body to trellis.<lattice>.tm.<host>.<topic>, when a telemetry
// grant pattern matches topic. The topic is one or more dot-separated
// tokens without wildcards; the body may be as large as the bus allows.
type Telemetry struct {
	nc            *nats.Conn
	lattice, host string
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
	if err := t.nc.Publish(t.Subject(r.Topic), r.Body); err != nil {
		return nil, busError(OpPublish, r.Topic, err)
	}
	return nil, nil
}
