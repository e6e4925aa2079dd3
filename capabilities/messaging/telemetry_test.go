package messaging_test

import (
	"testing"
	"time"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/messaging"
)

func TestTelemetry(t *testing.T) {
	const maxPayload = 4096
	b := startBus(t, maxPayload)
	tm := messaging.NewTelemetry(b.agent, "default", "host1")
	got := b.watch(t, "trellis.default.tm.host1.>")
	g := capabilities.Grants{Telemetry: []string{"temperature", "env.*"}}
	publish := func(topic string, body []byte, g capabilities.Grants) error {
		t.Helper()
		_, err := call(tm, t.Context(), "thermo", capabilities.Telemetry, messaging.OpPublish, mustMsgpack(t, messaging.TelemetryRequest{Topic: topic, Body: body}), g)
		return err
	}

	for _, topic := range []string{"temperature", "env.room"} {
		if err := publish(topic, []byte("21.5"), g); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		m := recv(t, got)
		if want := "trellis.default.tm.host1." + topic; m.Subject != want || string(m.Data) != "21.5" {
			t.Fatalf("published %q %q, want %q", m.Subject, m.Data, want)
		}
	}
	if s := tm.Subject("a.b"); s != "trellis.default.tm.host1.a.b" {
		t.Fatalf("Subject: %s", s)
	}
	if err := publish("temperature", make([]byte, maxPayload), g); err != nil {
		t.Fatalf("a body at the limit: %v", err)
	}
	recv(t, got)

	for _, tc := range []struct {
		name  string
		topic string
		body  []byte
		g     capabilities.Grants
		want  error
	}{
		{"not granted", "humidity", nil, g, capabilities.ErrDenied},
		{"deeper than the grant", "env.room.north", nil, g, capabilities.ErrDenied},
		{"no grant", "temperature", nil, capabilities.Grants{Publish: []string{">"}}, capabilities.ErrDenied},
		{"wildcard", "env.*", nil, capabilities.Grants{Telemetry: []string{">"}}, capabilities.ErrBadPayload},
		{"full wildcard", ">", nil, capabilities.Grants{Telemetry: []string{">"}}, capabilities.ErrBadPayload},
		{"empty", "", nil, g, capabilities.ErrBadPayload},
		{"empty token", "env..room", nil, g, capabilities.ErrBadPayload},
		{"space", "env.ro om", nil, g, capabilities.ErrBadPayload},
		{"over the bus limit", "temperature", make([]byte, maxPayload+1), g, capabilities.ErrBadPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, publish(tc.topic, tc.body, tc.g), tc.want, "telemetry publish")
		})
	}
	_, err := call(tm, t.Context(), "thermo", capabilities.Telemetry, messaging.OpPublish, mustMsgpack(t, map[string]any{"topic": "temperature", "value": 1}), g)
	wantErr(t, err, capabilities.ErrBadPayload, "unknown field")
	_, err = call(tm, t.Context(), "thermo", capabilities.Telemetry, "Request", nil, g)
	wantErr(t, err, capabilities.ErrUnknownOperation, "unknown operation")
	b.flush(t)
	select {
	case m := <-got:
		t.Fatalf("a refused publish went out: %q", m.Subject)
	case <-time.After(50 * time.Millisecond):
	}
}
