package messaging_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/messaging"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
)

// TestCompat drives wasmcloud:messaging and wascc:messaging through the
// dispatcher, as the agent wires them, with the exact payloads wasmCloud
// actors of each era send (built with the codecs from the public
// interface definitions), and checks the answers they expect.
func TestCompat(t *testing.T) {
	b := startBus(t, 0)
	a := newActors()
	h := newHandler(t, b, nil, a, messaging.Options{})
	d := capabilities.NewDispatcher(capabilities.DispatcherOptions{})
	for _, ns := range []string{capabilities.Messaging, wasmcloud.Messaging, wasmcloud.WaSCCMessaging} {
		d.Register(ns, h)
	}
	d.Register(capabilities.Telemetry, messaging.NewTelemetry(b.agent, "default", "host1"))
	g := capabilities.Grants{
		Publish:       []string{"out.>", "svc.>"},
		Subscribe:     []string{"in.>"},
		Subscriptions: []capabilities.Subscription{{Subject: "in.legacy", Format: capabilities.FormatLegacy}},
	}
	if err := d.SetGrants("pinger", g); err != nil {
		t.Fatal(err)
	}
	if n := h.Stats().Subscriptions; n != 1 {
		t.Fatalf("%d subscriptions after SetGrants (the handler is registered three times, it binds once)", n)
	}
	out := b.watch(t, "out.>")
	echo, err := b.peer.Subscribe("svc.echo", func(m *nats.Msg) { _ = m.Respond(append([]byte("echo:"), m.Data...)) })
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Unsubscribe()
	_ = b.peer.Flush()
	do := func(ns, op string, payload []byte, encErr error) []byte {
		t.Helper()
		if encErr != nil {
			t.Fatal(encErr)
		}
		resp, err := d.Dispatch(context.Background(), capabilities.Call{Actor: "pinger", Contract: ns, Operation: op, Payload: payload})
		if err != nil {
			t.Fatalf("%s %s: %v", ns, op, err)
		}
		return resp
	}

	for _, tc := range []struct {
		ns, op string
		era    wasmcloud.Era
		want   func([]byte) bool
	}{
		{wasmcloud.Messaging, wasmcloud.OpPublish, wasmcloud.EraWasmbus, func(b []byte) bool { return b == nil }},
		{wasmcloud.Messaging, wasmcloud.OpLegacyPublish, wasmcloud.Era018, func(b []byte) bool {
			ok, err := wasmcloud.DecodePublishResponse(b)
			return err == nil && ok
		}},
		{wasmcloud.WaSCCMessaging, wasmcloud.OpLegacyPublish, wasmcloud.EraWaSCC, func(b []byte) bool { return b == nil }},
	} {
		subject := "out." + tc.era.String()
		p, err := wasmcloud.EncodeMessage(tc.era, wasmcloud.Message{Subject: subject, ReplyTo: "out.reply", Body: []byte("ping")})
		if resp := do(tc.ns, tc.op, p, err); !tc.want(resp) {
			t.Fatalf("%s %s answered %x", tc.ns, tc.op, resp)
		}
		m := recv(t, out)
		if m.Subject != subject || m.Reply != "out.reply" || string(m.Data) != "ping" {
			t.Fatalf("%s %s published %q reply %q body %q", tc.ns, tc.op, m.Subject, m.Reply, m.Data)
		}
	}

	// Requests: wasmbus and 0.18 answer a message in their shape, waSCC the raw reply.
	for _, tc := range []struct {
		ns, op string
		era    wasmcloud.Era
	}{
		{wasmcloud.Messaging, wasmcloud.OpRequest, wasmcloud.EraWasmbus},
		{wasmcloud.Messaging, wasmcloud.OpLegacyRequest, wasmcloud.Era018},
		{wasmcloud.WaSCCMessaging, wasmcloud.OpLegacyRequest, wasmcloud.EraWaSCC},
	} {
		p, err := wasmcloud.EncodeRequestMessage(tc.era, wasmcloud.RequestMessage{Subject: "svc.echo", Body: []byte(tc.era.String()), TimeoutMs: 0})
		resp := do(tc.ns, tc.op, p, err)
		want := "echo:" + tc.era.String()
		if tc.era == wasmcloud.EraWaSCC {
			if string(resp) != want {
				t.Fatalf("waSCC Request answered %q", resp)
			}
			continue
		}
		m, err := wasmcloud.DecodeMessage(tc.era, resp)
		if err != nil || string(m.Body) != want {
			t.Fatalf("%s %s answered %+v, %v", tc.ns, tc.op, m, err)
		}
	}

	// A 0.18 actor bound in the legacy format gets HandleMessage, 0.18 shape.
	if err := b.peer.Publish("in.legacy", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	inv := a.next(t)
	want, _ := wasmcloud.EncodeMessage(wasmcloud.Era018, wasmcloud.Message{Subject: "in.legacy", Body: []byte("hello")})
	if inv.op != wasmcloud.OpLegacyHandleMessage || !bytes.Equal(inv.payload, want) {
		t.Fatalf("legacy delivery %s %x, want %x", inv.op, inv.payload, want)
	}

	// Refusals keep their meaning in every era.
	call := func(ns, op string, payload []byte) error {
		_, err := d.Dispatch(context.Background(), capabilities.Call{Actor: "pinger", Contract: ns, Operation: op, Payload: payload})
		return err
	}
	p, _ := wasmcloud.EncodeMessage(wasmcloud.Era018, wasmcloud.Message{Subject: "trellis.default.ctl.x", Body: nil})
	wantErr(t, call(wasmcloud.Messaging, wasmcloud.OpLegacyPublish, p), capabilities.ErrDenied, "0.18 reserved publish")
	p, _ = wasmcloud.EncodeMessage(wasmcloud.EraWaSCC, wasmcloud.Message{Subject: "elsewhere", Body: nil})
	wantErr(t, call(wasmcloud.WaSCCMessaging, wasmcloud.OpLegacyPublish, p), capabilities.ErrDenied, "waSCC ungranted publish")
	p, _ = wasmcloud.EncodeRequestMessage(wasmcloud.EraWasmbus, wasmcloud.RequestMessage{Subject: "svc.nobody"})
	wantErr(t, call(wasmcloud.Messaging, wasmcloud.OpRequest, p), capabilities.ErrUnavailable, "wasmbus request without responders")
	wantErr(t, call(wasmcloud.Messaging, wasmcloud.OpPublish, []byte{0x81, 0xa1}), capabilities.ErrBadPayload, "truncated wasmbus publish")
	wantErr(t, call(wasmcloud.Messaging, wasmcloud.OpLegacyDeliverMessage, nil), capabilities.ErrUnknownOperation, "a host→actor op")
	wantErr(t, call(wasmcloud.Messaging, wasmcloud.OpKVGet, nil), capabilities.ErrUnknownOperation, "another contract's op")
	wantErr(t, call(wasmcloud.WaSCCMessaging, wasmcloud.OpPublish, nil), capabilities.ErrUnknownOperation, "a wasmbus op on wascc")

	// Stopping the actor unbinds it.
	d.RemoveGrants("pinger")
	if n := h.Stats().Subscriptions; n != 0 {
		t.Fatalf("%d subscriptions after RemoveGrants", n)
	}
}
