package mesh

// Events: CloudEvents 1.0 in structured JSON mode, published by each host on
// trellis.<lattice>.evt.<host>.<token>, where token is EventToken(type):
//
//	dev.trellis.host.heartbeat   heartbeat       data: Inventory, every 15 s by default
//	dev.trellis.host.started     host_started
//	dev.trellis.host.stopping    host_stopping
//	dev.trellis.actor.started    actor_started
//	dev.trellis.actor.stopped    actor_stopped
//	dev.trellis.actor.failed     actor_failed
//	dev.trellis.actor.updated    actor_updated
//
// Other packages may publish their own dev.trellis.* types (deployments,
// rollouts); their token is the type without "dev.trellis." and with '.'
// replaced by '_'. Each event also carries its id in the Nats-Msg-Id header,
// so a JetStream stream that captures events drops duplicates.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// Event types.
const (
	EventHostHeartbeat = "dev.trellis.host.heartbeat"
	EventHostStarted   = "dev.trellis.host.started"
	EventHostStopping  = "dev.trellis.host.stopping"
	EventActorStarted  = "dev.trellis.actor.started"
	EventActorStopped  = "dev.trellis.actor.stopped"
	EventActorFailed   = "dev.trellis.actor.failed"
	EventActorUpdated  = "dev.trellis.actor.updated"
)

const (
	eventTypePrefix = "dev.trellis."
	eventSpec       = "1.0"
	eventJSON       = "application/json"
	// DefaultHeartbeat is RunHeartbeat's period when none is given.
	DefaultHeartbeat = 15 * time.Second
)

// ErrBadEvent is an event that does not decode or is not valid CloudEvents
// 1.0 as Trellis publishes it.
var ErrBadEvent = errors.New("mesh: bad event")

// Event is a CloudEvents 1.0 event in structured JSON mode. Extension
// attributes and data_base64 are not accepted: Trellis does not use them.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time,omitzero"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	DataSchema      string          `json:"dataschema,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
}

// DecodeData decodes the event's data into v, leniently (newer publishers
// may add fields).
func (e Event) DecodeData(v any) error {
	if len(e.Data) == 0 {
		return fmt.Errorf("%w: %s %s: no data", ErrBadEvent, e.Type, e.ID)
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("%w: %s %s: data: %v", ErrBadEvent, e.Type, e.ID, err)
	}
	return nil
}

// EventToken is the subject token of event type typ (see EventSubject):
// "heartbeat" for EventHostHeartbeat, otherwise typ without "dev.trellis."
// and with '.' replaced by '_' ("actor_started"). It fails for a type
// outside dev.trellis. or one that does not make a valid token.
func EventToken(typ string) (string, error) {
	if typ == EventHostHeartbeat {
		return "heartbeat", nil
	}
	rest, ok := strings.CutPrefix(typ, eventTypePrefix)
	if !ok {
		return "", fmt.Errorf("mesh: event type %q: want prefix %q", typ, eventTypePrefix)
	}
	tok := strings.ReplaceAll(rest, ".", "_")
	if err := ValidateToken("event type", tok); err != nil {
		return "", err
	}
	return tok, nil
}

// EventSource is the CloudEvents source of a host's events.
func EventSource(lattice, hostID string) string {
	return "trellis://" + lattice + "/" + hostID
}

// Events publishes one host's events.
type Events struct {
	nc      *nats.Conn
	lattice string
	hostID  string
	source  string
	log     *slog.Logger
	now     func() time.Time
}

// NewEvents returns the event publisher of host hostID; log may be nil.
func NewEvents(nc *nats.Conn, lattice, hostID string, log *slog.Logger) *Events {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Events{
		nc:      nc,
		lattice: lattice,
		hostID:  hostID,
		source:  EventSource(lattice, hostID),
		log:     log.With("subsystem", "events", "host", hostID),
		now:     time.Now,
	}
}

// Publish publishes an event of type typ with data as its JSON payload (nil
// for none). Core NATS: without a connection the event is buffered by the
// client or lost, as the lattice's design accepts for events.
func (e *Events) Publish(ctx context.Context, typ string, data any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mesh: publish %s: %w", typ, err)
	}
	tok, err := EventToken(typ)
	if err != nil {
		return fmt.Errorf("mesh: publish: %w", err)
	}
	ev := Event{
		SpecVersion: eventSpec,
		ID:          nuid.Next(),
		Source:      e.source,
		Type:        typ,
		Time:        e.now().UTC(),
	}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return fmt.Errorf("mesh: publish %s: encode data: %w", typ, err)
		}
		ev.Data, ev.DataContentType = b, eventJSON
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("mesh: publish %s: %w", typ, err)
	}
	msg := &nats.Msg{
		Subject: EventSubject(e.lattice, e.hostID, tok),
		Header:  nats.Header{nats.MsgIdHdr: []string{ev.ID}},
		Data:    body,
	}
	if err := e.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("mesh: publish %s: %w", typ, err)
	}
	return nil
}

// RunHeartbeat publishes a heartbeat carrying inventory(ctx) at once and
// then every every (DefaultHeartbeat if ≤ 0) until ctx ends. A failed
// publish is logged once until one succeeds again.
func (e *Events) RunHeartbeat(ctx context.Context, every time.Duration, inventory func(context.Context) Inventory) {
	if every <= 0 {
		every = DefaultHeartbeat
	}
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	failing := false
	for {
		err := e.Publish(ctx, EventHostHeartbeat, inventory(ctx))
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil && !failing:
			e.log.Warn("heartbeat not published", "err", err)
			failing = true
		case err == nil && failing:
			e.log.Info("heartbeat published again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// DecodeEvent decodes and checks one event: strict JSON (unknown attributes
// are errors), specversion 1.0, non-empty id, a source that is a URI
// reference, a type, and data only as application/json.
func DecodeEvent(b []byte) (Event, error) {
	var ev Event
	if err := decodeStrict(b, &ev); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	switch {
	case ev.SpecVersion != eventSpec:
		return Event{}, fmt.Errorf("%w: specversion %q: want %q", ErrBadEvent, ev.SpecVersion, eventSpec)
	case ev.ID == "":
		return Event{}, fmt.Errorf("%w: id: empty", ErrBadEvent)
	case ev.Source == "":
		return Event{}, fmt.Errorf("%w: source: empty", ErrBadEvent)
	case ev.Type == "":
		return Event{}, fmt.Errorf("%w: type: empty", ErrBadEvent)
	case ev.DataContentType != "" && !isJSONContentType(ev.DataContentType):
		return Event{}, fmt.Errorf("%w: datacontenttype %q: want %q", ErrBadEvent, ev.DataContentType, eventJSON)
	}
	if _, err := url.Parse(ev.Source); err != nil {
		return Event{}, fmt.Errorf("%w: source %q: not a URI reference", ErrBadEvent, ev.Source)
	}
	if len(ev.Data) > 0 && string(ev.Data) == "null" {
		ev.Data = nil
	}
	return ev, nil
}

func isJSONContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), eventJSON)
}
