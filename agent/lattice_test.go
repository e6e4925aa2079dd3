package agent_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-edge/trellis/agent"
	"github.com/trellis-edge/trellis/agent/actor"
	"github.com/trellis-edge/trellis/mesh"
)

const (
	echoWasm     = "actor/testdata/echo.wasm"
	relayWasm    = "actor/testdata/hostcall.wasm"
	brokenWasm   = "actor/testdata/noexport.wasm"
	initWapcWasm = "actor/testdata/init_wapc.wasm"
)

// testAgent is an agent running in the test process.
type testAgent struct {
	name, id, url, data string
	agent               *agent.Agent
	nc                  *nats.Conn
	stop                func()
}

func startHub(t *testing.T, leafListen string) *mesh.Server {
	t.Helper()
	if leafListen == "" {
		leafListen = "127.0.0.1:0"
	}
	return hubAt(t, leafListen, t.TempDir())
}

// startAgent runs an agent until the test ends (or stop is called).
func startAgent(t testing.TB, name, data string, hubs []string, actors ...agent.ActorConfig) *testAgent {
	t.Helper()
	return startAgentConfig(t, agent.Config{DataDir: data, Hubs: hubs, Name: name, Actors: actors})
}

// startAgentConfig starts an agent with cfg, on a free port, a temporary
// data dir unless cfg names one, and a heartbeat every second.
func startAgentConfig(t testing.TB, cfg agent.Config) *testAgent {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.Listen, cfg.HeartbeatInterval = "127.0.0.1:0", time.Second
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	name, data := cfg.Name, cfg.DataDir
	ta := &testAgent{name: name, data: data}
	ready := make(chan struct{})
	a, err := agent.New(cfg, agent.Options{Version: "0.0.0-test", Ready: func(url, id string) {
		ta.url, ta.id = url, id
		close(ready)
	}})
	if err != nil {
		t.Fatal(err)
	}
	ta.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("agent %s: %v", name, err)
	case <-time.After(2 * time.Minute): // a hang detector, not a timing assertion
		cancel()
		t.Fatalf("agent %s never became ready:\n%s", name, goroutines())
	}
	var once sync.Once
	ta.stop = func() {
		once.Do(func() {
			if ta.nc != nil {
				ta.nc.Close()
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent %s: %v", name, err)
				}
			case <-time.After(2 * time.Minute): // a hang detector, not a timing assertion
				t.Errorf("agent %s did not stop:\n%s", name, goroutines())
			}
		})
	}
	t.Cleanup(ta.stop)
	if ta.nc, err = nats.Connect(ta.url); err != nil {
		t.Fatal(err)
	}
	return ta
}

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// eventually polls cond until it holds; a liveness wait with a generous
// bound, not a timing assertion.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	var err error
	for i := 0; i < 600; i++ {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after 30s: %v", what, err)
}

func call(ctx context.Context, nc *nats.Conn, actor, op, payload string) (string, string, error) {
	resp, host, err := mesh.Call(ctx, nc, mesh.DefaultLattice, actor, op, []byte(payload))
	return string(resp), host, err
}

func TestLattice(t *testing.T) {
	hub := startHub(t, "")
	hubs := []string{hub.LeafURL()}
	a := startAgent(t, "a", "", hubs, agent.ActorConfig{Name: "relay", Module: relayWasm})
	b := startAgent(t, "b", "", hubs, agent.ActorConfig{Name: "twin", Module: echoWasm})
	c := startAgent(t, "c", "", hubs,
		agent.ActorConfig{Name: "echo", Module: echoWasm},
		agent.ActorConfig{Name: "twin", Module: echoWasm})
	hubNC := connect(t, hub.ClientURL())
	ctx := t.Context()

	eventually(t, "echo on c reachable from the hub", func() error {
		_, _, err := call(ctx, hubNC, "echo", "echo", "x")
		return err
	})

	t.Run("hub side and another device reach an actor on a third", func(t *testing.T) {
		for _, nc := range []*nats.Conn{hubNC, a.nc} {
			eventually(t, "call from "+nc.ConnectedUrl(), func() error {
				resp, host, err := call(ctx, nc, "echo", "echo", "across")
				if err == nil && (resp != "across" || host != c.id) {
					return errors.New("answered " + resp + " by " + host)
				}
				return err
			})
		}
	})
	t.Run("an actor on two devices answers from both", func(t *testing.T) {
		seen := map[string]int{}
		eventually(t, "answers from b and c", func() error {
			_, host, err := call(ctx, hubNC, "twin", "echo", "x")
			if err != nil {
				return err
			}
			seen[host]++
			if seen[b.id] == 0 || seen[c.id] == 0 {
				return errors.New("not yet from both")
			}
			return nil
		})
	})
	t.Run("a pinned call reaches the named device", func(t *testing.T) {
		for range 20 {
			resp, host, err := mesh.CallHost(ctx, hubNC, mesh.DefaultLattice, b.id, "twin", "echo", []byte("pinned"))
			if err != nil || host != b.id || string(resp) != "pinned" {
				t.Fatalf("pinned to b: %q from %s, %v", resp, host, err)
			}
		}
	})
	t.Run("actor-to-actor over the lattice", func(t *testing.T) {
		// relay (hostcall.wat) on a calls actor "echo", which runs only on c.
		resp, host, err := call(ctx, a.nc, "relay", "echo", "relayed")
		if err != nil || resp != "relayed" || host != a.id {
			t.Fatalf("relay: %q from %s, %v", resp, host, err)
		}
	})
	t.Run("errors travel with their code", func(t *testing.T) {
		_, _, err := call(ctx, hubNC, "echo", "fail", "x")
		if !errors.Is(err, mesh.ErrRemoteGuest) {
			t.Fatalf("guest error: %v", err)
		}
		_, _, err = call(ctx, hubNC, "nobody", "op", "x")
		if !errors.Is(err, mesh.ErrRemoteNotFound) {
			t.Fatalf("unknown actor: %v", err)
		}
	})
	t.Run("inventory and heartbeats show every host", func(t *testing.T) {
		eventually(t, "ping sees 3 hosts", func() error {
			invs, err := mesh.Ping(ctx, hubNC, mesh.DefaultLattice, 300*time.Millisecond)
			if err != nil {
				return err
			}
			if len(invs) != 3 {
				return errors.New("not 3 hosts yet")
			}
			return nil
		})
		sub, err := hubNC.SubscribeSync(mesh.EventWildcard(mesh.DefaultLattice))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		hosts := map[string]bool{}
		for len(hosts) < 3 {
			msg, err := sub.NextMsg(30 * time.Second)
			if err != nil {
				t.Fatalf("heartbeats from %d hosts only: %v", len(hosts), err)
			}
			ev, err := mesh.DecodeEvent(msg.Data)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type == mesh.EventHostHeartbeat {
				hosts[msg.Subject] = true
			}
		}
	})
	t.Run("control: scale, labels, stop", func(t *testing.T) {
		ctl := func(op string, req any) error {
			return mesh.ControlRequest(ctx, hubNC, mesh.HostCtlSubject(mesh.DefaultLattice, b.id, op), req, nil)
		}
		if err := ctl(mesh.CtlActorScale, mesh.ScaleActor{Name: "twin", MaxInstances: 7}); err != nil {
			t.Fatal(err)
		}
		if err := ctl(mesh.CtlLabelsPut, mesh.Labels{Labels: map[string]string{"site": "lab", "model": "pi4"}}); err != nil {
			t.Fatal(err)
		}
		if err := ctl(mesh.CtlLabelsDelete, mesh.Labels{Labels: map[string]string{"model": ""}}); err != nil {
			t.Fatal(err)
		}
		inv, err := mesh.HostInventory(ctx, hubNC, mesh.DefaultLattice, b.id)
		if err != nil {
			t.Fatal(err)
		}
		if len(inv.Actors) != 1 || inv.Actors[0].MaxInstances != 7 || inv.Host.Labels["site"] != "lab" || inv.Host.Labels["model"] != "" {
			t.Fatalf("inventory after scale and labels: %+v", inv)
		}
		if inv.Host.Engine == "" || inv.Host.Arch == "" || inv.Host.Memory.GoHeap == 0 || inv.Actors[0].Revision < 2 {
			t.Fatalf("inventory lacks host facts or the revision did not grow: %+v", inv)
		}
		if err := ctl(mesh.CtlActorStop, mesh.StopActor{Name: "twin"}); err != nil {
			t.Fatal(err)
		}
		for range 20 { // twin now answers only from c
			if _, host, err := call(ctx, hubNC, "twin", "echo", "x"); err != nil || host != c.id {
				t.Fatalf("after stopping twin on b: answered by %s, %v", host, err)
			}
		}
		if err := ctl(mesh.CtlActorStop, mesh.StopActor{Name: "twin"}); err == nil {
			t.Fatal("stopping an actor that is not running succeeded")
		}
	})
	t.Run("healthz and metrics", func(t *testing.T) {
		base := "http://" + c.agent.HTTPAddr()
		res, err := http.Get(base + "/healthz")
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("healthz: %v %v", res, err)
		}
		res.Body.Close()
		res, err = http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		for _, want := range []string{"trellis_up{", `trellis_actor_calls_total{actor="echo"}`, "trellis_leaf_connections 1", "trellis_capability_denied_total ", "trellis_http_requests_total "} {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %s:\n%s", want, body)
			}
		}
	})
	t.Run("a broken update leaves the old version serving", func(t *testing.T) {
		broken, err := os.ReadFile(brokenWasm)
		if err != nil {
			t.Fatal(err)
		}
		err = mesh.ControlRequest(ctx, hubNC, mesh.HostCtlSubject(mesh.DefaultLattice, c.id, mesh.CtlActorUpdate),
			mesh.StartActor{Name: "echo", Module: broken}, nil)
		if err == nil {
			t.Fatal("a module with no __guest_call was accepted")
		}
		if resp, _, err := call(ctx, hubNC, "echo", "echo", "still"); err != nil || resp != "still" {
			t.Fatalf("after a failed update: %q, %v", resp, err)
		}
	})
}

// TestRestartRestoresActorsWithoutUplink: actors started through the control
// API run again after a restart with no flag and a hub that is gone.
func TestRestartRestoresActorsWithoutUplink(t *testing.T) {
	data := t.TempDir()
	first := startAgent(t, "solo", data, nil)
	wasm, err := os.ReadFile(initWapcWasm)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := mesh.ControlRequest(ctx, first.nc, mesh.HostCtlSubject(mesh.DefaultLattice, first.id, mesh.CtlActorStart),
		mesh.StartActor{Name: "w", Module: wasm}, nil); err != nil {
		t.Fatal(err)
	}
	first.stop()

	second := startAgent(t, "solo", data, []string{"nats-leaf://127.0.0.1:1"}) // an unreachable hub
	if second.id != first.id {
		t.Fatalf("host id changed across a restart: %s then %s", first.id, second.id)
	}
	resp, _, err := call(ctx, second.nc, "w", "x", "")
	if err != nil || resp != "W" {
		t.Fatalf("restored actor: %q, %v", resp, err)
	}
	if _, err := os.Stat(filepath.Join(data, agent.StoreFile)); err != nil {
		t.Fatal(err)
	}
}

// TestUplinkLoss: with the hub gone, calls on each device keep working; when
// a hub returns on the same address, cross-device calls work again without
// restarting the agents.
func TestUplinkLoss(t *testing.T) {
	hub := startHub(t, "")
	leaf := hub.LeafURL()
	hubs := []string{leaf}
	a := startAgent(t, "a", "", hubs, agent.ActorConfig{Name: "echo-a", Module: echoWasm})
	b := startAgent(t, "b", "", hubs, agent.ActorConfig{Name: "echo-b", Module: echoWasm})
	ctx := t.Context()
	eventually(t, "a reaches b", func() error { _, _, err := call(ctx, a.nc, "echo-b", "echo", "x"); return err })

	hub.Shutdown(context.Background())
	for _, d := range []*testAgent{a, b} {
		if resp, host, err := call(ctx, d.nc, "echo-"+d.name, "echo", "offline"); err != nil || resp != "offline" || host != d.id {
			t.Fatalf("local call on %s with the hub down: %q from %s, %v", d.name, resp, host, err)
		}
	}
	// With a deadline: until a's leaf notices the hub is gone, it may still
	// forward the request into the dead link, and no "no responders" comes.
	noHub, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, _, err := call(noHub, a.nc, "echo-b", "echo", "x"); err == nil {
		t.Fatal("a reached b with no hub between them")
	}

	// The hub returns on the same leaf address.
	addr := leaf[len("nats-leaf://"):]
	startHub(t, addr)
	eventually(t, "a reaches b again", func() error { _, _, err := call(ctx, a.nc, "echo-b", "echo", "x"); return err })
	eventually(t, "b reaches a again", func() error { _, _, err := call(ctx, b.nc, "echo-a", "echo", "x"); return err })
}

func actorLimits(maxInstances int) actor.Limits { return actor.Limits{MaxInstances: maxInstances} }

// goroutines returns every goroutine's stack, for a hang report.
func goroutines() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
