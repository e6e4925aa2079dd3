package agent_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/trellis-edge/trellis/agent"
	"github.com/trellis-edge/trellis/mesh"
)

// TestTLSUplink: an agent joins a hub whose leaf listener requires TLS
// and a device certificate (the dev setup of `trellis hub --dev-tls`), with
// hub_tls in its config, and is called from the hub's side.
func TestTLSUplink(t *testing.T) {
	d, err := mesh.EnsureDevTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	hubTLS, err := d.HubConfig()
	if err != nil {
		t.Fatal(err)
	}
	hub, err := mesh.StartServer(t.Context(), mesh.ServerOptions{Name: "hub", Listen: "127.0.0.1:0", LeafListen: "127.0.0.1:0", LeafTLS: hubTLS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Shutdown(context.Background()) })
	startAgentConfig(t, agent.Config{
		Name: "secure", Hubs: []string{hub.LeafURL()},
		HubTLS: agent.TLSConfig{CA: d.CA, Cert: d.DeviceCert, Key: d.DeviceKey},
		Actors: []agent.ActorConfig{{Name: "echo", Module: echoWasm}},
	})
	nc := connect(t, hub.ClientURL())
	eventually(t, "a call from the hub over the TLS uplink", func() error {
		resp, _, err := call(t.Context(), nc, "echo", "echo", "tls")
		if err != nil || resp != "tls" {
			return fmt.Errorf("%q, %v", resp, err)
		}
		return nil
	})
}
