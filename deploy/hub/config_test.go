// Package hub_test checks the production hub configs in this folder: each
// parses with nats-server's own parser and sets what the README promises,
// and a node started from nats-1.conf accepts an agent's leaf connection
// with the device role's permissions.
package hub_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// The environment the configs read their passwords from.
var passwords = map[string]string{
	"TRELLIS_OPERATOR_PASSWORD":    "operator-secret",
	"TRELLIS_SYS_PASSWORD":         "sys-secret",
	"DEVICE_PASSWORD_PI_BERLIN_01": "device-secret",
}

// exampleHost is the host id of the example device in accounts.conf.
const exampleHost = "NDPMNITTYD6KBIMFR5FKHYVOTHL6KNWB3RVRP7XVLHWAL234GEJ4OL7X"

func setPasswords(t *testing.T) {
	for k, v := range passwords {
		t.Setenv(k, v)
	}
}

func load(t *testing.T, file string) *server.Options {
	t.Helper()
	opts, err := server.ProcessConfigFile(file)
	if err != nil {
		t.Fatalf("ProcessConfigFile(%s): %v", file, err)
	}
	return opts
}

func TestConfigs(t *testing.T) {
	setPasswords(t)
	for i := 1; i <= 3; i++ {
		file := fmt.Sprintf("nats-%d.conf", i)
		t.Run(file, func(t *testing.T) {
			o := load(t, file)
			for _, c := range []struct {
				what      string
				got, want any
			}{
				{"server_name", o.ServerName, fmt.Sprintf("hub%d", i)},
				{"client port", o.Port, 4222},
				{"monitoring port", o.HTTPPort, 8222},
				{"max_payload", o.MaxPayload, int32(8 << 20)},
				{"jetstream", o.JetStream, true},
				{"jetstream domain", o.JetStreamDomain, "hub"},
				{"store_dir", o.StoreDir, fmt.Sprintf("/var/lib/nats/hub%d", i)},
				{"cluster name", o.Cluster.Name, "trellis-hub"},
				{"cluster port", o.Cluster.Port, 6222},
				{"routes", routeHosts(o.Routes), []string{"hub1:6222", "hub2:6222", "hub3:6222"}},
				{"leaf node port", o.LeafNode.Port, 7422},
				{"leaf node host", o.LeafNode.Host, "0.0.0.0"},
				{"system account", o.SystemAccount, "SYS"},
				{"users", userNames(o), []string{"operator", "pi-berlin-01", "sys"}},
			} {
				if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
					t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
				}
			}
			device := user(t, o, "pi-berlin-01")
			if device.Account == nil || device.Account.Name != "TRELLIS" {
				t.Errorf("device user is not in account TRELLIS")
			}
			p := device.Permissions
			if p == nil || p.Publish == nil || p.Subscribe == nil {
				t.Fatalf("device permissions = %+v, want publish and subscribe", p)
			}
			for _, want := range []string{"trellis.default.evt." + exampleHost + ".>", "trellis.default.tm." + exampleHost + ".>"} {
				if !slices.Contains(p.Publish.Allow, want) {
					t.Errorf("device may not publish %s", want)
				}
			}
			for _, allow := range p.Publish.Allow {
				if allow == ">" || strings.HasPrefix(allow, "trellis.") && strings.Contains(allow, "*") {
					// '*' also defeats broad subscribers (nats-io/nats-server#4832).
					t.Errorf("device may publish %s", allow)
				}
			}
			if device.Password != passwords["DEVICE_PASSWORD_PI_BERLIN_01"] {
				t.Errorf("device password is not read from the environment")
			}
		})
	}
}

// TestConfigsNeedPasswords: a missing password variable stops the server
// from starting instead of leaving a user without a password.
func TestConfigsNeedPasswords(t *testing.T) {
	setPasswords(t)
	os.Unsetenv("TRELLIS_OPERATOR_PASSWORD") // t.Setenv restores it
	_, err := server.ProcessConfigFile("nats-1.conf")
	if err == nil || !strings.Contains(err.Error(), "TRELLIS_OPERATOR_PASSWORD") {
		t.Fatalf("ProcessConfigFile without the operator password = %v, want an error naming it", err)
	}
}

// TestNodesDifferOnlyByName: the three node files stay in step.
func TestNodesDifferOnlyByName(t *testing.T) {
	node := regexp.MustCompile(`(server_name: hub|nats/hub|tls/hub|node |nats-)[123]\b`)
	one, err := os.ReadFile("nats-1.conf")
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 3; i++ {
		file := fmt.Sprintf("nats-%d.conf", i)
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		want := node.ReplaceAll(one, []byte(fmt.Sprintf("${1}%d", i)))
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from nats-1.conf by more than the node number", file)
		}
	}
}

func routeHosts(routes []*url.URL) []string {
	hosts := make([]string, len(routes))
	for i, r := range routes {
		hosts[i] = r.Host
	}
	slices.Sort(hosts)
	return hosts
}

func userNames(o *server.Options) []string {
	var names []string
	for _, u := range o.Users {
		names = append(names, u.Username)
	}
	slices.Sort(names)
	return names
}

func user(t *testing.T, o *server.Options, name string) *server.User {
	t.Helper()
	for _, u := range o.Users {
		if u.Username == name {
			return u
		}
	}
	t.Fatalf("no user %q", name)
	return nil
}

// startHub starts a node from nats-1.conf alone: on loopback, on free ports,
// without routes, with JetStream in a temp dir.
func startHub(t *testing.T) *server.Server {
	t.Helper()
	o := load(t, "nats-1.conf")
	o.Host, o.Port = "127.0.0.1", server.RANDOM_PORT
	o.HTTPPort = 0 // off
	o.Cluster = server.ClusterOpts{}
	o.Routes = nil
	o.LeafNode.Host, o.LeafNode.Port = "127.0.0.1", server.RANDOM_PORT
	o.StoreDir = t.TempDir()
	// HUB_DEBUG=1 go test -v ./deploy/hub/ traces the hub's protocol, which
	// shows what permissions let through.
	trace := os.Getenv("HUB_DEBUG") != ""
	o.NoLog, o.NoSigs, o.Debug, o.Trace = !trace, true, trace, trace
	return start(t, o)
}

func start(t *testing.T, o *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	if !o.NoLog {
		s.ConfigureLogger()
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("server %s did not start", o.ServerName)
	}
	return s
}

// startDevice starts an agent-like leaf server that joins hub as the example
// device.
func startDevice(t *testing.T, hub *server.Server, password string) *server.Server {
	t.Helper()
	v, err := hub.Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	u := &url.URL{Scheme: "nats-leaf", User: url.UserPassword("pi-berlin-01", password),
		Host: fmt.Sprintf("127.0.0.1:%d", v.LeafNode.Port)}
	o := &server.Options{
		ServerName: "pi-berlin-01", Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		MaxPayload: 8 << 20, // as the hub's: modules travel in control requests
		LeafNode: server.LeafNodeOpts{
			ReconnectInterval: 50 * time.Millisecond,
			Remotes:           []*server.RemoteLeafOpts{{URLs: []*url.URL{u}}},
		},
	}
	return start(t, o)
}

func connect(t *testing.T, s *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// eventually retries f until it succeeds or a generous deadline passes.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDeviceRole starts a hub node from nats-1.conf and an agent-like leaf
// server logged in as the example device, and checks what the device role
// lets through.
func TestDeviceRole(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers")
	}
	setPasswords(t)
	hub := startHub(t)
	// Leaf nodes log in like clients (leafnodes{} has no users of its own).
	if nc, err := nats.Connect(hub.ClientURL(), nats.UserInfo("pi-berlin-01", "wrong")); err == nil {
		nc.Close()
		t.Fatal("a device logged in with a wrong password")
	}
	device := startDevice(t, hub, passwords["DEVICE_PASSWORD_PI_BERLIN_01"])
	eventually(t, "leaf connection", func() error {
		if hub.NumLeafNodes() != 1 {
			return errors.New("device has not joined")
		}
		return nil
	})
	op := connect(t, hub, nats.UserInfo("operator", passwords["TRELLIS_OPERATOR_PASSWORD"]))
	local := connect(t, device) // an actor or app on the device

	t.Run("events and telemetry of its own host only", func(t *testing.T) {
		// A broad subscription, as the fleet controller's and `nats sub '>'`.
		sub, err := op.SubscribeSync("trellis.>")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		own := "trellis.default.evt." + exampleHost + ".heartbeat"
		// Wait until the operator's interest reaches the device.
		eventually(t, "own event", func() error {
			if err := local.Publish(own, []byte("probe")); err != nil {
				return err
			}
			local.Flush()
			_, err := sub.NextMsg(50 * time.Millisecond)
			return err
		})
		local.Publish(own, []byte("end of probes"))
		local.Flush()
		for {
			m, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Data) == "end of probes" {
				break
			}
		}
		denied := []string{
			"trellis.default.evt.NOTHERHOST.heartbeat",
			"trellis.default.tm.NOTHERHOST.temp",
			"trellis.default.tmfwd.NOTHERHOST.temp",
			"trellis.default.ctl.stop",
			"trellis.default.rpc.echo.ping",
		}
		for _, subj := range denied {
			local.Publish(subj, []byte("denied"))
		}
		last := "trellis.default.tm." + exampleHost + ".temp"
		local.Publish(last, []byte("last"))
		local.Flush()
		for {
			m, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("own telemetry did not arrive: %v", err)
			}
			if string(m.Data) == "denied" {
				t.Errorf("the device published %s", m.Subject)
			}
			if m.Subject == last {
				break
			}
		}
	})

	t.Run("receives only its own subjects", func(t *testing.T) {
		sub, err := local.SubscribeSync("trellis.>")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		local.Flush()
		ping := "trellis.default.ctl.ping"
		eventually(t, "control request to the device", func() error {
			op.Publish(ping, []byte("probe"))
			op.Flush()
			_, err := sub.NextMsg(50 * time.Millisecond)
			return err
		})
		for _, subj := range []string{
			"trellis.default.host.NOTHERHOST.rpc.echo.ping",
			"trellis.default.evt.NOTHERHOST.heartbeat",
			"trellis.default.tm.NOTHERHOST.temp",
			"trellis.other-lattice.rpc.echo.ping",
		} {
			op.Publish(subj, []byte("denied"))
		}
		op.Publish(ping, []byte("last"))
		op.Flush()
		for {
			m, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("the last control request did not arrive: %v", err)
			}
			if string(m.Data) == "denied" {
				t.Errorf("the device received %s", m.Subject)
			}
			if string(m.Data) == "last" {
				break
			}
		}
	})

	t.Run("replies to calls", func(t *testing.T) {
		sub, err := local.Subscribe("trellis.default.rpc.echo.>", func(m *nats.Msg) { m.Respond(m.Data) })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		local.Flush()
		eventually(t, "call through the leaf", func() error {
			reply, err := op.Request("trellis.default.rpc.echo.ping", []byte("hi"), 200*time.Millisecond)
			if err == nil && string(reply.Data) != "hi" {
				return fmt.Errorf("reply %q, want hi", reply.Data)
			}
			return err
		})
	})

	t.Run("hub JetStream through the domain", func(t *testing.T) {
		var info struct {
			Type  string `json:"type"`
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		eventually(t, "JetStream account info from the device", func() error {
			reply, err := local.Request("$JS.hub.API.INFO", nil, 500*time.Millisecond)
			if err != nil {
				return err
			}
			if err := json.Unmarshal(reply.Data, &info); err != nil {
				return err
			}
			if info.Error != nil {
				return errors.New(info.Error.Description)
			}
			return nil
		})
		if info.Type != "io.nats.jetstream.api.v1.account_info_response" {
			t.Errorf("reply type %q, want an account info response", info.Type)
		}
	})

	t.Run("large control request", func(t *testing.T) {
		// A wasm module inside a control request: bigger than the 1 MB default.
		sub, err := local.Subscribe("trellis.default.ctl.start", func(m *nats.Msg) { m.Respond([]byte(fmt.Sprint(len(m.Data)))) })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		local.Flush()
		eventually(t, "small request", func() error {
			_, err := op.Request("trellis.default.ctl.start", []byte("x"), 200*time.Millisecond)
			return err
		})
		module := bytes.Repeat([]byte{1}, 5<<20)
		reply, err := op.Request("trellis.default.ctl.start", module, 15*time.Second)
		if err != nil {
			t.Fatalf("5 MB request: %v", err)
		}
		if string(reply.Data) != fmt.Sprint(len(module)) {
			t.Fatalf("5 MB request: reply %q, want %d", reply.Data, len(module))
		}
	})
}
