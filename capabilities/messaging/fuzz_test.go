package messaging_test

import (
	"context"
	"testing"
	"time"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/messaging"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
)

// FuzzHandle feeds arbitrary operations and payloads to every namespace the
// package serves: nothing may panic, and every call returns.
func FuzzHandle(f *testing.F) {
	b := startBus(f, 0)
	a := newActors()
	h := newHandler(f, b, nil, a, messaging.Options{MaxSubscriptions: 8, QueueLen: 4})
	tm := messaging.NewTelemetry(b.agent, "default", "host1")
	g := capabilities.Grants{Publish: []string{"fuzz.>"}, Subscribe: []string{"fuzz.>"}, Telemetry: []string{"fuzz.>"}}
	namespaces := []string{capabilities.Messaging, wasmcloud.Messaging, wasmcloud.WaSCCMessaging, capabilities.Telemetry}
	stop := make(chan struct{})
	f.Cleanup(func() { close(stop) })
	go func() { // the actor consumes deliveries; the invocations are not checked here
		for {
			select {
			case <-a.got:
			case <-stop:
				return
			}
		}
	}()

	seed := func(ns int, op string, payload []byte, err error) {
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(ns), op, payload)
	}
	msg := wasmcloud.Message{Subject: "fuzz.x", ReplyTo: "fuzz.r", Body: []byte("b")}
	req := wasmcloud.RequestMessage{Subject: "fuzz.x", Body: []byte("b"), TimeoutMs: 10}
	p, err := wasmcloud.EncodeMessage(wasmcloud.EraWasmbus, msg)
	seed(0, messaging.OpPublish, p, err)
	seed(1, wasmcloud.OpPublish, p, err)
	p, err = wasmcloud.EncodeRequestMessage(wasmcloud.EraWasmbus, req)
	seed(0, messaging.OpRequest, p, err)
	seed(1, wasmcloud.OpRequest, p, err)
	p, err = wasmcloud.EncodeMessage(wasmcloud.Era018, msg)
	seed(1, wasmcloud.OpLegacyPublish, p, err)
	seed(2, wasmcloud.OpLegacyPublish, p, err)
	p, err = wasmcloud.EncodeRequestMessage(wasmcloud.Era018, req)
	seed(1, wasmcloud.OpLegacyRequest, p, err)
	seed(2, wasmcloud.OpLegacyRequest, p, err)
	seed(0, messaging.OpSubscribe, mustMsgpack(f, messaging.SubscribeRequest{Subject: "fuzz.*", Operation: "Op", Queue: "q"}), nil)
	seed(0, messaging.OpUnsubscribe, mustMsgpack(f, messaging.UnsubscribeRequest{ID: "x"}), nil)
	seed(3, messaging.OpPublish, mustMsgpack(f, messaging.TelemetryRequest{Topic: "fuzz.t", Body: []byte("1")}), nil)
	seed(0, "Explode", []byte{0xc1}, nil)
	seed(3, messaging.OpPublish, []byte{0x81, 0xa5, 't', 'o', 'p', 'i', 'c', 0xdb, 0xff, 0xff, 0xff, 0xff}, nil)

	f.Fuzz(func(t *testing.T, ns uint8, op string, payload []byte) {
		contract := namespaces[int(ns)%len(namespaces)]
		var hd capabilities.Handler = h
		if contract == capabilities.Telemetry {
			hd = tm
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, _ = hd.Handle(ctx, capabilities.Call{Actor: "fuzzer", Contract: contract, Operation: op, Payload: payload, Grants: g})
	})
}
