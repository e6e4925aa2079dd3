package agent_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/agent"
	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/mesh"
)

// devicesAgent runs the kitchen actor with GPIO and sensor grants on
// simulated devices.
func devicesAgent(t *testing.T) *testAgent {
	t.Helper()
	return startAgentConfig(t, agent.Config{
		Name: "devices",
		Devices: mesh.Devices{
			GPIO: &mesh.GPIOConfig{Provider: mesh.GPIOSim, Lines: []string{"RELAY", "BUTTON"}},
			Sensors: []mesh.SensorConfig{{Name: "room", Driver: mesh.SensorSim, Channels: map[string]mesh.WaveConfig{
				"temperature": {Wave: "constant", Value: 19.5},
			}}},
		},
		Actors: []agent.ActorConfig{{Name: "kitchen", Module: kitchenWasm, Grants: capabilities.Grants{
			GPIO:    []capabilities.GPIOGrant{{Line: "RELAY", Direction: capabilities.DirOut}, {Line: "BUTTON", Direction: capabilities.DirIn}},
			Sensors: []string{"room"},
		}}},
	})
}

// hostcall makes the kitchen actor call namespace/op with a msgpack payload.
func hostcall(t *testing.T, a *testAgent, ns, op string, payload any) ([]byte, error) {
	t.Helper()
	body, err := msgpack.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	resp, _, err := mesh.Call(t.Context(), a.nc, mesh.DefaultLattice, "kitchen", "hostcall", append([]byte(ns+"\n"+op+"\n"), body...))
	return resp, err
}

func deviceState(t *testing.T, a *testAgent) mesh.DeviceState {
	t.Helper()
	var st mesh.DeviceState
	if err := mesh.ControlRequest(t.Context(), a.nc, mesh.HostCtlSubject(mesh.DefaultLattice, a.id, mesh.CtlDeviceGet), nil, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func lineLevel(t *testing.T, a *testAgent, name string) bool {
	t.Helper()
	for _, l := range deviceState(t, a).GPIO.Lines {
		if l.Name == name {
			return l.Level
		}
	}
	t.Fatalf("line %s not in the device state", name)
	return false
}

// TestDevicesThroughTheControlAPI: an actor drives a simulated relay and
// reads a simulated sensor; the control API shows and drives the same
// devices; a provider swap keeps the actor running.
func TestDevicesThroughTheControlAPI(t *testing.T) {
	a := devicesAgent(t)
	ctl := func(op string, req any) error {
		return mesh.ControlRequest(t.Context(), a.nc, mesh.HostCtlSubject(mesh.DefaultLattice, a.id, op), req, nil)
	}

	if _, err := hostcall(t, a, "trellis:gpio", "Write", map[string]any{"line": "RELAY", "level": true}); err != nil {
		t.Fatal(err)
	}
	if !lineLevel(t, a, "RELAY") {
		t.Fatal("the relay the actor switched on reads low through the control API")
	}
	// The control API drives the simulated input; the actor reads it.
	if err := ctl(mesh.CtlDeviceGPIOSet, mesh.GPIOSet{Line: "BUTTON", Level: true}); err != nil {
		t.Fatal(err)
	}
	resp, err := hostcall(t, a, "trellis:gpio", "Read", map[string]any{"line": "BUTTON"})
	var read struct {
		Level bool `msgpack:"level"`
	}
	if err != nil || msgpack.Unmarshal(resp, &read) != nil || !read.Level {
		t.Fatalf("actor read of BUTTON after set high: %q, %v", resp, err)
	}
	// Outputs are the device's: the control API cannot set them.
	if err := ctl(mesh.CtlDeviceGPIOSet, mesh.GPIOSet{Line: "RELAY", Level: false}); err == nil {
		t.Fatal("setting an output line from outside succeeded")
	}

	readTemp := func() float64 {
		t.Helper()
		resp, err := hostcall(t, a, "trellis:sensor", "Read", map[string]any{"sensor": "room"})
		var out struct {
			Measurements []struct {
				Kind  string  `msgpack:"kind"`
				Value float64 `msgpack:"value"`
			} `msgpack:"measurements"`
		}
		if err != nil || msgpack.Unmarshal(resp, &out) != nil || len(out.Measurements) != 1 || out.Measurements[0].Kind != "temperature" {
			t.Fatalf("sensor read: %q, %v", resp, err)
		}
		return out.Measurements[0].Value
	}
	if v := readTemp(); v != 19.5 {
		t.Fatalf("temperature %v, want the configured 19.5", v)
	}
	v := 30.0
	if err := ctl(mesh.CtlDeviceSensorSet, mesh.SensorSet{Sensor: "room", Kind: "temperature", Value: &v}); err != nil {
		t.Fatal(err)
	}
	if v := readTemp(); v != 30 {
		t.Fatalf("temperature %v after the override, want 30", v)
	}
	if err := ctl(mesh.CtlDeviceSensorSet, mesh.SensorSet{Sensor: "room", Kind: "temperature"}); err != nil {
		t.Fatal(err)
	}
	if v := readTemp(); v != 19.5 {
		t.Fatalf("temperature %v after clearing the override, want 19.5", v)
	}

	// Swap the GPIO provider (a fresh simulated chip) while the actor runs:
	// the actor's next write reaches the new provider.
	if err := ctl(mesh.CtlDeviceConfigure, mesh.Devices{GPIO: &mesh.GPIOConfig{Provider: mesh.GPIOSim, Lines: []string{"RELAY", "BUTTON"}}}); err != nil {
		t.Fatal(err)
	}
	if lineLevel(t, a, "RELAY") {
		t.Fatal("the new provider's relay starts high")
	}
	if _, err := hostcall(t, a, "trellis:gpio", "Write", map[string]any{"line": "RELAY", "level": true}); err != nil {
		t.Fatalf("write after the swap: %v", err)
	}
	if !lineLevel(t, a, "RELAY") {
		t.Fatal("after the swap the actor's write did not reach the new provider")
	}
	// With no GPIO provider, a granted call answers unavailable, and the
	// sensors are untouched.
	if err := ctl(mesh.CtlDeviceConfigure, mesh.Devices{GPIO: &mesh.GPIOConfig{Provider: mesh.GPIONone}}); err != nil {
		t.Fatal(err)
	}
	if _, err := hostcall(t, a, "trellis:gpio", "Write", map[string]any{"line": "RELAY", "level": true}); err == nil || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("write with no provider: %v", err)
	}
	if st := deviceState(t, a); st.GPIO.Provider != mesh.GPIONone || len(st.Sensors) != 1 {
		t.Fatalf("device state %+v", st)
	}
	// A bad configuration is refused with the field named, and changes nothing.
	err = ctl(mesh.CtlDeviceConfigure, mesh.Devices{Sensors: []mesh.SensorConfig{{Name: "x", Driver: "lm75"}}})
	if err == nil || !strings.Contains(err.Error(), `driver "lm75"`) {
		t.Fatalf("unknown driver: %v", err)
	}
	if v := readTemp(); v != 19.5 {
		t.Fatalf("a refused configuration changed the sensors: %v", v)
	}
}

// TestDevicesGrantsCheckedAgainstLines: a grant of a line the configured
// GPIO provider does not have is an error when the actor is configured.
func TestDevicesGrantsCheckedAgainstLines(t *testing.T) {
	_, err := agent.New(agent.Config{
		DataDir: t.TempDir(),
		Devices: mesh.Devices{GPIO: &mesh.GPIOConfig{Provider: mesh.GPIOSim, Lines: []string{"RELAY"}}},
		Actors: []agent.ActorConfig{{Name: "k", Module: kitchenWasm, Grants: capabilities.Grants{
			GPIO: []capabilities.GPIOGrant{{Line: "GPIO99", Direction: capabilities.DirOut}},
		}}},
	}, agent.Options{})
	if err == nil || !strings.Contains(err.Error(), `"GPIO99" does not exist`) {
		t.Fatalf("a grant of a line the device does not have: %v", err)
	}
}

// TestGPIOEdgeInvokesActor: a simulated input the actor watches invokes
// the actor's operation on each rising edge (kitchen's count operation
// counts its invocations; one instance, so one counter).
func TestGPIOEdgeInvokesActor(t *testing.T) {
	a := startAgentConfig(t, agent.Config{
		Name:    "edges",
		Devices: mesh.Devices{GPIO: &mesh.GPIOConfig{Provider: mesh.GPIOSim, Lines: []string{"BUTTON"}}},
		Actors: []agent.ActorConfig{{Name: "kitchen", Module: kitchenWasm, Limits: actorLimits(1),
			Grants: capabilities.Grants{GPIO: []capabilities.GPIOGrant{{Line: "BUTTON", Direction: capabilities.DirIn}}}}},
	})
	if _, err := hostcall(t, a, "trellis:gpio", "Watch", map[string]any{"line": "BUTTON", "edge": "rising", "operation": "count"}); err != nil {
		t.Fatal(err)
	}
	for _, level := range []bool{true, false, true} { // two rising edges
		if err := mesh.ControlRequest(t.Context(), a.nc, mesh.HostCtlSubject(mesh.DefaultLattice, a.id, mesh.CtlDeviceGPIOSet), mesh.GPIOSet{Line: "BUTTON", Level: level}, nil); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for calls := 1; ; calls++ {
		resp, _, err := mesh.Call(t.Context(), a.nc, mesh.DefaultLattice, "kitchen", "count", nil)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(string(resp))
		edges := n - calls
		if edges == 2 {
			break
		}
		if edges > 2 || time.Now().After(deadline) {
			t.Fatalf("the actor was invoked %d times by 2 rising edges", edges)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReloadSwapsDevices: a config reload replaces the GPIO provider and
// the sensors while the actor runs, and a section left out means none.
func TestReloadSwapsDevices(t *testing.T) {
	cfg := agent.Config{
		Name:    "reload",
		Devices: mesh.Devices{GPIO: &mesh.GPIOConfig{Provider: mesh.GPIOSim, Lines: []string{"RELAY"}}},
		Actors: []agent.ActorConfig{{Name: "kitchen", Module: kitchenWasm,
			Grants: capabilities.Grants{GPIO: []capabilities.GPIOGrant{{Line: "RELAY", Direction: capabilities.DirOut}}, Sensors: []string{"room"}}}},
	}
	a := startAgentConfig(t, cfg)
	if _, err := hostcall(t, a, "trellis:gpio", "Write", map[string]any{"line": "RELAY", "level": true}); err != nil {
		t.Fatal(err)
	}
	if _, err := hostcall(t, a, "trellis:sensor", "Read", map[string]any{"sensor": "room"}); err == nil {
		t.Fatal("a sensor that is not configured answered")
	}

	cfg.Devices = mesh.Devices{
		GPIO:    &mesh.GPIOConfig{Provider: mesh.GPIOSim, Lines: []string{"RELAY", "FAN"}},
		Sensors: []mesh.SensorConfig{{Name: "room", Driver: mesh.SensorSim}},
	}
	cfg.DataDir = a.data
	if err := a.agent.Reload(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	st := deviceState(t, a)
	if len(st.GPIO.Lines) != 2 || len(st.Sensors) != 1 {
		t.Fatalf("after the reload: %+v", st)
	}
	if _, err := hostcall(t, a, "trellis:sensor", "Read", map[string]any{"sensor": "room"}); err != nil {
		t.Fatalf("the reloaded sensor: %v", err)
	}
	if _, err := hostcall(t, a, "trellis:gpio", "Write", map[string]any{"line": "RELAY", "level": true}); err != nil {
		t.Fatalf("the actor after the reload: %v", err)
	}

	cfg.Devices = mesh.Devices{}
	if err := a.agent.Reload(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if st := deviceState(t, a); st.GPIO.Provider != mesh.GPIONone || len(st.Sensors) != 0 {
		t.Fatalf("after reloading a config without devices: %+v", st)
	}
	// A reload with an invalid config changes nothing.
	cfg.Devices = mesh.Devices{GPIO: &mesh.GPIOConfig{Provider: "gpiod"}}
	if err := a.agent.Reload(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), `"gpiod"`) {
		t.Fatalf("invalid reload: %v", err)
	}
}
