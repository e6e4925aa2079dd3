package agent_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/trellis-edge/trellis/agent"
	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/mesh"
)

// TestRebootOffline: an agent whose hub is gone starts from its store
// alone, and everything that ran before runs again: actors started by the
// control API with their grants, HTTP routes, bound subscriptions,
// schedules, timers the actors set, GPIO and sensors.
func TestRebootOffline(t *testing.T) {
	hub := startHub(t, "")
	data := t.TempDir()
	cfg := agent.Config{
		Name: "offline", DataDir: data, Hubs: []string{hub.LeafURL()},
		Devices: mesh.Devices{
			GPIO:    &mesh.GPIOConfig{Provider: mesh.GPIOSim, Lines: []string{"RELAY"}},
			Sensors: []mesh.SensorConfig{{Name: "room", Driver: mesh.SensorSim}},
		},
	}
	first := startAgentConfig(t, cfg)
	// The actors come through the control API, not the config: only the
	// store knows them at the next boot.
	for _, req := range []mesh.StartActor{
		{Name: "kvcounter", Module: readFile(t, kvcounterWasm), Grants: capabilities.Grants{KV: true,
			HTTP: []capabilities.HTTPGrant{{Listen: "127.0.0.1:0", PathPrefix: "/api/counter/"}}}},
		{Name: "thermostat", Module: readFile(t, thermostatWasm), Grants: capabilities.Grants{
			Sensors: []string{"room"}, GPIO: []capabilities.GPIOGrant{{Line: "RELAY", Direction: capabilities.DirOut}}, KV: true,
			Subscribe: []string{"thermostat.setpoint"}, Subscriptions: []capabilities.Subscription{{Subject: "thermostat.setpoint", Operation: "SetSetpoint"}},
			HTTP:     []capabilities.HTTPGrant{{Listen: "127.0.0.1:0", PathPrefix: "/thermostat/"}},
			Schedule: []capabilities.ScheduleEntry{{Name: "tick", Every: capabilities.Duration(50 * time.Millisecond), Operation: "Tick"}},
		}},
		{Name: "kitchen", Module: readFile(t, kitchenWasm), Limits: mesh.ActorLimits{MaxInstances: 1}, Grants: capabilities.Grants{Timers: true}},
	} {
		if err := mesh.ControlRequest(t.Context(), first.nc, mesh.HostCtlSubject(mesh.DefaultLattice, first.id, mesh.CtlActorStart), req, nil); err != nil {
			t.Fatal(err)
		}
	}
	if code, body := httpDo(t, "GET", routeURL(t, first, "kvcounter")+"/api/counter/boots", ""); code != 200 || body != `{"counter":1}` {
		t.Fatalf("before: %d %q", code, body)
	}
	// kitchen sets a periodic timer on itself that invokes its count op.
	if _, err := hostcall(t, first, "trellis:timer", "Set", map[string]any{"name": "t", "operation": "count", "every": 20}); err != nil {
		t.Fatal(err)
	}
	first.stop()
	hub.Shutdown(context.Background())

	start := time.Now()
	second := startAgentConfig(t, cfg) // the hub's address is dead now
	if code, body := httpDo(t, "GET", routeURL(t, second, "kvcounter")+"/api/counter/boots", ""); code != 200 || body != `{"counter":2}` {
		t.Fatalf("after an offline reboot: %d %q", code, body)
	}
	t.Logf("offline boot to the first HTTP answer of a restored actor: %s", time.Since(start))

	// The bound subscription (local bus) and the schedule: a cold room
	// and a setpoint message switch the relay on.
	v := 10.0
	if err := mesh.ControlRequest(t.Context(), second.nc, mesh.HostCtlSubject(mesh.DefaultLattice, second.id, mesh.CtlDeviceSensorSet),
		mesh.SensorSet{Sensor: "room", Kind: "temperature", Value: &v}, nil); err != nil {
		t.Fatal(err)
	}
	nc := connect(t, second.url)
	if reply, err := nc.Request("thermostat.setpoint", []byte("22"), 10*time.Second); err != nil || string(reply.Data) != `{"setpoint":22}` {
		t.Fatalf("setpoint message offline: %v, %v", reply, err)
	}
	eventually(t, "relay on", func() error {
		if !lineLevel(t, second, "RELAY") {
			return errors.New("relay still off")
		}
		return nil
	})
	// The timer kitchen set before the reboot fires again: its count grows
	// without anyone calling it.
	eventually(t, "restored timer", func() error {
		resp, err := hostcall(t, second, "trellis:timer", "List", map[string]any{})
		if err != nil || !strings.Contains(string(resp), "count") {
			return errors.New("timer not listed: " + string(resp))
		}
		out, _, err := mesh.Call(t.Context(), second.nc, mesh.DefaultLattice, "kitchen", "count", nil)
		if err != nil || len(out) < 2 { // two digits: at least ten ticks since the boot
			return errors.New("count " + string(out))
		}
		return nil
	})
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
