//go:build !wasip1

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	vm "github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/capabilities"
	hostgpio "github.com/trellis-edge/trellis/capabilities/gpio"
	"github.com/trellis-edge/trellis/capabilities/gpio/gpiosim"
	hostkv "github.com/trellis-edge/trellis/capabilities/kv"
	hostsensor "github.com/trellis-edge/trellis/capabilities/sensor"
	"github.com/trellis-edge/trellis/capabilities/sensor/sensorsim"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
	"github.com/trellis-edge/trellis/sdk/httpserver"
	"github.com/trellis-edge/trellis/sdk/kv"
	"github.com/trellis-edge/trellis/sdk/sdktest"
	"github.com/trellis-edge/trellis/store"
)

func TestDecide(t *testing.T) {
	tests := []struct {
		temp, setpoint, hyst float64
		on, want             bool
	}{
		{18, 20, 0.5, false, true},    // cold: on
		{18, 20, 0.5, true, true},     // still cold: stays on
		{19.5, 20, 0.5, false, false}, // at the lower edge: as it is
		{19.5, 20, 0.5, true, true},
		{19.49, 20, 0.5, false, true},
		{20, 20, 0.5, false, false}, // inside the band: as it is
		{20, 20, 0.5, true, true},
		{20.5, 20, 0.5, true, true}, // at the upper edge: as it is
		{20.51, 20, 0.5, true, false},
		{25, 20, 0.5, false, false},
		{20, 20, 0, true, true}, // no hysteresis: exactly at the setpoint, as it is
		{19.99, 20, 0, false, true},
		{20.01, 20, 0, true, false},
	}
	for _, tt := range tests {
		if got := decide(tt.temp, tt.setpoint, tt.hyst, tt.on); got != tt.want {
			t.Errorf("decide(%v, %v, %v, %v) = %v, want %v", tt.temp, tt.setpoint, tt.hyst, tt.on, got, tt.want)
		}
	}
}

func TestParseSetpoint(t *testing.T) {
	tests := []struct {
		body    string
		want    float64
		wantErr string
	}{
		{body: "21.5", want: 21.5},
		{body: " 23\n", want: 23},
		{body: "5", want: 5},
		{body: "35", want: 35},
		{body: `{"setpoint":21.5}`, want: 21.5},
		{body: ` {"setpoint": 22, "by": "me"} `, want: 22},
		{body: "4.99", wantErr: "setpoint 4.99 °C is out of range: want 5 to 35 °C"},
		{body: "35.5", wantErr: "setpoint 35.5 °C is out of range: want 5 to 35 °C"},
		{body: `{"setpoint":-3}`, wantErr: "setpoint -3 °C is out of range: want 5 to 35 °C"},
		{body: "", wantErr: `setpoint "": want a number of °C from 5 to 35, as 21.5 or {"setpoint":21.5}`},
		{body: "warm", wantErr: `setpoint "warm": want a number of °C from 5 to 35`},
		{body: "21,5", wantErr: `setpoint "21,5": want a number`},
		{body: "NaN", wantErr: `setpoint "NaN": want a number`},
		{body: "+Inf", wantErr: `setpoint "+Inf": want a number`},
		{body: "1e400", wantErr: `setpoint "1e400": want a number`},
		{body: `{"setpoint":"21.5"}`, wantErr: `setpoint "{\"setpoint\":\"21.5\"}": want a number`},
		{body: `{"setpoint":null}`, wantErr: "want a number"},
		{body: `{}`, wantErr: "want a number"},
		{body: `{"setpoint":21.5`, wantErr: "want a number"},
		{body: strings.Repeat("9", 100), wantErr: "setpoint 1e+100 °C is out of range"},
		{body: strings.Repeat("x", 100), wantErr: `setpoint "` + strings.Repeat("x", 40) + `"...: want a number`},
	}
	for _, tt := range tests {
		got, err := parseSetpoint([]byte(tt.body))
		if tt.wantErr != "" {
			var se *SetpointError
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &se) {
				t.Errorf("parseSetpoint(%.20q) = %v, %v; want a *SetpointError containing %q", tt.body, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseSetpoint(%q) = %v, %v; want %v", tt.body, got, err, tt.want)
		}
	}
}

// device is the thermostat's world: the real host handlers for kv, sensor
// and gpio, over a real store, a simulated sensor and a simulated line,
// behind the dispatcher with the grants of the README; telemetry is
// recorded.
type device struct {
	h         *sdktest.Host
	room      *sensorsim.Sensor
	lines     *gpiosim.Provider
	telemetry []telemetryMessage
}

type telemetryMessage struct {
	Topic string `msgpack:"topic"`
	Body  []byte `msgpack:"body"`
}

var readmeGrants = capabilities.Grants{
	Sensors:       []string{"room"},
	GPIO:          []capabilities.GPIOGrant{{Line: "RELAY", Direction: capabilities.DirOut}},
	KV:            true,
	Subscribe:     []string{"thermostat.setpoint"},
	Subscriptions: []capabilities.Subscription{{Subject: "thermostat.setpoint", Operation: OpSetSetpoint}},
	Telemetry:     []string{"temperature"},
	HTTP:          []capabilities.HTTPGrant{{Listen: "127.0.0.1:8081", PathPrefix: "/thermostat/"}},
	Schedule:      []capabilities.ScheduleEntry{{Name: "tick", Every: capabilities.Duration(5 * time.Second), Operation: OpTick}},
}

func newDevice(t *testing.T, g capabilities.Grants) *device {
	t.Helper()
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	room, err := sensorsim.New("room", []sensorsim.Channel{
		{Kind: hostsensor.Humidity, Wave: sensorsim.Constant(45)},
		{Kind: hostsensor.Temperature, Wave: sensorsim.Constant(20)},
	}, sensorsim.Opts{})
	if err != nil {
		t.Fatal(err)
	}
	lines, err := gpiosim.New([]string{"RELAY", "OTHER"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lines.Close() })
	gh := hostgpio.NewHandler(lines, func(context.Context, string, string, []byte) error { return nil })
	t.Cleanup(gh.Close)

	d := capabilities.NewDispatcher(capabilities.DispatcherOptions{})
	d.Register(capabilities.KV, hostkv.Handler{Store: st})
	d.Register(capabilities.Sensor, hostsensor.NewHandler(map[string]hostsensor.Reader{"room": room}))
	d.Register(capabilities.GPIO, gh)
	if err := d.SetGrants("thermostat", g); err != nil {
		t.Fatal(err)
	}
	dev := &device{h: sdktest.New(t), room: room, lines: lines}
	for _, ns := range []string{capabilities.KV, capabilities.Sensor, capabilities.GPIO} {
		dev.h.Serve(ns, func(op string, payload []byte) ([]byte, error) {
			return d.Dispatch(t.Context(), capabilities.Call{Actor: "thermostat", Binding: "default", Contract: ns, Operation: op, Payload: payload})
		})
	}
	dev.h.Serve(capabilities.Telemetry, func(op string, payload []byte) ([]byte, error) {
		if !slices.Contains(g.Telemetry, "temperature") {
			return nil, errors.New("denied: actor thermostat has no grant for trellis:telemetry")
		}
		var m telemetryMessage
		dec := vm.NewDecoder(bytes.NewReader(payload))
		dec.DisallowUnknownFields(true)
		if err := dec.Decode(&m); op != "Publish" || err != nil {
			t.Errorf("telemetry %s %x: %v", op, payload, err)
		}
		dev.telemetry = append(dev.telemetry, m)
		return nil, nil
	})
	return dev
}

// tick invokes Tick as a schedule does.
func (d *device) tick(t *testing.T) error {
	t.Helper()
	payload, err := vm.Marshal(map[string]any{"name": "tick", "time": time.Now().UnixNano(), "payload": nil})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.h.Invoke(OpTick, payload)
	return err
}

func (d *device) relay(t *testing.T) bool {
	t.Helper()
	l, err := d.lines.Get("RELAY")
	if err != nil {
		t.Fatal(err)
	}
	return bool(l)
}

func (d *device) kv(t *testing.T, key string) string {
	t.Helper()
	v, ok, err := kv.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return "<missing>"
	}
	return string(v)
}

// message delivers a message on the setpoint subject as the messaging host
// does, and returns what the actor answers.
func (d *device) message(t *testing.T, replyTo, body string) ([]byte, error) {
	t.Helper()
	payload, err := wasmcloud.EncodeMessage(wasmcloud.EraWasmbus, wasmcloud.Message{Subject: "thermostat.setpoint", ReplyTo: replyTo, Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	return d.h.Invoke(OpSetSetpoint, payload)
}

// request makes an HTTP request as the HTTP host does.
func (d *device) request(t *testing.T, method, path, body string) (int, string, wasmcloud.HTTPResponse) {
	t.Helper()
	req, err := wasmcloud.EncodeHTTPRequest(wasmcloud.EraWasmbus, wasmcloud.HTTPRequest{Method: method, Path: path, Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.h.Invoke(httpserver.DefaultOperation, req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp, err := wasmcloud.DecodeHTTPResponse(wasmcloud.EraWasmbus, b)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if ct := strings.Join(resp.Header["Content-Type"], ","); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return int(resp.StatusCode), string(resp.Body), resp
}

func TestTick(t *testing.T) {
	d := newDevice(t, readmeGrants)
	steps := []struct {
		name      string
		temp      float64
		setup     func(t *testing.T)
		wantRelay bool
	}{
		{name: "inside the band, relay starts off", temp: 19.6, wantRelay: false},
		{name: "cold: on", temp: 19.4, wantRelay: true},
		{name: "inside the band: stays on", temp: 20.4, wantRelay: true},
		{name: "at the upper edge: stays on", temp: 20.5, wantRelay: true},
		{name: "warm: off", temp: 20.6, wantRelay: false},
		{name: "inside the band: stays off", temp: 19.5, wantRelay: false},
		{name: "setpoint raised to 23 over messaging: on", temp: 21, wantRelay: true, setup: func(t *testing.T) {
			if resp, err := d.message(t, "", "23"); err != nil || string(resp) != `{"setpoint":23}` {
				t.Fatalf("SetSetpoint 23: %q, %v", resp, err)
			}
		}},
		{name: "wider hysteresis: stays on", temp: 24.5, wantRelay: true, setup: func(t *testing.T) {
			if err := kv.Set("hysteresis", []byte("2")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "above the wider band: off", temp: 25.1, wantRelay: false},
	}
	for i, s := range steps {
		if s.setup != nil {
			s.setup(t)
		}
		if err := d.room.Set(hostsensor.Temperature, s.temp); err != nil {
			t.Fatal(err)
		}
		if err := d.tick(t); err != nil {
			t.Fatalf("step %q: Tick: %v", s.name, err)
		}
		if got := d.relay(t); got != s.wantRelay {
			t.Errorf("step %q: relay %v, want %v", s.name, got, s.wantRelay)
		}
		if got, want := d.kv(t, "relay"), strconv.FormatBool(s.wantRelay); got != want {
			t.Errorf("step %q: kv relay %q, want %q", s.name, got, want)
		}
		if got, want := d.kv(t, "temperature"), strconv.FormatFloat(s.temp, 'f', -1, 64); got != want {
			t.Errorf("step %q: kv temperature %q, want %q", s.name, got, want)
		}
		if len(d.telemetry) != i+1 {
			t.Fatalf("step %q: %d telemetry messages, want %d", s.name, len(d.telemetry), i+1)
		}
		tm := d.telemetry[i]
		var body struct {
			Temperature *float64 `json:"temperature"`
			Setpoint    *float64 `json:"setpoint"`
			Relay       *bool    `json:"relay"`
		}
		if err := json.Unmarshal(tm.Body, &body); err != nil || tm.Topic != "temperature" ||
			body.Temperature == nil || *body.Temperature != s.temp || body.Setpoint == nil || body.Relay == nil || *body.Relay != s.wantRelay {
			t.Errorf("step %q: telemetry %s %s (%v)", s.name, tm.Topic, tm.Body, err)
		}
	}
	if last := string(d.telemetry[len(d.telemetry)-1].Body); last != `{"temperature":25.1,"setpoint":23,"relay":false}` {
		t.Errorf("last telemetry %s", last)
	}
	// The relay is written only when it changes: 4 changes in these steps.
	var writes int
	for _, c := range d.h.CallsTo(capabilities.GPIO) {
		if c.Operation == "Write" {
			writes++
		}
	}
	if writes != 4 {
		t.Errorf("%d relay writes, want 4", writes)
	}
}

func TestTickErrors(t *testing.T) {
	t.Run("sensor unavailable", func(t *testing.T) {
		d := newDevice(t, readmeGrants)
		d.room.Set(hostsensor.Temperature, 10)
		if err := d.tick(t); err != nil || !d.relay(t) {
			t.Fatalf("first tick: %v, relay %v", err, d.relay(t))
		}
		d.room.Fail(errors.New("i2c: no ack"))
		err := d.tick(t)
		if err == nil || !strings.Contains(err.Error(), "thermostat: reading sensor room") || !strings.Contains(err.Error(), "i2c: no ack") {
			t.Errorf("tick with a failing sensor: %v", err)
		}
		if !d.relay(t) || len(d.telemetry) != 1 {
			t.Errorf("a failed tick changed the relay (%v) or reported (%d messages)", d.relay(t), len(d.telemetry))
		}
	})
	t.Run("no sensor grant", func(t *testing.T) {
		g := readmeGrants
		g.Sensors = []string{"other"}
		d := newDevice(t, g)
		if err := d.tick(t); err == nil || !strings.Contains(err.Error(), "denied") {
			t.Errorf("tick without the sensor grant: %v", err)
		}
	})
	t.Run("no telemetry grant", func(t *testing.T) {
		g := readmeGrants
		g.Telemetry = nil
		d := newDevice(t, g)
		d.room.Set(hostsensor.Temperature, 10)
		if err := d.tick(t); err == nil || !strings.Contains(err.Error(), "publishing telemetry") || !strings.Contains(err.Error(), "denied") {
			t.Errorf("tick without the telemetry grant: %v", err)
		}
	})
	t.Run("garbage setpoint in the store", func(t *testing.T) {
		d := newDevice(t, readmeGrants)
		if err := kv.Set("setpoint", []byte("hot")); err != nil {
			t.Fatal(err)
		}
		if err := d.tick(t); err == nil || !strings.Contains(err.Error(), `stored setpoint "hot": want a number from 5 to 35`) {
			t.Errorf("tick with a garbage setpoint: %v", err)
		}
	})
	t.Run("negative hysteresis in the store", func(t *testing.T) {
		d := newDevice(t, readmeGrants)
		if err := kv.Set("hysteresis", []byte("-1")); err != nil {
			t.Fatal(err)
		}
		if err := d.tick(t); err == nil || !strings.Contains(err.Error(), `stored hysteresis "-1": want a number from 0 to 10`) {
			t.Errorf("tick with a negative hysteresis: %v", err)
		}
	})
	t.Run("no temperature", func(t *testing.T) {
		d := newDevice(t, readmeGrants)
		d.room.Set(hostsensor.Temperature, math.NaN())
		if err := d.tick(t); err == nil || !strings.Contains(err.Error(), "NaN") {
			t.Errorf("tick with a NaN temperature: %v", err)
		}
	})
}

func TestSetSetpointMessage(t *testing.T) {
	d := newDevice(t, readmeGrants)
	tests := []struct {
		name, replyTo, body string
		resp, wantErr       string
		stored              string
	}{
		{name: "text", body: "21.5", resp: `{"setpoint":21.5}`, stored: "21.5"},
		{name: "json, with a reply subject", replyTo: "_INBOX.x", body: `{"setpoint":22}`, resp: `{"setpoint":22}`, stored: "22"},
		{name: "out of range, with a reply subject", replyTo: "_INBOX.x", body: "40",
			resp: `{"error":"setpoint 40 °C is out of range: want 5 to 35 °C"}`, stored: "22"},
		{name: "out of range, no reply subject", body: "40", wantErr: "setpoint 40 °C is out of range: want 5 to 35 °C", stored: "22"},
		{name: "not a number", body: "warm", wantErr: `setpoint "warm": want a number`, stored: "22"},
	}
	for _, tt := range tests {
		resp, err := d.message(t, tt.replyTo, tt.body)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: %q, %v; want error %q", tt.name, resp, err, tt.wantErr)
			}
		} else if err != nil || string(resp) != tt.resp {
			t.Errorf("%s: %q, %v; want %s", tt.name, resp, err, tt.resp)
		}
		if got := d.kv(t, "setpoint"); got != tt.stored {
			t.Errorf("%s: stored setpoint %q, want %q", tt.name, got, tt.stored)
		}
	}
}

func TestHTTP(t *testing.T) {
	d := newDevice(t, readmeGrants)
	check := func(method, path, body string, status int, want string) {
		t.Helper()
		gotStatus, got, _ := d.request(t, method, path, body)
		if gotStatus != status || (status == 200 && got != want) || (status != 200 && !strings.Contains(got, want)) {
			t.Errorf("%s %s %q: %d %s; want %d %s", method, path, body, gotStatus, got, status, want)
		}
	}
	check("GET", "/thermostat/", "", 200, `{"temperature":null,"setpoint":20,"relay":false}`)
	d.room.Set(hostsensor.Temperature, 18.25)
	if err := d.tick(t); err != nil {
		t.Fatal(err)
	}
	check("GET", "/thermostat/", "", 200, `{"temperature":18.25,"setpoint":20,"relay":true}`)
	check("PUT", "/thermostat/setpoint", "23", 200, `{"setpoint":23}`)
	check("POST", "/thermostat/setpoint", `{"setpoint":17.5}`, 200, `{"setpoint":17.5}`)
	check("GET", "/thermostat/setpoint", "", 200, `{"setpoint":17.5}`)
	check("GET", "/thermostat/", "", 200, `{"temperature":18.25,"setpoint":17.5,"relay":true}`)
	check("PUT", "/thermostat/setpoint", "99", 400, `{"error":"setpoint 99 °C is out of range: want 5 to 35 °C"}`)
	check("PUT", "/thermostat/setpoint", `{"setpoint":"x"}`, 400, `want a number of °C from 5 to 35`)
	check("GET", "/thermostat/setpoint", "", 200, `{"setpoint":17.5}`)
	check("DELETE", "/thermostat/setpoint", "", 405, "use GET, PUT, POST")
	check("POST", "/thermostat/", "", 405, "use GET")
	check("GET", "/thermostat/nope", "", 404, `no such path: \"/thermostat/nope\"`)
	_, _, resp := d.request(t, "DELETE", "/thermostat/setpoint", "")
	if allow := strings.Join(resp.Header["Allow"], ","); allow != "GET, PUT, POST" {
		t.Errorf("Allow %q", allow)
	}
	// The next tick uses the new setpoint: 18.25 is above 17.5 + 0.5.
	if err := d.tick(t); err != nil || d.relay(t) {
		t.Errorf("tick after the setpoint fell: %v, relay %v", err, d.relay(t))
	}
}

func TestHTTPWithoutKV(t *testing.T) {
	g := readmeGrants
	g.KV = false
	d := newDevice(t, g)
	status, body, _ := d.request(t, "GET", "/thermostat/", "")
	if status != 500 || !strings.Contains(body, "denied") {
		t.Errorf("GET without kv: %d %s", status, body)
	}
	status, body, _ = d.request(t, "PUT", "/thermostat/setpoint", "21")
	if status != 500 || !strings.Contains(body, "denied") {
		t.Errorf("PUT without kv: %d %s", status, body)
	}
}

func FuzzParseSetpoint(f *testing.F) {
	for _, s := range []string{"21.5", `{"setpoint":21.5}`, "", "NaN", "1e400", `{"setpoint":null}`, " 5 "} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseSetpoint(b)
		if err == nil && !(v >= MinSetpoint && v <= MaxSetpoint) {
			t.Fatalf("parseSetpoint(%q) = %v, out of range", b, v)
		}
		if err != nil && len(err.Error()) > 300 { // a quoted 40-byte prefix of escapes and the help text
			t.Fatalf("error of %d bytes", len(err.Error()))
		}
	})
}
