//go:build !wasip1

// Package conformance checks the SDK's contract wrappers against the host's
// own code: what the SDK sends, the host's decoders accept, and what the
// host's encoders answer, the SDK decodes. Only this test package imports
// host packages; the SDK itself never does (see sdk.TestImports).
package conformance

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trellis-edge/trellis/capabilities"
	hostgpio "github.com/trellis-edge/trellis/capabilities/gpio"
	"github.com/trellis-edge/trellis/capabilities/gpio/gpiosim"
	hostkv "github.com/trellis-edge/trellis/capabilities/kv"
	hostnumbergen "github.com/trellis-edge/trellis/capabilities/numbergen"
	hostsensor "github.com/trellis-edge/trellis/capabilities/sensor"
	"github.com/trellis-edge/trellis/capabilities/sensor/sensorsim"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
	"github.com/trellis-edge/trellis/sdk/gpio"
	"github.com/trellis-edge/trellis/sdk/httpserver"
	"github.com/trellis-edge/trellis/sdk/kv"
	"github.com/trellis-edge/trellis/sdk/messaging"
	"github.com/trellis-edge/trellis/sdk/numbergen"
	"github.com/trellis-edge/trellis/sdk/sdktest"
	"github.com/trellis-edge/trellis/sdk/sensor"
	"github.com/trellis-edge/trellis/store"
)

const actor = "guest"

// dispatch serves namespaces of h through a real dispatcher, as the agent
// does, for the actor named actor.
func dispatch(t *testing.T, h *sdktest.Host, d *capabilities.Dispatcher, namespaces ...string) {
	for _, ns := range namespaces {
		h.Serve(ns, func(op string, payload []byte) ([]byte, error) {
			return d.Dispatch(t.Context(), capabilities.Call{Actor: actor, Binding: "default", Contract: ns, Operation: op, Payload: payload})
		})
	}
}

func TestKV(t *testing.T) {
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d := capabilities.NewDispatcher(capabilities.DispatcherOptions{})
	d.Register(capabilities.KV, hostkv.Handler{Store: st})
	h := sdktest.New(t)
	dispatch(t, h, d, kv.Namespace)

	// No grant: denied.
	if err := kv.Set("a", []byte("1")); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("Set without a grant: %v", err)
	}
	if err := d.SetGrants(actor, capabilities.Grants{KV: true}); err != nil {
		t.Fatal(err)
	}

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(kv.Set("a", []byte("1")))
	must(kv.Set("b\x00bin", []byte{0xff, 0}))
	must(kv.Set("empty", nil))
	if v, ok, err := kv.Get("a"); err != nil || !ok || string(v) != "1" {
		t.Errorf("Get a = %q, %v, %v", v, ok, err)
	}
	if v, ok, err := kv.Get("b\x00bin"); err != nil || !ok || string(v) != "\xff\x00" {
		t.Errorf("Get of a binary key = %q, %v, %v", v, ok, err)
	}
	if v, ok, err := kv.Get("empty"); err != nil || !ok || v == nil || len(v) != 0 {
		t.Errorf("Get of an empty value = %#v, %v, %v", v, ok, err)
	}
	if v, ok, err := kv.Get("missing"); err != nil || ok || v != nil {
		t.Errorf("Get missing = %q, %v, %v", v, ok, err)
	}
	if n, err := kv.Increment("counter:x", 41); err != nil || n != 41 {
		t.Errorf("Increment = %d, %v", n, err)
	}
	if n, err := kv.Increment("counter:x", 1); err != nil || n != 42 {
		t.Errorf("Increment = %d, %v", n, err)
	}
	if v, _, err := kv.Get("counter:x"); err != nil || string(v) != "42" {
		t.Errorf("Get of a counter = %q, %v", v, err)
	}
	if _, err := kv.Increment("a", 1); err != nil {
		t.Errorf("Increment of a decimal value: %v", err)
	}
	if keys, err := kv.Keys("", "", 0); err != nil || strings.Join(keys, ",") != "a,b\x00bin,counter:x,empty" {
		t.Errorf("Keys = %q, %v", keys, err)
	}
	if keys, err := kv.Keys("", "a", 2); err != nil || strings.Join(keys, ",") != "b\x00bin,counter:x" {
		t.Errorf("Keys after a, limit 2 = %q, %v", keys, err)
	}
	if keys, err := kv.Keys("zz", "", 0); err != nil || len(keys) != 0 {
		t.Errorf("Keys of a prefix nothing has = %q, %v", keys, err)
	}
	// CompareAndSet: nil old (must not exist), empty old, a value.
	if ok, err := kv.CompareAndSet("new", nil, []byte("v")); err != nil || !ok {
		t.Errorf("CompareAndSet of a missing key = %v, %v", ok, err)
	}
	if ok, err := kv.CompareAndSet("new", nil, []byte("w")); err != nil || ok {
		t.Errorf("CompareAndSet nil old of an existing key = %v, %v", ok, err)
	}
	if ok, err := kv.CompareAndSet("empty", []byte{}, []byte("full")); err != nil || !ok {
		t.Errorf("CompareAndSet of an empty value = %v, %v", ok, err)
	}
	if ok, err := kv.CompareAndSet("new", []byte("v"), []byte("w")); err != nil || !ok {
		t.Errorf("CompareAndSet v→w = %v, %v", ok, err)
	}
	if existed, err := kv.Delete("new"); err != nil || !existed {
		t.Errorf("Delete = %v, %v", existed, err)
	}
	if existed, err := kv.Delete("new"); err != nil || existed {
		t.Errorf("Delete again = %v, %v", existed, err)
	}
	// The host's own errors come through with their text.
	if _, _, err := kv.Get(""); err == nil || !strings.Contains(err.Error(), "key is required") {
		t.Errorf("Get of an empty key: %v", err)
	}
}

func TestSensor(t *testing.T) {
	at := time.Unix(1700000000, 123)
	room, err := sensorsim.New("room", []sensorsim.Channel{
		{Kind: hostsensor.Temperature, Wave: sensorsim.Constant(19.25)},
		{Kind: hostsensor.Humidity, Wave: sensorsim.Constant(40)},
	}, sensorsim.Opts{Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	d := capabilities.NewDispatcher(capabilities.DispatcherOptions{})
	d.Register(capabilities.Sensor, hostsensor.NewHandler(map[string]hostsensor.Reader{"room": room}))
	if err := d.SetGrants(actor, capabilities.Grants{Sensors: []string{"room"}}); err != nil {
		t.Fatal(err)
	}
	h := sdktest.New(t)
	dispatch(t, h, d, sensor.Namespace)

	ms, err := sensor.Read("room")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("%d measurements: %+v", len(ms), ms)
	}
	temp, ok := sensor.Find(ms, sensor.Temperature)
	if !ok || temp.Value != 19.25 || temp.Unit != "°C" || temp.Sensor != "room" || !temp.Time.Equal(at) {
		t.Errorf("temperature %+v", temp)
	}
	if hum, ok := sensor.Find(ms, sensor.Humidity); !ok || hum.Value != 40 || hum.Unit != "%RH" {
		t.Errorf("humidity %+v", hum)
	}
	if _, err := sensor.Read("attic"); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Errorf("Read of a sensor not granted: %v", err)
	}
	room.Fail(errors.New("bus error"))
	if _, err := sensor.Read("room"); err == nil || !strings.Contains(err.Error(), "bus error") {
		t.Errorf("Read of a failing sensor: %v", err)
	}
}

func TestGPIO(t *testing.T) {
	sim, err := gpiosim.New([]string{"RELAY", "BUTTON", "FAN"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	type edge struct {
		op      string
		payload []byte
	}
	edges := make(chan edge, 16)
	gh := hostgpio.NewHandler(sim, func(ctx context.Context, a, op string, payload []byte) error {
		edges <- edge{op, payload}
		return nil
	})
	t.Cleanup(gh.Close)
	d := capabilities.NewDispatcher(capabilities.DispatcherOptions{})
	d.Register(capabilities.GPIO, gh)
	err = d.SetGrants(actor, capabilities.Grants{GPIO: []capabilities.GPIOGrant{
		{Line: "RELAY", Direction: capabilities.DirOut},
		{Line: "BUTTON", Direction: capabilities.DirIn},
		{Line: "FAN", Direction: capabilities.DirPWM},
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := sdktest.New(t)
	dispatch(t, h, d, gpio.Namespace)

	for _, level := range []bool{true, false, true} {
		if err := gpio.Write("RELAY", level); err != nil {
			t.Fatalf("Write %v: %v", level, err)
		}
		if got, err := gpio.Read("RELAY"); err != nil || got != level {
			t.Errorf("Read back after Write %v = %v, %v", level, got, err)
		}
		if got, err := sim.Get("RELAY"); err != nil || bool(got) != level {
			t.Errorf("simulated line after Write %v = %v, %v", level, got, err)
		}
	}
	if err := gpio.Write("BUTTON", true); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Errorf("Write of an input line: %v", err)
	}
	if err := gpio.PWM("FAN", 0.25, 1000); err != nil {
		t.Errorf("PWM: %v", err)
	}
	if err := gpio.PWM("FAN", 2, 1000); err == nil || !strings.Contains(err.Error(), "duty") {
		t.Errorf("PWM of duty 2: %v", err)
	}

	var seen []gpio.Event
	gpio.HandleEdges("Button", func(e gpio.Event) error { seen = append(seen, e); return nil })
	if err := gpio.Watch("BUTTON", gpio.Rising, "Button"); err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if err := sim.Set("BUTTON", hostgpio.High); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-edges:
		if e.op != "Button" {
			t.Errorf("edge invoked %q", e.op)
		}
		if _, err := h.Invoke(e.op, e.payload); err != nil {
			t.Fatalf("the host's edge event does not decode: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no edge within 10 s")
	}
	if len(seen) != 1 || seen[0].Line != "BUTTON" || !seen[0].Level || seen[0].Time.IsZero() {
		t.Errorf("handler saw %+v", seen)
	}
}

func TestNumbergen(t *testing.T) {
	d := capabilities.NewDispatcher(capabilities.DispatcherOptions{})
	d.Register(capabilities.Numbergen, hostnumbergen.Handler{})
	h := sdktest.New(t)
	dispatch(t, h, d, numbergen.Namespace)

	if g, err := numbergen.GenerateGuid(); err != nil || len(g) != 36 || g[14] != '4' {
		t.Errorf("GenerateGuid = %q, %v", g, err)
	}
	if _, err := numbergen.Random32(); err != nil {
		t.Errorf("Random32: %v", err)
	}
	for range 50 {
		if n, err := numbergen.RandomInRange(1, 6); err != nil || n < 1 || n > 6 {
			t.Fatalf("RandomInRange(1, 6) = %d, %v", n, err)
		}
	}
	if n, err := numbergen.RandomInRange(7, 7); err != nil || n != 7 {
		t.Errorf("RandomInRange(7, 7) = %d, %v", n, err)
	}
	if _, err := numbergen.RandomInRange(6, 1); err == nil || !strings.Contains(err.Error(), "min 6 is over max 1") {
		t.Errorf("RandomInRange(6, 1): %v", err)
	}
}

// The messaging shapes are wasmCloud's wasmbus shapes: the host decodes
// them with capabilities/wasmcloud.
func TestMessagingShapes(t *testing.T) {
	h := sdktest.New(t)
	var payloads = map[string][]byte{}
	h.Serve(messaging.Namespace, func(op string, p []byte) ([]byte, error) {
		payloads[op] = p
		if op == "Request" {
			return wasmcloud.EncodeMessage(wasmcloud.EraWasmbus, wasmcloud.Message{Subject: "_INBOX.1", Body: []byte("re")})
		}
		return nil, nil
	})
	if err := messaging.PublishMessage(messaging.Message{Subject: "a.b", ReplyTo: "r.s", Body: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	m, err := wasmcloud.DecodeMessage(wasmcloud.EraWasmbus, payloads["Publish"])
	if err != nil || m.Subject != "a.b" || m.ReplyTo != "r.s" || string(m.Body) != "hi" {
		t.Errorf("host decodes Publish as %+v, %v", m, err)
	}
	if err := messaging.Publish("a.b", nil); err != nil {
		t.Fatal(err)
	}
	if m, err := wasmcloud.DecodeMessage(wasmcloud.EraWasmbus, payloads["Publish"]); err != nil || m.ReplyTo != "" || len(m.Body) != 0 {
		t.Errorf("host decodes Publish without a body as %+v, %v", m, err)
	}
	reply, err := messaging.Request("a.b", []byte("q"), 250*time.Millisecond)
	if err != nil || reply.Subject != "_INBOX.1" || string(reply.Body) != "re" {
		t.Errorf("Request = %+v, %v", reply, err)
	}
	r, err := wasmcloud.DecodeRequestMessage(wasmcloud.EraWasmbus, payloads["Request"])
	if err != nil || r.Subject != "a.b" || string(r.Body) != "q" || r.TimeoutMs != 250 {
		t.Errorf("host decodes Request as %+v, %v", r, err)
	}

	// What the host delivers, in both formats a subscription may have.
	for _, era := range []wasmcloud.Era{wasmcloud.EraWasmbus, wasmcloud.Era018} {
		for _, in := range []wasmcloud.Message{{Subject: "s", ReplyTo: "r", Body: []byte("b")}, {Subject: "s"}} {
			b, err := wasmcloud.EncodeMessage(era, in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := messaging.DecodeMessage(b)
			if err != nil || got.Subject != in.Subject || got.ReplyTo != in.ReplyTo || string(got.Body) != string(in.Body) {
				t.Errorf("%v message %+v decodes as %+v, %v", era, in, got, err)
			}
		}
	}
}

// The HTTP shapes are wasmCloud's HttpServer shapes.
func TestHTTPShapes(t *testing.T) {
	in := wasmcloud.HTTPRequest{Method: "PUT", Path: "/thermostat/setpoint", QueryString: "x=1",
		Header: map[string][]string{"Content-Type": {"application/json"}, "Accept": {"a", "b"}}, Body: []byte(`{"setpoint":21.5}`)}
	for _, era := range []wasmcloud.Era{wasmcloud.EraWasmbus, wasmcloud.Era018} {
		b, err := wasmcloud.EncodeHTTPRequest(era, in)
		if err != nil {
			t.Fatal(err)
		}
		r, err := httpserver.DecodeRequest(b)
		if err != nil || r.Method != in.Method || r.Path != in.Path || r.QueryString != in.QueryString || string(r.Body) != string(in.Body) ||
			r.Header.Get("content-type") != "application/json" {
			t.Errorf("%v request decodes as %+v, %v", era, r, err)
		}
	}
	for _, resp := range []httpserver.Response{
		httpserver.JSON(200, map[string]int{"counter": 1}),
		httpserver.Error(404, "no"),
		{StatusCode: 204},
		{},
	} {
		got, err := wasmcloud.DecodeHTTPResponse(wasmcloud.EraWasmbus, httpserver.EncodeResponse(resp))
		want := resp.StatusCode
		if want == 0 {
			want = 200
		}
		if err != nil || int(got.StatusCode) != want || string(got.Body) != string(resp.Body) ||
			strings.Join(got.Header["Content-Type"], ",") != strings.Join(resp.Header["Content-Type"], ",") {
			t.Errorf("host decodes %+v as %+v, %v", resp, got, err)
		}
	}
}
