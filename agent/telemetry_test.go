package agent_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-edge/trellis/agent"
	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/mesh"
)

// hubAt starts a hub on a leaf address and store dir of the test's
// choosing, so that it can be stopped and started again with its streams.
func hubAt(t *testing.T, leafListen, storeDir string) *mesh.Server {
	t.Helper()
	hub, err := mesh.StartServer(t.Context(), mesh.ServerOptions{
		Name: "hub", Listen: "127.0.0.1:0", LeafListen: leafListen, StoreDir: storeDir, Domain: mesh.DefaultHubDomain,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Shutdown(context.Background()) })
	nc, err := hub.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := mesh.EnsureHubTelemetry(t.Context(), js, mesh.HubTelemetryOptions{}); err != nil {
		t.Fatal(err)
	}
	return hub
}

func hostTelemetry(t *testing.T, a *testAgent) mesh.TelemetryStatus {
	t.Helper()
	var inv mesh.Inventory
	if err := mesh.ControlRequest(t.Context(), a.nc, mesh.HostCtlSubject(mesh.DefaultLattice, a.id, mesh.CtlInventory), nil, &inv); err != nil {
		t.Fatal(err)
	}
	if inv.Host.Telemetry == nil {
		t.Fatal("the inventory has no telemetry status")
	}
	return *inv.Host.Telemetry
}

// TestTelemetrySurvivesHubOutage: an actor publishes telemetry steadily
// through trellis:telemetry; the hub goes away and comes back on the same
// address with its store; the inventory shows the backlog while it is
// gone; afterwards the hub's stream holds every message once, in the
// device's order.
func TestTelemetrySurvivesHubOutage(t *testing.T) {
	hubStore := t.TempDir()
	hub := hubAt(t, "127.0.0.1:0", hubStore)
	leaf := hub.LeafURL()
	a := startAgentConfig(t, agent.Config{
		Name: "tm", Hubs: []string{leaf},
		Devices: mesh.Devices{
			GPIO:    &mesh.GPIOConfig{Provider: mesh.GPIOSim, Lines: []string{"RELAY"}},
			Sensors: []mesh.SensorConfig{{Name: "room", Driver: mesh.SensorSim}},
		},
		Actors: []agent.ActorConfig{{Name: "thermostat", Module: thermostatWasm, Grants: capabilities.Grants{
			Sensors: []string{"room"}, GPIO: []capabilities.GPIOGrant{{Line: "RELAY", Direction: capabilities.DirOut}}, KV: true,
			Telemetry: []string{"temperature"},
			Schedule:  []capabilities.ScheduleEntry{{Name: "tick", Every: capabilities.Duration(20 * time.Millisecond), Operation: "Tick"}},
		}}},
	})
	eventually(t, "telemetry forwarded", func() error {
		if st := hostTelemetry(t, a); st.Forwarded < 5 {
			return fmt.Errorf("forwarded %d", st.Forwarded)
		}
		return nil
	})

	before := actorRevisions(t, a)
	hub.Shutdown(context.Background())
	eventually(t, "a backlog while the hub is gone", func() error {
		if st := hostTelemetry(t, a); st.Backlog < 20 || st.Offline <= 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	// What `trellis get hosts` and the heartbeat carry: the ping's inventory.
	invs, err := mesh.Ping(t.Context(), connect(t, a.url), mesh.DefaultLattice, 300*time.Millisecond)
	if err != nil || len(invs) != 1 || invs[0].Host.Telemetry == nil || invs[0].Host.Telemetry.Backlog == 0 || invs[0].Host.Telemetry.Oldest.IsZero() {
		t.Fatalf("the ping's inventory during the outage: %+v, %v", invs, err)
	}
	var st mesh.TelemetryStatus

	hub = hubAt(t, strings.TrimPrefix(leaf, "nats-leaf://"), hubStore)
	eventually(t, "the backlog drained", func() error {
		if st = hostTelemetry(t, a); st.Backlog > 3 || st.Offline != 0 { // the ticks go on: a few may be in flight
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})

	// The uplink's return restarted nothing: same actors, same revisions,
	// the same instance counters going on.
	if after := actorRevisions(t, a); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("actors before the outage %v, after %v", before, after)
	}

	// Every message once, in order: the forwarder's message ids carry the
	// device stream's sequence numbers.
	nc, err := hub.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(t.Context(), mesh.TelemetryStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatalf("hub message %d: %v", seq, err)
		}
		_, _, devSeq, err := mesh.ParseTelemetryMsgID(m.Header.Get("Nats-Msg-Id"))
		if err != nil {
			t.Fatalf("hub message %d: id %q: %v", seq, m.Header.Get("Nats-Msg-Id"), err)
		}
		if devSeq != last+1 {
			t.Fatalf("hub message %d carries device message %d after %d: lost, duplicated or out of order", seq, devSeq, last)
		}
		last = devSeq
	}
	if last < 30 {
		t.Fatalf("the hub holds %d messages", last)
	}
	if st.Dropped != 0 {
		t.Fatalf("dropped %d", st.Dropped)
	}
	t.Logf("hub holds device messages 1..%d in order, none twice; status %+v", last, st)
}

// TestTelemetryRejectWhenFull: with when_full: reject and no hub, an actor's
// publishes fail once the buffer is full, with an error that says so, the
// stored messages stay, and the inventory counts the refusals.
func TestTelemetryRejectWhenFull(t *testing.T) {
	a := startAgentConfig(t, agent.Config{
		Name:      "full",
		Telemetry: agent.TelemetryConfig{MaxBytes: 8 << 10, WhenFull: agent.TelemetryReject},
		Actors: []agent.ActorConfig{{Name: "kitchen", Module: kitchenWasm,
			Grants: capabilities.Grants{Telemetry: []string{"load"}}}},
	})
	var err error
	stored := 0
	for ; stored < 1000; stored++ {
		if _, err = hostcall(t, a, "trellis:telemetry", "Publish", map[string]any{"topic": "load", "body": make([]byte, 200)}); err != nil {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "buffer is full") {
		t.Fatalf("after %d publishes into an 8 KiB buffer: %v, want a full-buffer error", stored, err)
	}
	st := hostTelemetry(t, a)
	if st.Rejected == 0 || st.Backlog != uint64(stored) {
		t.Fatalf("status %+v after %d stored and one refused", st, stored)
	}
}

// actorRevisions returns each actor's revision and digest from the
// inventory.
func actorRevisions(t *testing.T, a *testAgent) map[string]string {
	t.Helper()
	var inv mesh.Inventory
	if err := mesh.ControlRequest(t.Context(), a.nc, mesh.HostCtlSubject(mesh.DefaultLattice, a.id, mesh.CtlInventory), nil, &inv); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, act := range inv.Actors {
		out[act.Name] = fmt.Sprintf("rev %d %s", act.Revision, act.Digest)
	}
	return out
}
