package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// waitBound is the generous bound of every wait for a condition in these
// tests (reconnects, interest propagation). No test asserts a duration.
const waitBound = 30 * time.Second

// eventually polls cond until it holds or waitBound passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(waitBound); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %s", what, waitBound)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testLogger sends warnings and errors to t.Log until the test's cleanups
// have run (nats-server may log from its goroutines while shutting down).
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop) // registered first: runs after the servers' cleanups
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (w *testWriter) stop() { w.mu.Lock(); w.done = true; w.mu.Unlock() }

// startServer starts a server that the test shuts down.
func startServer(t testing.TB, opts ServerOptions) *Server {
	t.Helper()
	s, err := StartServer(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, s) })
	return s
}

func shutdown(t testing.TB, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Error(err)
	}
}

// connect opens an in-process connection that the test closes.
func connect(t testing.TB, s *Server) *nats.Conn {
	t.Helper()
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// testLattice is a hub and three agents, each a leaf of the hub, each with
// JetStream in its own domain.
type testLattice struct {
	hub      *Server
	hubOpts  ServerOptions
	agents   []*Server
	agentOpt []ServerOptions
}

var agentNames = []string{"agent-a", "agent-b", "agent-c"}

func hubOptions(t testing.TB, leafListen string) ServerOptions {
	return ServerOptions{
		Name:       "hub",
		Listen:     "127.0.0.1:0",
		LeafListen: leafListen,
		StoreDir:   filepath.Join(t.TempDir(), "hub"),
		Domain:     "hub",
		Logger:     testLogger(t),
	}
}

func agentOptions(t testing.TB, name, hubURL string) ServerOptions {
	return ServerOptions{
		Name:     name,
		Listen:   "127.0.0.1:0",
		StoreDir: filepath.Join(t.TempDir(), name),
		Domain:   name,
		Hubs:     []string{hubURL},
		Logger:   testLogger(t),
	}
}

func startLattice(t testing.TB) *testLattice {
	t.Helper()
	l := &testLattice{hubOpts: hubOptions(t, "127.0.0.1:0")}
	l.hub = startServer(t, l.hubOpts)
	for _, name := range agentNames {
		o := agentOptions(t, name, l.hub.LeafURL())
		l.agentOpt = append(l.agentOpt, o)
		l.agents = append(l.agents, startServer(t, o))
	}
	eventually(t, "3 leaves connected to the hub", func() bool {
		if l.hub.LeafNodes() != len(l.agents) {
			return false
		}
		for _, a := range l.agents {
			if !a.LeafConnected() {
				return false
			}
		}
		return true
	})
	return l
}

// serveEcho answers every request on subject with "<tag>:<payload>".
func serveEcho(t testing.TB, nc *nats.Conn, subject, tag string) *nats.Subscription {
	t.Helper()
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) { m.Respond([]byte(tag + ":" + string(m.Data))) })
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

// requestOK reports whether a request on subject gets the reply want.
func requestOK(nc *nats.Conn, subject, want string) bool {
	m, err := nc.Request(subject, []byte("x"), time.Second)
	return err == nil && string(m.Data) == want
}

func TestServerOptionsRejected(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts ServerOptions
		want string
	}{
		{"jetstream without name", ServerOptions{StoreDir: "x"}, "fixed server name"},
		{"leaf jetstream without domain", ServerOptions{Name: "a", StoreDir: "x", Hubs: []string{"nats-leaf://h:7422"}}, "own domain"},
		{"domain without store", ServerOptions{Name: "a", Domain: "d"}, "without a store dir"},
		{"nats scheme", ServerOptions{Hubs: []string{"nats://h:4222"}}, "nats-leaf:// or tls://"},
		{"no host", ServerOptions{Hubs: []string{"nats-leaf://:7422"}}, "no host"},
		{"bad url", ServerOptions{Hubs: []string{"nats-leaf://h:x:y"}}, "hub"},
		{"creds without hub", ServerOptions{HubCredentials: "c.creds"}, "without hubs"},
		{"listen without port", ServerOptions{Listen: "127.0.0.1"}, "listen"},
		{"listen bad port", ServerOptions{Listen: "127.0.0.1:99999"}, "bad port"},
		{"leaf listen bad", ServerOptions{LeafListen: "nope"}, "leaf listen"},
		{"negative payload", ServerOptions{MaxPayload: -1}, "max payload"},
		{"space in name", ServerOptions{Name: "a b", DontListen: true}, "spaces"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := StartServer(t.Context(), tt.opts)
			if err == nil {
				shutdown(t, s)
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "mesh: ") {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestServerOptionsTranslated(t *testing.T) {
	o := ServerOptions{
		Name: "a", Listen: ":0", LeafListen: "0.0.0.0:7422", StoreDir: "s", Domain: "d",
		Hubs:        []string{"nats-leaf://h1:7422", "tls://h2"},
		NoAdvertise: true,
	}
	n, err := o.natsOptions()
	if err != nil {
		t.Fatal(err)
	}
	if n.Host != "0.0.0.0" || n.Port != -1 || n.LeafNode.Port != 7422 || !n.JetStream || n.JetStreamDomain != "d" ||
		n.MaxPayload != DefaultMaxPayload || n.LeafNode.ReconnectInterval != DefaultReconnectInterval || !n.NoSigs ||
		!n.LeafNode.NoAdvertise {
		t.Fatalf("options: %+v", n)
	}
	if len(n.LeafNode.Remotes) != 1 {
		t.Fatalf("want one remote with two URLs, got %d remotes", len(n.LeafNode.Remotes))
	}
	r := n.LeafNode.Remotes[0]
	if len(r.URLs) != 2 || !r.TLS || !r.IgnoreDiscoveredServers {
		t.Fatalf("remote: %+v", r)
	}
}

func TestServerPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	for _, tt := range []struct {
		name string
		opts ServerOptions
	}{
		{"client", ServerOptions{Name: "c", Listen: taken}},
		{"leaf", ServerOptions{Name: "l", Listen: "127.0.0.1:0", LeafListen: taken}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := StartServer(t.Context(), tt.opts)
			if err == nil {
				shutdown(t, s)
				t.Fatal("started on a port in use")
			}
			if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), taken) {
				t.Fatalf("error %q: want EADDRINUSE naming %s", err, taken)
			}
		})
	}
}

func TestServerJetStreamStoreUnusable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := StartServer(t.Context(), ServerOptions{Name: "js", DontListen: true, StoreDir: file})
	if err == nil {
		shutdown(t, s)
		t.Fatal("started with a file as the store dir")
	}
	if !strings.Contains(err.Error(), "JetStream") {
		t.Fatalf("error %q does not say JetStream", err)
	}
}

func TestServerDontListen(t *testing.T) {
	s := startServer(t, ServerOptions{Name: "solo", DontListen: true})
	if s.ClientURL() != "" || s.LeafURL() != "" || s.JetStream() || s.LeafConnected() {
		t.Fatalf("url %q, leaf %q, js %v, leaf connected %v", s.ClientURL(), s.LeafURL(), s.JetStream(), s.LeafConnected())
	}
	nc := connect(t, s)
	serveEcho(t, nc, "svc", "solo")
	if !requestOK(connect(t, s), "svc", "solo:x") {
		t.Fatal("in-process request failed")
	}
	if max := nc.MaxPayload(); max != DefaultMaxPayload {
		t.Fatalf("max payload %d, want %d", max, DefaultMaxPayload)
	}
	// Shutdown twice is fine.
	shutdown(t, s)
	shutdown(t, s)
}

func TestServerLogsToSlog(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelInfo}))
	s := startServer(t, ServerOptions{Name: "logged", DontListen: true, Logger: log})
	shutdown(t, s)
	mu.Lock()
	defer mu.Unlock()
	out := buf.String()
	for _, want := range []string{"level=INFO", "subsystem=nats", "server=logged", "Server is ready"} {
		if !strings.Contains(out, want) {
			t.Fatalf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "level=DEBUG") {
		t.Fatalf("debug logged at info level:\n%s", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestLatticeMessagesAndJetStream(t *testing.T) {
	l := startLattice(t)
	ctx := t.Context()

	// A message published on agent-a reaches a subscriber on agent-c.
	sub, err := connect(t, l.agents[2]).SubscribeSync("telemetry.temp")
	if err != nil {
		t.Fatal(err)
	}
	pub := connect(t, l.agents[0])
	eventually(t, "a message from agent-a reaches agent-c", func() bool {
		if err := pub.Publish("telemetry.temp", []byte("21.5")); err != nil {
			t.Fatal(err)
		}
		m, err := sub.NextMsg(50 * time.Millisecond)
		return err == nil && string(m.Data) == "21.5"
	})

	// Each server runs JetStream in its own domain.
	for i, s := range append([]*Server{l.hub}, l.agents...) {
		js, err := jetstream.New(connect(t, s))
		if err != nil {
			t.Fatal(err)
		}
		info, err := js.AccountInfo(ctx)
		if err != nil {
			t.Fatalf("%s: %v", s.Name(), err)
		}
		want := "hub"
		if i > 0 {
			want = agentNames[i-1]
		}
		if info.Domain != want {
			t.Fatalf("%s: domain %q, want %q", s.Name(), info.Domain, want)
		}
	}

	// An agent's client reaches the hub's JetStream through the leaf with
	// the hub's domain, and its own without.
	nc := connect(t, l.agents[0])
	hubJS, err := jetstream.NewWithDomain(nc, "hub")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hubJS.CreateStream(ctx, jetstream.StreamConfig{Name: "FLEET", Subjects: []string{"fleet.>"}}); err != nil {
		t.Fatal(err)
	}
	local, _ := jetstream.New(nc)
	if _, err := local.Stream(ctx, "FLEET"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("FLEET in agent-a's own domain: %v, want not found", err)
	}
	hubLocal, _ := jetstream.New(connect(t, l.hub))
	if _, err := hubLocal.Stream(ctx, "FLEET"); err != nil {
		t.Fatalf("FLEET on the hub: %v", err)
	}
}

func TestJetStreamSurvivesRestart(t *testing.T) {
	l := startLattice(t)
	ctx := t.Context()
	b, bOpts := l.agents[1], l.agentOpt[1]

	js, _ := jetstream.New(connect(t, b))
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "TEL", Subjects: []string{"tel.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, "tel.temp", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	shutdown(t, b)
	eventually(t, "the hub sees agent-b leave", func() bool { return l.hub.LeafNodes() == 2 })

	b = startServer(t, bOpts) // same name, store dir and domain
	js, _ = jetstream.New(connect(t, b))
	st, err := js.Stream(ctx, "TEL")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	if n := st.CachedInfo().State.Msgs; n != 3 {
		t.Fatalf("stream after restart has %d messages, want 3", n)
	}
	eventually(t, "agent-b back as a leaf", func() bool { return b.LeafConnected() && l.hub.LeafNodes() == 3 })
}

func TestUplinkLoss(t *testing.T) {
	l := startLattice(t)
	ctx := t.Context()

	// Each agent serves svc.<name>; a client on each agent calls every agent.
	clients := make([]*nats.Conn, len(l.agents))
	for i, a := range l.agents {
		serveEcho(t, connect(t, a), "svc."+agentNames[i], agentNames[i])
		clients[i] = connect(t, a)
	}
	crossOK := func() bool {
		for i := range clients {
			for _, name := range agentNames {
				if !requestOK(clients[i], "svc."+name, name+":x") {
					return false
				}
			}
		}
		return true
	}
	eventually(t, "every agent reaches every other agent", crossOK)

	// The uplink goes away.
	leafURL := l.hub.LeafURL()
	shutdown(t, l.hub)
	eventually(t, "agents notice the hub is gone", func() bool {
		for _, a := range l.agents {
			if a.LeafConnected() {
				return false
			}
		}
		return true
	})
	for i, nc := range clients {
		name := agentNames[i]
		if !requestOK(nc, "svc."+name, name+":x") {
			t.Fatalf("%s: local request failed during the outage", name)
		}
		js, _ := jetstream.New(nc)
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OFFLINE", Subjects: []string{"offline.>"}}); err != nil {
			t.Fatalf("%s: local JetStream during the outage: %v", name, err)
		}
		if _, err := js.Publish(ctx, "offline.x", nil); err != nil {
			t.Fatalf("%s: local JetStream publish during the outage: %v", name, err)
		}
	}
	eventually(t, "cross-agent requests find no responders during the outage", func() bool {
		_, err := clients[0].Request("svc.agent-c", nil, time.Second)
		return errors.Is(err, nats.ErrNoResponders)
	})

	// A new hub comes up on the same leaf port; the agents find it alone.
	u, err := parseLeafURL(leafURL)
	if err != nil {
		t.Fatal(err)
	}
	hubOpts := l.hubOpts
	hubOpts.LeafListen = u
	var hub *Server
	eventually(t, "a new hub on "+u, func() bool {
		s, err := StartServer(ctx, hubOpts)
		if errors.Is(err, syscall.EADDRINUSE) {
			return false // taken meanwhile by someone else: the one case to retry
		}
		if err != nil {
			t.Fatal(err)
		}
		hub = s
		return true
	})
	t.Cleanup(func() { shutdown(t, hub) })
	eventually(t, "agents reconnect and reach each other again", func() bool {
		return hub.LeafNodes() == len(l.agents) && crossOK()
	})
}

// parseLeafURL returns host:port of a nats-leaf:// URL.
func parseLeafURL(u string) (string, error) {
	hp, ok := strings.CutPrefix(u, "nats-leaf://")
	if !ok {
		return "", fmt.Errorf("not a leaf URL: %q", u)
	}
	return hp, nil
}
