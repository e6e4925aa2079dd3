package agent_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/agent"
	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/mesh"
)

const kitchenWasm = "actor/testdata/kitchen.wasm"

// TestCapabilitiesDenyByDefault: through a real Go actor, a capability that
// needs no grant works, and one without a grant is denied with an event,
// before any provider is touched.
func TestCapabilitiesDenyByDefault(t *testing.T) {
	a := startAgent(t, "caps", "", nil, agent.ActorConfig{Name: "kitchen", Module: kitchenWasm})
	ctx := t.Context()
	sub, err := a.nc.SubscribeSync(mesh.EventSubject(mesh.DefaultLattice, a.id, "capability_denied"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}

	resp, _, err := mesh.Call(ctx, a.nc, mesh.DefaultLattice, "kitchen", "hostcall", []byte("trellis:numbergen\nGenerateGuid\n"))
	var guid string
	if err != nil || msgpack.Unmarshal(resp, &guid) != nil || len(guid) != 36 {
		t.Fatalf("numbergen through the actor: %q, %v", resp, err)
	}

	get, _ := msgpack.Marshal(map[string]any{"key": []byte("k")})
	_, _, err = mesh.Call(ctx, a.nc, mesh.DefaultLattice, "kitchen", "hostcall", append([]byte("trellis:kv\nGet\n"), get...))
	if !errors.Is(err, mesh.ErrRemoteGuest) || !strings.Contains(err.Error(), "denied") || !strings.Contains(err.Error(), "trellis:kv") {
		t.Fatalf("kv without a grant: %v", err)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no capability_denied event: %v", err)
	}
	ev, err := mesh.DecodeEvent(msg.Data)
	if err != nil || ev.Type != agent.EventCapabilityDenied || !strings.Contains(string(ev.Data), `"namespace":"trellis:kv"`) {
		t.Fatalf("event %+v, %v", ev, err)
	}
}

// TestGrantedKVSurvivesRestart: an actor started through the control API
// with a kv grant keeps its counter and its grant across an agent restart;
// another actor cannot see the counter.
func TestGrantedKVSurvivesRestart(t *testing.T) {
	data := t.TempDir()
	wasm, err := os.ReadFile(kitchenWasm)
	if err != nil {
		t.Fatal(err)
	}
	inc, _ := msgpack.Marshal(map[string]any{"key": []byte("visits"), "delta": 1})
	increment := func(a *testAgent, actor string) (int64, error) {
		resp, _, err := mesh.Call(t.Context(), a.nc, mesh.DefaultLattice, actor, "hostcall", append([]byte("trellis:kv\nIncrement\n"), inc...))
		if err != nil {
			return 0, err
		}
		var out struct {
			Value int64 `msgpack:"value"`
		}
		return out.Value, msgpack.Unmarshal(resp, &out)
	}
	first := startAgent(t, "kv", data, nil)
	for _, req := range []mesh.StartActor{
		{Name: "counter", Module: wasm, Grants: capabilities.Grants{KV: true}},
		{Name: "nosy", Module: wasm, Grants: capabilities.Grants{KV: true}},
		{Name: "plain", Module: wasm},
	} {
		if err := mesh.ControlRequest(t.Context(), first.nc, mesh.HostCtlSubject(mesh.DefaultLattice, first.id, mesh.CtlActorStart), req, nil); err != nil {
			t.Fatal(err)
		}
	}
	for want := int64(1); want <= 2; want++ {
		if n, err := increment(first, "counter"); err != nil || n != want {
			t.Fatalf("increment %d: %d, %v", want, n, err)
		}
	}
	if n, err := increment(first, "nosy"); err != nil || n != 1 {
		t.Fatalf("another actor's bucket is separate: %d, %v", n, err)
	}
	if _, err := increment(first, "plain"); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("an actor without a kv grant: %v", err)
	}
	first.stop()

	second := startAgent(t, "kv", data, nil)
	if n, err := increment(second, "counter"); err != nil || n != 3 {
		t.Fatalf("after a restart: %d, %v (want the counter and the grant restored)", n, err)
	}
	if _, err := increment(second, "plain"); err == nil {
		t.Fatal("the ungranted actor gained kv across a restart")
	}
	// A start request with invalid grants is refused before anything runs.
	err = mesh.ControlRequest(t.Context(), second.nc, mesh.HostCtlSubject(mesh.DefaultLattice, second.id, mesh.CtlActorStart),
		mesh.StartActor{Name: "bad", Module: wasm, Grants: capabilities.Grants{Publish: []string{"a..b"}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "publish[0]") {
		t.Fatalf("invalid grants: %v", err)
	}
}
