package agent_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trellis-edge/trellis/agent"
	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/mesh"
)

const (
	kvcounterWasm  = "../examples/actors/kvcounter/kvcounter.wasm"
	thermostatWasm = "../examples/actors/thermostat/thermostat.wasm"
)

// routeURL returns the base URL of an actor's first HTTP route.
func routeURL(t *testing.T, a *testAgent, actor string) string {
	t.Helper()
	for _, r := range a.agent.HTTPRoutes() {
		if r.Actor == actor {
			return "http://" + r.Addr
		}
	}
	t.Fatalf("actor %s has no HTTP route (%+v)", actor, a.agent.HTTPRoutes())
	return ""
}

func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestKVCounterOverHTTP: the seed demo over real HTTP on a free port;
// counters survive a restart; another actor with a kv grant of its own
// cannot read them.
func TestKVCounterOverHTTP(t *testing.T) {
	cfg := agent.Config{Name: "kvc", DataDir: t.TempDir(), Actors: []agent.ActorConfig{
		{Name: "kvcounter", Module: kvcounterWasm, Grants: capabilities.Grants{KV: true,
			HTTP: []capabilities.HTTPGrant{{Listen: "127.0.0.1:0", PathPrefix: "/api/counter/"}}}},
		{Name: "kitchen", Module: kitchenWasm, Grants: capabilities.Grants{KV: true}},
	}}
	a := startAgentConfig(t, cfg)
	base := routeURL(t, a, "kvcounter")
	for _, want := range []string{`{"counter":1}`, `{"counter":2}`} {
		if code, body := httpDo(t, "GET", base+"/api/counter/alice", ""); code != 200 || body != want {
			t.Fatalf("GET alice: %d %q, want 200 %s", code, body, want)
		}
	}
	if code, body := httpDo(t, "GET", base+"/api/counter/bob", ""); code != 200 || body != `{"counter":1}` {
		t.Fatalf("GET bob: %d %q", code, body)
	}
	if code, _ := httpDo(t, "GET", base+"/api/counter/a.b", ""); code != 400 {
		t.Fatalf("a bad name: %d, want 400", code)
	}
	if code, _ := httpDo(t, "POST", base+"/api/counter/alice", ""); code != 405 {
		t.Fatalf("POST: %d, want 405", code)
	}
	if code, _ := httpDo(t, "GET", base+"/elsewhere", ""); code != 404 {
		t.Fatalf("a path outside the route: %d, want 404", code)
	}
	// Another actor's bucket is its own: the kitchen sees no counter.
	resp, err := hostcall(t, a, "trellis:kv", "Get", map[string]any{"key": []byte("counter:alice")})
	if err != nil || !strings.Contains(string(resp), "exists\xc2") {
		t.Fatalf("another actor reading kvcounter's key: %q, %v (want exists: false)", resp, err)
	}
	a.stop()

	a = startAgentConfig(t, cfg)
	base = routeURL(t, a, "kvcounter")
	if code, body := httpDo(t, "GET", base+"/api/counter/alice", ""); code != 200 || body != `{"counter":3}` {
		t.Fatalf("after a restart: %d %q, want the count kept", code, body)
	}
}

type thermostatState struct {
	Temperature *float64 `json:"temperature"`
	Setpoint    float64  `json:"setpoint"`
	Relay       bool     `json:"relay"`
}

// TestThermostatEndToEnd: on simulated devices, a colder room switches the
// relay on and a warmer one off, with hysteresis; the setpoint changes by a
// message and over HTTP, readings go out as telemetry, and the setpoint
// survives a restart of the agent.
func TestThermostatEndToEnd(t *testing.T) {
	cfg := agent.Config{
		Name: "thermo", DataDir: t.TempDir(),
		Devices: mesh.Devices{
			GPIO: &mesh.GPIOConfig{Provider: mesh.GPIOSim, Lines: []string{"RELAY"}},
			Sensors: []mesh.SensorConfig{{Name: "room", Driver: mesh.SensorSim, Channels: map[string]mesh.WaveConfig{
				"temperature": {Wave: "constant", Value: 20},
			}}},
		},
		Actors: []agent.ActorConfig{{Name: "thermostat", Module: thermostatWasm, Grants: capabilities.Grants{
			Sensors:       []string{"room"},
			GPIO:          []capabilities.GPIOGrant{{Line: "RELAY", Direction: capabilities.DirOut}},
			KV:            true,
			Subscribe:     []string{"thermostat.setpoint"},
			Subscriptions: []capabilities.Subscription{{Subject: "thermostat.setpoint", Operation: "SetSetpoint"}},
			Telemetry:     []string{"temperature"},
			HTTP:          []capabilities.HTTPGrant{{Listen: "127.0.0.1:0", PathPrefix: "/thermostat/"}},
			Schedule:      []capabilities.ScheduleEntry{{Name: "tick", Every: capabilities.Duration(50 * time.Millisecond), Operation: "Tick"}},
		}}},
	}
	a := startAgentConfig(t, cfg)
	nc := connect(t, a.url)
	setTemp := func(v float64) {
		t.Helper()
		if err := mesh.ControlRequest(t.Context(), a.nc, mesh.HostCtlSubject(mesh.DefaultLattice, a.id, mesh.CtlDeviceSensorSet),
			mesh.SensorSet{Sensor: "room", Kind: "temperature", Value: &v}, nil); err != nil {
			t.Fatal(err)
		}
	}
	relayBecomes := func(want bool) {
		t.Helper()
		eventually(t, "relay", func() error {
			if got := lineLevel(t, a, "RELAY"); got != want {
				return fmt.Errorf("relay is %v, want %v", got, want)
			}
			return nil
		})
	}

	// Telemetry from the ticks.
	tm, err := nc.SubscribeSync("trellis." + mesh.DefaultLattice + ".tm." + a.id + ".temperature")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := tm.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no telemetry: %v", err)
	}
	var reading thermostatState
	if err := json.Unmarshal(msg.Data, &reading); err != nil || reading.Temperature == nil || *reading.Temperature != 20 || reading.Setpoint != 20 {
		t.Fatalf("telemetry %s: %+v, %v", msg.Data, reading, err)
	}
	_ = tm.Unsubscribe()

	setTemp(15) // below 20 - 0.5: heat
	relayBecomes(true)
	setTemp(20.3) // inside the band: the relay stays on
	time.Sleep(200 * time.Millisecond)
	if !lineLevel(t, a, "RELAY") {
		t.Fatal("a temperature inside the hysteresis band switched the relay off")
	}
	setTemp(21) // above 20 + 0.5: off
	relayBecomes(false)

	// The setpoint by a message (a request: the answer comes back).
	reply, err := nc.Request("thermostat.setpoint", []byte("25"), 10*time.Second)
	if err != nil || string(reply.Data) != `{"setpoint":25}` {
		t.Fatalf("setpoint by message: %v, %v", reply, err)
	}
	relayBecomes(true) // 21 < 25 - 0.5

	// And over HTTP.
	base := routeURL(t, a, "thermostat")
	if code, body := httpDo(t, "PUT", base+"/thermostat/setpoint", "18"); code != 200 || body != `{"setpoint":18}` {
		t.Fatalf("PUT setpoint: %d %q", code, body)
	}
	relayBecomes(false) // 21 > 18 + 0.5
	if code, body := httpDo(t, "PUT", base+"/thermostat/setpoint", "99"); code != 400 || !strings.Contains(body, "out of range") {
		t.Fatalf("PUT an out-of-range setpoint: %d %q", code, body)
	}
	var st thermostatState
	code, body := httpDo(t, "GET", base+"/thermostat/", "")
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.Setpoint != 18 {
		t.Fatalf("GET state: %d %q, %v", code, body, err)
	}
	a.stop()

	// The setpoint is in the store: a restarted agent keeps it.
	a = startAgentConfig(t, cfg)
	base = routeURL(t, a, "thermostat")
	code, body = httpDo(t, "GET", base+"/thermostat/setpoint", "")
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.Setpoint != 18 {
		t.Fatalf("setpoint after a restart: %d %q, %v", code, body, err)
	}
}
