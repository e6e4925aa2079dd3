// Command thermostat is a Trellis actor that keeps a room at a setpoint: on
// every tick it reads the room's temperature, switches a heating relay on
// below the setpoint and off above it (with hysteresis), remembers what it
// did in its key-value bucket and reports it as telemetry. The setpoint is
// set over NATS or HTTP. See README.md for the grants and how to try it.
//
// Operations:
//
//	Tick                     a schedule's tick: read, decide, switch, report
//	SetSetpoint              a message whose body is "21.5" or {"setpoint":21.5}
//	HttpServer.HandleRequest GET /thermostat/, GET|PUT|POST /thermostat/setpoint
//
// The control logic is in small pure functions (decide, parseSetpoint),
// tested natively; the SDK stands in for the host in native builds.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/trellis-edge/trellis/sdk"
	"github.com/trellis-edge/trellis/sdk/gpio"
	"github.com/trellis-edge/trellis/sdk/httpserver"
	"github.com/trellis-edge/trellis/sdk/kv"
	"github.com/trellis-edge/trellis/sdk/messaging"
	"github.com/trellis-edge/trellis/sdk/sensor"
	"github.com/trellis-edge/trellis/sdk/telemetry"
	"github.com/trellis-edge/trellis/sdk/timer"
)

// What the thermostat uses on the device, as its grants name them.
const (
	SensorName     = "room"        // trellis:sensor; must measure temperature
	RelayLine      = "RELAY"       // trellis:gpio output: high turns the heating on
	TelemetryTopic = "temperature" // trellis:telemetry
)

// Operation names.
const (
	OpTick        = "Tick"
	OpSetSetpoint = "SetSetpoint"
)

// Setpoint and hysteresis, in °C.
const (
	DefaultSetpoint   = 20.0
	DefaultHysteresis = 0.5
	MinSetpoint       = 5.0
	MaxSetpoint       = 35.0
	MaxHysteresis     = 10.0
)

// Keys of the actor's bucket. Numbers are decimal text, the relay "true"
// or "false".
const (
	keySetpoint    = "setpoint"
	keyHysteresis  = "hysteresis"
	keyRelay       = "relay"
	keyTemperature = "temperature"
)

// The handlers are registered in init: the host's _initialize runs package
// initialisation, but main.main never runs in a c-shared (reactor) module.
func init() {
	timer.HandleTicks(OpTick, func(timer.Tick) error {
		_, err := tick()
		return err
	})
	messaging.HandleMessage(OpSetSetpoint, setSetpointMessage)
	httpserver.Handle(httpserver.DefaultOperation, serve)
}

// main is required by package main and never called.
func main() {}

// decide returns whether the relay should be on: on below the band
// [setpoint - hysteresis, setpoint + hysteresis], off above it, and as it is
// (relayOn) inside it, so that the relay does not chatter around the
// setpoint.
func decide(temp, setpoint, hysteresis float64, relayOn bool) bool {
	switch {
	case temp < setpoint-hysteresis:
		return true
	case temp > setpoint+hysteresis:
		return false
	}
	return relayOn
}

// State is what the thermostat reports: over HTTP and as telemetry.
type State struct {
	// Temperature is the last temperature read, in °C; nil before the
	// first tick.
	Temperature *float64 `json:"temperature"`
	Setpoint    float64  `json:"setpoint"`
	Relay       bool     `json:"relay"`
}

// tick reads the room, switches the relay and reports. An error (the
// sensor unavailable, a capability denied) is returned for the host to log;
// the relay is then left as it was.
func tick() (State, error) {
	ms, err := sensor.Read(SensorName)
	if err != nil {
		return State{}, fmt.Errorf("thermostat: reading sensor %s: %w", SensorName, err)
	}
	m, ok := sensor.Find(ms, sensor.Temperature)
	if !ok {
		return State{}, fmt.Errorf("thermostat: sensor %s measures no temperature", SensorName)
	}
	temp := m.Value
	if math.IsNaN(temp) || math.IsInf(temp, 0) {
		return State{}, fmt.Errorf("thermostat: sensor %s read %v °C", SensorName, temp)
	}
	setpoint, err := storedFloat(keySetpoint, DefaultSetpoint, MinSetpoint, MaxSetpoint)
	if err != nil {
		return State{}, err
	}
	hysteresis, err := storedFloat(keyHysteresis, DefaultHysteresis, 0, MaxHysteresis)
	if err != nil {
		return State{}, err
	}
	on, err := gpio.Read(RelayLine)
	if err != nil {
		return State{}, fmt.Errorf("thermostat: reading relay %s: %w", RelayLine, err)
	}
	want := decide(temp, setpoint, hysteresis, on)
	if want != on {
		if err := gpio.Write(RelayLine, want); err != nil {
			return State{}, fmt.Errorf("thermostat: switching relay %s: %w", RelayLine, err)
		}
		sdk.Info(fmt.Sprintf("thermostat: %.2f °C, setpoint %.2f ± %.2f °C: relay %s", temp, setpoint, hysteresis, onOff(want)))
	}
	if err := kv.Set(keyRelay, strconv.AppendBool(nil, want)); err != nil {
		return State{}, fmt.Errorf("thermostat: storing the relay state: %w", err)
	}
	if err := kv.Set(keyTemperature, strconv.AppendFloat(nil, temp, 'f', -1, 64)); err != nil {
		return State{}, fmt.Errorf("thermostat: storing the temperature: %w", err)
	}
	st := State{Temperature: &temp, Setpoint: setpoint, Relay: want}
	body, err := json.Marshal(st)
	if err != nil {
		return State{}, err
	}
	if err := telemetry.Publish(TelemetryTopic, body); err != nil {
		return State{}, fmt.Errorf("thermostat: publishing telemetry: %w", err)
	}
	return st, nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// storedFloat reads the number under key, def when there is none. A value
// that is not a number in [min, max] is an error: the thermostat does not
// act on a setting it cannot trust.
func storedFloat(key string, def, min, max float64) (float64, error) {
	b, ok, err := kv.Get(key)
	if err != nil {
		return 0, fmt.Errorf("thermostat: reading %s: %w", key, err)
	}
	if !ok {
		return def, nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || !(v >= min && v <= max) {
		return 0, fmt.Errorf("thermostat: stored %s %q: want a number from %g to %g", key, b, min, max)
	}
	return v, nil
}

// SetpointError is a setpoint the thermostat refuses: the request is at
// fault, not the host.
type SetpointError struct {
	Value string // as given, quoted and shortened
	// InRange is set for a number outside MinSetpoint..MaxSetpoint (as
	// opposed to something that is not a number).
	InRange bool
}

func (e *SetpointError) Error() string {
	if e.InRange {
		return fmt.Sprintf("setpoint %s °C is out of range: want %g to %g °C", e.Value, MinSetpoint, MaxSetpoint)
	}
	return fmt.Sprintf(`setpoint %s: want a number of °C from %g to %g, as 21.5 or {"setpoint":21.5}`, e.Value, MinSetpoint, MaxSetpoint)
}

// parseSetpoint reads a setpoint from a body: a decimal number ("21.5") or
// the JSON {"setpoint": 21.5}. The error is a *SetpointError, which names
// the value and the range.
func parseSetpoint(body []byte) (float64, error) {
	text := bytes.TrimSpace(body)
	var v float64
	if len(text) > 0 && text[0] == '{' {
		var req struct {
			Setpoint *float64 `json:"setpoint"`
		}
		if err := json.Unmarshal(text, &req); err != nil || req.Setpoint == nil {
			return 0, &SetpointError{Value: quote(text)}
		}
		v = *req.Setpoint
	} else {
		var err error
		if v, err = strconv.ParseFloat(string(text), 64); err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, &SetpointError{Value: quote(text)}
		}
	}
	if v < MinSetpoint || v > MaxSetpoint {
		return 0, &SetpointError{Value: strconv.FormatFloat(v, 'g', -1, 64), InRange: true}
	}
	return v, nil
}

// quote quotes b for an error, shortened.
func quote(b []byte) string {
	const max = 40
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "..."
	}
	return strconv.Quote(string(b))
}

// setSetpoint parses body and stores the setpoint. The error is a
// *SetpointError when the body is at fault.
func setSetpoint(body []byte) (float64, error) {
	v, err := parseSetpoint(body)
	if err != nil {
		return 0, err
	}
	if err := kv.Set(keySetpoint, strconv.AppendFloat(nil, v, 'f', -1, 64)); err != nil {
		return 0, fmt.Errorf("thermostat: storing the setpoint: %w", err)
	}
	sdk.Info("thermostat: setpoint " + strconv.FormatFloat(v, 'f', -1, 64) + " °C")
	return v, nil
}

type setpointReply struct {
	Setpoint float64 `json:"setpoint"`
}

type errorReply struct {
	Error string `json:"error"`
}

// setSetpointMessage handles a message on the setpoint subject. The host
// sends what it returns to the message's reply subject, if it has one. A
// bad value is answered with {"error": ...} when someone waits for the
// reply, and is an error for the host to log otherwise.
func setSetpointMessage(m messaging.Message) ([]byte, error) {
	v, err := setSetpoint(m.Body)
	var bad *SetpointError
	switch {
	case errors.As(err, &bad) && m.ReplyTo != "":
		sdk.Warn("thermostat: " + m.Subject + ": " + err.Error())
		return json.Marshal(errorReply{err.Error()})
	case err != nil:
		return nil, err
	}
	return json.Marshal(setpointReply{v})
}

// serve answers HTTP requests under /thermostat/.
func serve(r httpserver.Request) httpserver.Response {
	switch r.Path {
	case "/thermostat/", "/thermostat":
		if r.Method != "GET" {
			return notAllowed(r.Method, "GET")
		}
		st, err := state()
		if err != nil {
			return httpserver.Error(500, err.Error())
		}
		return httpserver.JSON(200, st)
	case "/thermostat/setpoint":
		switch r.Method {
		case "GET":
			v, err := storedFloat(keySetpoint, DefaultSetpoint, MinSetpoint, MaxSetpoint)
			if err != nil {
				return httpserver.Error(500, err.Error())
			}
			return httpserver.JSON(200, setpointReply{v})
		case "PUT", "POST":
			v, err := setSetpoint(r.Body)
			var bad *SetpointError
			switch {
			case errors.As(err, &bad):
				return httpserver.Error(400, err.Error())
			case err != nil:
				return httpserver.Error(500, err.Error())
			}
			return httpserver.JSON(200, setpointReply{v})
		}
		return notAllowed(r.Method, "GET, PUT, POST")
	}
	return httpserver.Error(404, "no such path: "+quote([]byte(r.Path))+"; try /thermostat/ or /thermostat/setpoint")
}

func notAllowed(method, allow string) httpserver.Response {
	resp := httpserver.Error(405, "method "+method+" not allowed: use "+allow)
	resp.Header.Set("Allow", allow)
	return resp
}

// state returns what the last tick saw and decided, and the setpoint now.
func state() (State, error) {
	var st State
	var err error
	if st.Setpoint, err = storedFloat(keySetpoint, DefaultSetpoint, MinSetpoint, MaxSetpoint); err != nil {
		return State{}, err
	}
	b, ok, err := kv.Get(keyTemperature)
	if err != nil {
		return State{}, fmt.Errorf("thermostat: reading the temperature: %w", err)
	}
	if ok {
		t, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return State{}, fmt.Errorf("thermostat: stored temperature %q is not a number", b)
		}
		st.Temperature = &t
	}
	b, ok, err = kv.Get(keyRelay)
	if err != nil {
		return State{}, fmt.Errorf("thermostat: reading the relay state: %w", err)
	}
	st.Relay = ok && string(b) == "true"
	return st, nil
}
