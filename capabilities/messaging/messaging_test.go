package messaging_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/messaging"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
	"github.com/trellis-edge/trellis/store"
)

func publishPayload(t testing.TB, subject, replyTo string, body []byte) []byte {
	t.Helper()
	p, err := wasmcloud.EncodeMessage(wasmcloud.EraWasmbus, wasmcloud.Message{Subject: subject, ReplyTo: replyTo, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func requestPayload(t testing.TB, subject string, body []byte, timeoutMs uint32) []byte {
	t.Helper()
	p, err := wasmcloud.EncodeRequestMessage(wasmcloud.EraWasmbus, wasmcloud.RequestMessage{Subject: subject, Body: body, TimeoutMs: timeoutMs})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPublish(t *testing.T) {
	b := startBus(t, 0)
	h := newHandler(t, b, nil, nil, messaging.Options{})
	g := capabilities.Grants{Publish: []string{"sensors.>", "replies.*"}}
	got := b.watch(t, "sensors.>")

	out, err := call(h, t.Context(), "thermo", capabilities.Messaging, messaging.OpPublish, publishPayload(t, "sensors.room.temp", "replies.thermo", []byte("21.5")), g)
	if err != nil || out != nil {
		t.Fatalf("granted publish: %x, %v", out, err)
	}
	m := recv(t, got)
	if m.Subject != "sensors.room.temp" || m.Reply != "replies.thermo" || string(m.Data) != "21.5" {
		t.Fatalf("published %q reply %q body %q", m.Subject, m.Reply, m.Data)
	}

	denied := []struct {
		name             string
		subject, replyTo string
		g                capabilities.Grants
	}{
		{"no grant", "sensors.room.temp", "", capabilities.Grants{Subscribe: []string{"sensors.>"}}},
		{"outside the grant", "actuators.valve", "", g},
		{"reply subject not granted", "sensors.room.temp", "elsewhere.x", g},
		{"reserved trellis", "trellis.default.ctl.actor.stop", "", capabilities.Grants{Publish: []string{">"}}},
		{"reserved $SYS", "$SYS.REQ.SERVER.PING", "", capabilities.Grants{Publish: []string{">"}}},
		{"reserved $JS", "$JS.API.STREAM.LIST", "", capabilities.Grants{Publish: []string{">"}}},
		{"reserved _INBOX", "_INBOX.abc", "", capabilities.Grants{Publish: []string{">"}}},
		{"reserved reply subject", "sensors.x", "trellis.default.ctl.x", capabilities.Grants{Publish: []string{">"}}},
	}
	for _, tc := range denied {
		t.Run(tc.name, func(t *testing.T) {
			_, err := call(h, t.Context(), "thermo", capabilities.Messaging, messaging.OpPublish, publishPayload(t, tc.subject, tc.replyTo, nil), tc.g)
			wantErr(t, err, capabilities.ErrDenied, "publish")
		})
	}
	bad := []struct {
		name    string
		payload []byte
	}{
		{"wildcard subject", publishPayload(t, "sensors.*", "", nil)},
		{"empty subject", publishPayload(t, "", "", nil)},
		{"control character", publishPayload(t, "sensors.\x00", "", nil)},
		{"no body", mustMsgpack(t, map[string]any{"subject": "sensors.x"})},
		{"not a map", mustMsgpack(t, "sensors.x")},
		{"truncated", publishPayload(t, "sensors.x", "", []byte("abc"))[:5]},
		{"empty", nil},
		{"too deep", bytes.Repeat([]byte{0x91}, 100)},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := call(h, t.Context(), "thermo", capabilities.Messaging, messaging.OpPublish, tc.payload, g)
			wantErr(t, err, capabilities.ErrBadPayload, "publish")
		})
	}
	// Only the granted message went out.
	b.flush(t)
	select {
	case m := <-got:
		t.Fatalf("a refused publish went out: %q", m.Subject)
	case <-time.After(50 * time.Millisecond):
	}
	// Over the bus's payload limit.
	_, err = call(h, t.Context(), "thermo", capabilities.Messaging, messaging.OpPublish, publishPayload(t, "sensors.big", "", make([]byte, b.agent.MaxPayload()+1)), g)
	wantErr(t, err, capabilities.ErrBadPayload, "oversized publish")

	_, err = call(h, t.Context(), "thermo", capabilities.Messaging, "Explode", nil, g)
	wantErr(t, err, capabilities.ErrUnknownOperation, "unknown operation")
}

func TestRequest(t *testing.T) {
	b := startBus(t, 0)
	h := newHandler(t, b, nil, nil, messaging.Options{})
	g := capabilities.Grants{Publish: []string{"svc.>"}}
	sub, err := b.peer.Subscribe("svc.echo", func(m *nats.Msg) { _ = m.Respond(append([]byte("echo:"), m.Data...)) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	silent, err := b.peer.Subscribe("svc.silent", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Unsubscribe()
	if err := b.peer.Flush(); err != nil {
		t.Fatal(err)
	}

	out, err := call(h, t.Context(), "thermo", capabilities.Messaging, messaging.OpRequest, requestPayload(t, "svc.echo", []byte("hi"), 0), g)
	if err != nil {
		t.Fatal(err)
	}
	reply, err := wasmcloud.DecodeMessage(wasmcloud.EraWasmbus, out)
	if err != nil || string(reply.Body) != "echo:hi" || reply.Subject == "" {
		t.Fatalf("reply %+v, %v", reply, err)
	}

	// No responders: a clear error at once.
	_, err = call(h, t.Context(), "thermo", capabilities.Messaging, messaging.OpRequest, requestPayload(t, "svc.nobody", nil, 60000), g)
	wantErr(t, err, capabilities.ErrUnavailable, "no responders")
	if !strings.Contains(err.Error(), "no responders") {
		t.Fatalf("no responders error says %q", err)
	}

	// A responder that never answers: the request's own timeout ends it...
	done := make(chan error, 1)
	go func() {
		_, err := call(h, context.Background(), "thermo", capabilities.Messaging, messaging.OpRequest, requestPayload(t, "svc.silent", nil, 50), g)
		done <- err
	}()
	select {
	case err := <-done:
		wantErr(t, err, capabilities.ErrUnavailable, "request timeout")
		wantErr(t, err, context.DeadlineExceeded, "request timeout")
	case <-time.After(waitBound):
		t.Fatal("timeoutMs was not honoured")
	}
	// ...and so does the call's deadline, when it comes first.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := call(h, ctx, "thermo", capabilities.Messaging, messaging.OpRequest, requestPayload(t, "svc.silent", nil, 3_600_000), g)
		done <- err
	}()
	select {
	case err := <-done:
		wantErr(t, err, context.DeadlineExceeded, "call deadline")
	case <-time.After(waitBound):
		t.Fatal("the call's deadline was not honoured")
	}

	_, err = call(h, t.Context(), "thermo", capabilities.Messaging, messaging.OpRequest, requestPayload(t, "other.svc", nil, 0), g)
	wantErr(t, err, capabilities.ErrDenied, "request outside the grant")
	_, err = call(h, t.Context(), "thermo", capabilities.Messaging, messaging.OpRequest, requestPayload(t, "$SYS.REQ.SERVER.PING", nil, 0), capabilities.Grants{Publish: []string{">"}})
	wantErr(t, err, capabilities.ErrDenied, "reserved request")
	_, err = call(h, t.Context(), "thermo", capabilities.Messaging, messaging.OpRequest, mustMsgpack(t, map[string]any{"subject": "svc.echo", "body": []byte{}}), g)
	wantErr(t, err, capabilities.ErrBadPayload, "request without timeoutMs")
}

func TestSubscribe(t *testing.T) {
	b := startBus(t, 0)
	st := openStore(t, t.TempDir())
	defer st.Close()
	a := newActors()
	a.respond = func(_ context.Context, inv invocation) ([]byte, error) {
		m, err := wasmcloud.DecodeMessage(wasmcloud.EraWasmbus, inv.payload)
		if err != nil {
			return nil, err
		}
		return append([]byte("pong:"), m.Body...), nil
	}
	h := newHandler(t, b, st, a, messaging.Options{MaxSubscriptions: 3})
	g := capabilities.Grants{Subscribe: []string{"cmd.>"}}
	if err := h.Bind("thermo", g); err != nil {
		t.Fatal(err)
	}
	id := subscribe(t, h, "thermo", g, messaging.SubscribeRequest{Subject: "cmd.*", Operation: "OnCmd"})
	b.flush(t)

	// A message without a reply: the exact wasmbus SubMessage bytes.
	if err := b.peer.Publish("cmd.heat", []byte("on")); err != nil {
		t.Fatal(err)
	}
	inv := a.next(t)
	want, _ := wasmcloud.EncodeMessage(wasmcloud.EraWasmbus, wasmcloud.Message{Subject: "cmd.heat", Body: []byte("on")})
	if inv.actor != "thermo" || inv.op != "OnCmd" || !bytes.Equal(inv.payload, want) {
		t.Fatalf("invoked %s %s %x, want thermo OnCmd %x", inv.actor, inv.op, inv.payload, want)
	}
	// A request: the operation's response is the reply.
	resp, err := b.peer.Request("cmd.ping", []byte("x"), waitBound)
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Data) != "pong:x" {
		t.Fatalf("reply %q", resp.Data)
	}
	inv = a.next(t)
	m, err := wasmcloud.DecodeMessage(wasmcloud.EraWasmbus, inv.payload)
	if err != nil || m.ReplyTo == "" {
		t.Fatalf("delivered %+v, %v", m, err)
	}
	if want, _ := wasmcloud.EncodeMessage(wasmcloud.EraWasmbus, wasmcloud.Message{Subject: "cmd.ping", ReplyTo: m.ReplyTo, Body: []byte("x")}); !bytes.Equal(inv.payload, want) {
		t.Fatalf("delivered %x, want %x", inv.payload, want)
	}

	// Subscribing again to the same thing answers the same id.
	if again := subscribe(t, h, "thermo", g, messaging.SubscribeRequest{Subject: "cmd.*", Operation: "OnCmd"}); again != id {
		t.Fatalf("second Subscribe: id %s, first %s", again, id)
	}
	// Refusals.
	for _, tc := range []struct {
		name string
		r    messaging.SubscribeRequest
		g    capabilities.Grants
		want error
	}{
		{"not covered", messaging.SubscribeRequest{Subject: "other.x", Operation: "Op"}, g, capabilities.ErrDenied},
		{"wider than the grant", messaging.SubscribeRequest{Subject: ">", Operation: "Op"}, g, capabilities.ErrDenied},
		{"reserved trellis", messaging.SubscribeRequest{Subject: "trellis.default.rpc.>", Operation: "Op"}, capabilities.Grants{Subscribe: []string{">"}}, capabilities.ErrDenied},
		{"reserved everything", messaging.SubscribeRequest{Subject: ">", Operation: "Op"}, capabilities.Grants{Subscribe: []string{">"}}, capabilities.ErrDenied},
		{"reserved leading wildcard", messaging.SubscribeRequest{Subject: "*.default.evt.>", Operation: "Op"}, capabilities.Grants{Subscribe: []string{">"}}, capabilities.ErrDenied},
		{"reserved _INBOX", messaging.SubscribeRequest{Subject: "_INBOX.>", Operation: "Op"}, capabilities.Grants{Subscribe: []string{">"}}, capabilities.ErrDenied},
		{"no operation", messaging.SubscribeRequest{Subject: "cmd.x"}, g, capabilities.ErrBadPayload},
		{"operation with a space", messaging.SubscribeRequest{Subject: "cmd.x", Operation: "On Cmd"}, g, capabilities.ErrBadPayload},
		{"bad queue", messaging.SubscribeRequest{Subject: "cmd.x", Operation: "Op", Queue: "a.b"}, g, capabilities.ErrBadPayload},
		{"bad subject", messaging.SubscribeRequest{Subject: "cmd..x", Operation: "Op"}, g, capabilities.ErrBadPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := call(h, t.Context(), "thermo", capabilities.Messaging, messaging.OpSubscribe, mustMsgpack(t, tc.r), tc.g)
			wantErr(t, err, tc.want, "Subscribe")
		})
	}
	_, err = call(h, t.Context(), "thermo", capabilities.Messaging, messaging.OpSubscribe, mustMsgpack(t, map[string]any{"subject": "cmd.x", "operation": "Op", "extra": 1}), g)
	wantErr(t, err, capabilities.ErrBadPayload, "unknown field")
	// The per-actor limit (3 here).
	subscribe(t, h, "thermo", g, messaging.SubscribeRequest{Subject: "cmd.a", Operation: "A"})
	subscribe(t, h, "thermo", g, messaging.SubscribeRequest{Subject: "cmd.b", Operation: "B", Queue: "workers"})
	_, err = call(h, t.Context(), "thermo", capabilities.Messaging, messaging.OpSubscribe, mustMsgpack(t, messaging.SubscribeRequest{Subject: "cmd.c", Operation: "C"}), g)
	wantErr(t, err, capabilities.ErrDenied, "over the limit")
	if recs, _ := st.CapStateList(messaging.StateKind); len(recs) != 3 {
		t.Fatalf("%d stored subscriptions, want 3", len(recs))
	}

	// Unsubscribe: the messages stop, the store forgets it.
	unsub := func(id string) bool {
		t.Helper()
		out, err := call(h, t.Context(), "thermo", capabilities.Messaging, messaging.OpUnsubscribe, mustMsgpack(t, messaging.UnsubscribeRequest{ID: id}), g)
		if err != nil {
			t.Fatal(err)
		}
		var r messaging.UnsubscribeResponse
		if err := msgpack.Unmarshal(out, &r); err != nil {
			t.Fatal(err)
		}
		return r.Existed
	}
	if !unsub(id) {
		t.Fatal("Unsubscribe: existed false")
	}
	if unsub(id) {
		t.Fatal("second Unsubscribe: existed true")
	}
	b.flush(t)
	if err := b.peer.Publish("cmd.heat", []byte("off")); err != nil {
		t.Fatal(err)
	}
	_ = b.peer.Flush()
	a.none(t)
	if recs, _ := st.CapStateList(messaging.StateKind); len(recs) != 2 {
		t.Fatalf("%d stored subscriptions after Unsubscribe, want 2", len(recs))
	}
	// Another actor cannot unsubscribe this one's.
	for _, r := range mustList(t, st) {
		out, err := call(h, t.Context(), "intruder", capabilities.Messaging, messaging.OpUnsubscribe, mustMsgpack(t, messaging.UnsubscribeRequest{ID: r.ID}), g)
		if err != nil || !bytes.Equal(out, mustMsgpack(t, messaging.UnsubscribeResponse{})) {
			t.Fatalf("intruder's Unsubscribe: %x, %v", out, err)
		}
	}
	if n := len(mustList(t, st)); n != 2 {
		t.Fatalf("%d stored subscriptions after the intruder, want 2", n)
	}
	_, err = call(h, t.Context(), "thermo", capabilities.Messaging, messaging.OpUnsubscribe, mustMsgpack(t, messaging.UnsubscribeRequest{}), g)
	wantErr(t, err, capabilities.ErrBadPayload, "Unsubscribe without id")
}

func mustList(t testing.TB, st *store.Store) []store.CapState {
	t.Helper()
	recs, err := st.CapStateList(messaging.StateKind)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// callErr is an invocation error with a stable code, as the runtime's are.
type callErr struct{ code, msg string }

func (e *callErr) Error() string     { return e.msg }
func (e *callErr) ErrorCode() string { return e.code }

func TestReplies(t *testing.T) {
	b := startBus(t, 0)
	a := newActors()
	h := newHandler(t, b, nil, a, messaging.Options{})
	// The actor may subscribe but not publish: it can still answer the
	// messages it gets, as wasmCloud actors do, by publishing to replyTo.
	g := capabilities.Grants{Subscribe: []string{"svc.>"}}
	a.respond = func(ctx context.Context, inv invocation) ([]byte, error) {
		m, err := wasmcloud.DecodeMessage(wasmcloud.EraWasmbus, inv.payload)
		if err != nil {
			return nil, err
		}
		switch m.Subject {
		case "svc.fail":
			return nil, &callErr{"guest_error", "actor thermo: OnSvc: the guest says no"}
		case "svc.crash":
			return nil, errors.New("/var/lib/trellis/secret: disk on fire")
		case "svc.self":
			if _, err := call(h, ctx, inv.actor, capabilities.Messaging, messaging.OpPublish, publishPayload(t, m.ReplyTo, "", []byte("by hand")), g); err != nil {
				return nil, err
			}
			return []byte("not sent: the actor replied already"), nil
		}
		return nil, nil
	}
	subscribe(t, h, "thermo", g, messaging.SubscribeRequest{Subject: "svc.*", Operation: "OnSvc"})
	b.flush(t)

	resp, err := b.peer.Request("svc.self", nil, waitBound)
	if err != nil || string(resp.Data) != "by hand" {
		t.Fatalf("reply published by the actor: %v, %v", resp, err)
	}
	a.next(t)
	resp, err = b.peer.Request("svc.fail", nil, waitBound)
	if err != nil || len(resp.Data) != 0 || resp.Header.Get(messaging.HeaderErrorCode) != "guest_error" || !strings.Contains(resp.Header.Get(messaging.HeaderError), "the guest says no") {
		t.Fatalf("failed delivery's reply: %+v, %v", resp, err)
	}
	a.next(t)
	resp, err = b.peer.Request("svc.crash", nil, waitBound)
	if err != nil || resp.Header.Get(messaging.HeaderErrorCode) != "internal" || strings.Contains(resp.Header.Get(messaging.HeaderError), "/var/lib") {
		t.Fatalf("uncoded failure's reply: %+v, %v", resp, err)
	}
	a.next(t)
	// A reply subject of the host's own is never answered.
	ctl := b.watch(t, "trellis.default.ctl.>")
	if err := b.peer.PublishMsg(&nats.Msg{Subject: "svc.self", Reply: "trellis.default.ctl.actor.stop"}); err != nil {
		t.Fatal(err)
	}
	a.next(t)
	eventually(t, "the delivery with a host reply subject fails", func() bool { return h.Stats().Failed == 3 })
	select {
	case m := <-ctl:
		t.Fatalf("a reply went to %s: %q", m.Subject, m.Data)
	case <-time.After(50 * time.Millisecond):
	}
	// Outside a delivery the reply subject is an ordinary reserved subject.
	_, err = call(h, t.Context(), "thermo", capabilities.Messaging, messaging.OpPublish, publishPayload(t, "_INBOX.x", "", nil), capabilities.Grants{Publish: []string{">"}})
	wantErr(t, err, capabilities.ErrDenied, "publish to _INBOX outside a delivery")
	// A requester through trellis:messaging sees a failed responder as an error.
	_, err = call(h, t.Context(), "caller", capabilities.Messaging, messaging.OpRequest, requestPayload(t, "svc.fail", nil, 0), capabilities.Grants{Publish: []string{"svc.>"}})
	wantErr(t, err, capabilities.ErrUnavailable, "request to a failing responder")
	a.next(t)
	eventually(t, "4 failed, 1 delivered", func() bool { s := h.Stats(); return s.Failed == 4 && s.Delivered == 1 })
}

func TestBindings(t *testing.T) {
	b := startBus(t, 0)
	a := newActors()
	h := newHandler(t, b, nil, a, messaging.Options{})
	g := capabilities.Grants{
		Subscribe: []string{"thermostat.>", "legacy.>"},
		Subscriptions: []capabilities.Subscription{
			{Subject: "thermostat.setpoint", Operation: "SetSetpoint"},
			{Subject: "thermostat.status"},
			{Subject: "legacy.>", Format: capabilities.FormatLegacy},
		},
	}
	a.respond = func(_ context.Context, inv invocation) ([]byte, error) {
		if inv.op == wasmcloud.OpLegacyHandleMessage {
			return []byte{0xc0}, nil // what a 0.18 handler answers: msgpack nil
		}
		return nil, nil
	}
	if err := h.Bind("thermo", g); err != nil {
		t.Fatal(err)
	}
	b.flush(t)
	for _, tc := range []struct {
		subject string
		op      string
		era     wasmcloud.Era
	}{
		{"thermostat.setpoint", "SetSetpoint", wasmcloud.EraWasmbus},
		{"thermostat.status", wasmcloud.OpHandleMessage, wasmcloud.EraWasmbus},
		{"legacy.ping", wasmcloud.OpLegacyHandleMessage, wasmcloud.Era018},
	} {
		if err := b.peer.Publish(tc.subject, []byte("22")); err != nil {
			t.Fatal(err)
		}
		inv := a.next(t)
		want, _ := wasmcloud.EncodeMessage(tc.era, wasmcloud.Message{Subject: tc.subject, Body: []byte("22")})
		if inv.op != tc.op || !bytes.Equal(inv.payload, want) {
			t.Fatalf("%s: invoked %s %x, want %s %x", tc.subject, inv.op, inv.payload, tc.op, want)
		}
	}
	if n := h.Stats().Subscriptions; n != 3 {
		t.Fatalf("%d subscriptions, want 3", n)
	}
	// A 0.18 handler's nil answer is no reply.
	if resp, err := b.peer.Request("legacy.ping", nil, 200*time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("a 0.18 handler's nil was sent as a reply: %v, %v", resp, err)
	}
	a.next(t)
	// The same grants again: nothing changes.
	if err := h.Bind("thermo", g); err != nil {
		t.Fatal(err)
	}
	if n := h.Stats().Subscriptions; n != 3 {
		t.Fatalf("%d subscriptions after a rebind, want 3", n)
	}
	// A binding the grants cannot cover, or a reserved one, fails the Bind
	// and leaves the actor as it was.
	for _, bad := range []capabilities.Grants{
		{Subscribe: []string{"thermostat.>"}, Subscriptions: []capabilities.Subscription{{Subject: "other.x"}}},
		{Subscribe: []string{">"}, Subscriptions: []capabilities.Subscription{{Subject: "trellis.>"}}},
		{Subscribe: []string{">"}, Subscriptions: []capabilities.Subscription{{Subject: "x", Format: "cbor"}}},
	} {
		if err := h.Bind("thermo", bad); err == nil {
			t.Fatalf("Bind %+v succeeded", bad.Subscriptions)
		}
	}
	if n := h.Stats().Subscriptions; n != 3 {
		t.Fatalf("%d subscriptions after failed binds, want 3", n)
	}
	// Changed bindings: the dropped one stops, the new one starts.
	g2 := g
	g2.Subscriptions = []capabilities.Subscription{{Subject: "thermostat.setpoint", Operation: "SetSetpoint"}, {Subject: "thermostat.mode", Operation: "SetMode"}}
	if err := h.Bind("thermo", g2); err != nil {
		t.Fatal(err)
	}
	b.flush(t)
	_ = b.peer.Publish("legacy.ping", nil)
	_ = b.peer.Publish("thermostat.mode", []byte("eco"))
	if inv := a.next(t); inv.op != "SetMode" {
		t.Fatalf("after rebind: %s", inv.op)
	}
	a.none(t)
	if n := h.Stats().Subscriptions; n != 2 {
		t.Fatalf("%d subscriptions, want 2", n)
	}
}

func TestRestoreAfterRestart(t *testing.T) {
	b := startBus(t, 0)
	dir := t.TempDir()
	g := capabilities.Grants{Subscribe: []string{"cmd.>", "alarm.>"}}

	st := openStore(t, dir)
	a := newActors()
	h := newHandler(t, b, st, a, messaging.Options{})
	if err := h.Bind("thermo", g); err != nil {
		t.Fatal(err)
	}
	id := subscribe(t, h, "thermo", g, messaging.SubscribeRequest{Subject: "cmd.heat", Operation: "Heat"})
	subscribe(t, h, "thermo", g, messaging.SubscribeRequest{Subject: "alarm.*", Operation: "Alarm", Queue: "q"})
	h.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// The device restarts: a new store handle, a new handler.
	st = openStore(t, dir)
	defer st.Close()
	a = newActors()
	h = newHandler(t, b, st, a, messaging.Options{})
	if n := h.Stats().Subscriptions; n != 0 {
		t.Fatalf("%d subscriptions before the actor is bound", n)
	}
	// The agent sets the restored actor's grants, narrower this time.
	if err := h.Bind("thermo", capabilities.Grants{Subscribe: []string{"cmd.>"}}); err != nil {
		t.Fatal(err)
	}
	b.flush(t)
	if err := b.peer.Publish("cmd.heat", []byte("on")); err != nil {
		t.Fatal(err)
	}
	if inv := a.next(t); inv.actor != "thermo" || inv.op != "Heat" {
		t.Fatalf("restored subscription invoked %s %s", inv.actor, inv.op)
	}
	recs := mustList(t, st)
	if len(recs) != 1 || recs[0].ID != id {
		t.Fatalf("stored after a narrower restore: %+v, want only %s", recs, id)
	}
	// The id survived the restart: Unsubscribe works with it.
	out, err := call(h, t.Context(), "thermo", capabilities.Messaging, messaging.OpUnsubscribe, mustMsgpack(t, messaging.UnsubscribeRequest{ID: id}), g)
	if err != nil || !bytes.Equal(out, mustMsgpack(t, messaging.UnsubscribeResponse{Existed: true})) {
		t.Fatalf("Unsubscribe of a restored subscription: %x, %v", out, err)
	}
	if n := len(mustList(t, st)); n != 0 {
		t.Fatalf("%d stored after Unsubscribe", n)
	}
}

func TestGrantNarrowing(t *testing.T) {
	b := startBus(t, 0)
	st := openStore(t, t.TempDir())
	defer st.Close()
	a := newActors()
	h := newHandler(t, b, st, a, messaging.Options{})
	g := capabilities.Grants{Subscribe: []string{"cmd.>", "other.>"}}
	if err := h.Bind("thermo", g); err != nil {
		t.Fatal(err)
	}
	keep := subscribe(t, h, "thermo", g, messaging.SubscribeRequest{Subject: "cmd.a", Operation: "A"})
	subscribe(t, h, "thermo", g, messaging.SubscribeRequest{Subject: "other.b", Operation: "B"})
	if err := h.Bind("thermo", capabilities.Grants{Subscribe: []string{"cmd.>"}}); err != nil {
		t.Fatal(err)
	}
	b.flush(t)
	_ = b.peer.Publish("other.b", nil)
	_ = b.peer.Publish("cmd.a", nil)
	if inv := a.next(t); inv.op != "A" {
		t.Fatalf("after narrowing: %s", inv.op)
	}
	a.none(t)
	recs := mustList(t, st)
	if len(recs) != 1 || recs[0].ID != keep {
		t.Fatalf("stored after narrowing: %+v, want only %s", recs, keep)
	}
}

func TestUnbind(t *testing.T) {
	b := startBus(t, 0)
	st := openStore(t, t.TempDir())
	defer st.Close()
	a := newActors()
	h := newHandler(t, b, st, a, messaging.Options{})
	g := capabilities.Grants{Subscribe: []string{"cmd.>"}, Subscriptions: []capabilities.Subscription{{Subject: "cmd.bound"}}}
	for _, actor := range []string{"thermo", "other"} {
		if err := h.Bind(actor, g); err != nil {
			t.Fatal(err)
		}
		subscribe(t, h, actor, g, messaging.SubscribeRequest{Subject: "cmd.runtime", Operation: "Run"})
	}
	h.Unbind("thermo")
	b.flush(t)
	if n := h.Stats().Subscriptions; n != 2 {
		t.Fatalf("%d subscriptions after Unbind, want the other actor's 2", n)
	}
	recs := mustList(t, st)
	if len(recs) != 1 || recs[0].Actor != "other" {
		t.Fatalf("stored after Unbind: %+v", recs)
	}
	_ = b.peer.Publish("cmd.bound", nil)
	_ = b.peer.Publish("cmd.runtime", nil)
	for range 2 {
		if inv := a.next(t); inv.actor != "other" {
			t.Fatalf("an unbound actor was invoked: %+v", inv)
		}
	}
	a.none(t)
	h.Unbind("never-bound") // harmless
}

func TestQueueOverflow(t *testing.T) {
	b := startBus(t, 0)
	a := newActors()
	release := make(chan struct{})
	a.respond = func(ctx context.Context, _ invocation) ([]byte, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	}
	const queue = 2
	h := newHandler(t, b, nil, a, messaging.Options{QueueLen: queue})
	if err := h.Bind("slow", capabilities.Grants{Subscribe: []string{"flood"}, Subscriptions: []capabilities.Subscription{{Subject: "flood"}}}); err != nil {
		t.Fatal(err)
	}
	b.flush(t)
	_ = b.peer.Publish("flood", []byte{0})
	a.next(t) // the actor is now busy with the first message
	const more = 10
	for i := range more {
		_ = b.peer.Publish("flood", []byte{byte(i + 1)})
	}
	_ = b.peer.Flush()
	eventually(t, "drops counted", func() bool { return h.Stats().Dropped == more-queue })
	close(release)
	// The queued messages follow, in order.
	for i := range queue {
		inv := a.next(t)
		m, err := wasmcloud.DecodeMessage(wasmcloud.EraWasmbus, inv.payload)
		if err != nil || !bytes.Equal(m.Body, []byte{byte(i + 1)}) {
			t.Fatalf("queued message %d: %+v, %v", i, m, err)
		}
	}
	eventually(t, "deliveries counted", func() bool { return h.Stats().Delivered == 1+queue })
	if s := h.Stats(); s.Dropped != more-queue || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestClose(t *testing.T) {
	b := startBus(t, 0)
	st := openStore(t, t.TempDir())
	defer st.Close()
	before := runtime.NumGoroutine()

	a := newActors()
	var once sync.Once
	busy := make(chan struct{})
	a.respond = func(ctx context.Context, _ invocation) ([]byte, error) {
		once.Do(func() { close(busy) })
		<-ctx.Done() // an invocation in progress is cancelled by Close
		return nil, ctx.Err()
	}
	h := messaging.New(messaging.Options{Conn: b.agent, Store: st, Invoke: a.invoke})
	g := capabilities.Grants{Subscribe: []string{"cmd.>"}, Subscriptions: []capabilities.Subscription{{Subject: "cmd.a"}, {Subject: "cmd.b", Queue: "q"}}}
	if err := h.Bind("thermo", g); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"cmd.c", "cmd.d.>"} {
		subscribe(t, h, "thermo", g, messaging.SubscribeRequest{Subject: s, Operation: "Op"})
	}
	b.flush(t)
	_ = b.peer.Publish("cmd.a", nil)
	select {
	case <-busy:
	case <-time.After(waitBound):
		t.Fatal("no delivery started")
	}
	closed := make(chan struct{})
	go func() { h.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(waitBound):
		t.Fatal("Close did not return")
	}
	for end := time.Now().Add(waitBound); runtime.NumGoroutine() > before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
	}
	// Closed: calls and binds fail, the stored subscriptions stay for the next start.
	_, err := call(h, t.Context(), "thermo", capabilities.Messaging, messaging.OpPublish, publishPayload(t, "cmd.x", "", nil), capabilities.Grants{Publish: []string{">"}})
	wantErr(t, err, capabilities.ErrUnavailable, "publish after Close")
	if err := h.Bind("thermo", g); !errors.Is(err, capabilities.ErrUnavailable) {
		t.Fatalf("Bind after Close: %v", err)
	}
	if n := len(mustList(t, st)); n != 2 {
		t.Fatalf("%d stored subscriptions after Close, want 2", n)
	}
	h.Close() // twice is fine
}

// Release (an actor whose start failed) ends its subscriptions but keeps
// the stored ones: the next Bind subscribes them again. Unbind forgets.
func TestReleaseKeepsStoredSubscriptions(t *testing.T) {
	b := startBus(t, 0)
	st := openStore(t, t.TempDir())
	defer st.Close()
	a := newActors()
	h := newHandler(t, b, st, a, messaging.Options{})
	g := capabilities.Grants{Subscribe: []string{"cmd.>"}}
	if err := h.Bind("thermo", g); err != nil {
		t.Fatal(err)
	}
	subscribe(t, h, "thermo", g, messaging.SubscribeRequest{Subject: "cmd.heat", Operation: "OnCmd"})
	h.Release("thermo")
	b.flush(t)
	if err := b.peer.Publish("cmd.heat", []byte("lost")); err != nil {
		t.Fatal(err)
	}
	b.flush(t)
	a.none(t)
	if err := h.Bind("thermo", g); err != nil {
		t.Fatal(err)
	}
	b.flush(t)
	if err := b.peer.Publish("cmd.heat", []byte("on")); err != nil {
		t.Fatal(err)
	}
	if inv := a.next(t); inv.op != "OnCmd" {
		t.Fatalf("after Release and Bind: %s", inv.op)
	}
	h.Unbind("thermo")
	if recs, _ := st.CapStateList(messaging.StateKind); len(recs) != 0 {
		t.Fatalf("stored after Unbind: %v", recs)
	}
}
