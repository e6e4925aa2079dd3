package agent_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/agent"
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
