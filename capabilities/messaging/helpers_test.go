package messaging_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/messaging"
	"github.com/trellis-edge/trellis/store"
)

// waitBound is how long a test waits for something that should happen
// at once before it fails.
const waitBound = 10 * time.Second

// bus is an in-process nats-server with two connections: one for the
// handler (the agent's) and one for the rest of the lattice.
type bus struct {
	srv        *server.Server
	agent      *nats.Conn
	peer       *nats.Conn
	maxPayload int32
}

func startBus(t testing.TB, maxPayload int32) *bus {
	t.Helper()
	s, err := server.NewServer(&server.Options{DontListen: true, NoLog: true, NoSigs: true, MaxPayload: maxPayload})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(waitBound) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	b := &bus{srv: s, maxPayload: maxPayload}
	b.agent = connect(t, s)
	b.peer = connect(t, s)
	return b
}

func connect(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.InProcessServer(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// invocation is one delivery to an actor, as the agent's invoker sees it.
type invocation struct {
	actor, op string
	payload   []byte
}

// actors plays the agent's runtime: it records invocations and answers
// with respond (nil answers nothing).
type actors struct {
	got     chan invocation
	respond func(ctx context.Context, inv invocation) ([]byte, error)
}

func newActors() *actors { return &actors{got: make(chan invocation, 1024)} }

func (a *actors) invoke(ctx context.Context, actor, op string, payload []byte) ([]byte, error) {
	inv := invocation{actor, op, bytes.Clone(payload)}
	select {
	case a.got <- inv:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if a.respond != nil {
		return a.respond(ctx, inv)
	}
	return nil, nil
}

// next returns the next invocation, failing the test if none comes.
func (a *actors) next(t testing.TB) invocation {
	t.Helper()
	select {
	case inv := <-a.got:
		return inv
	case <-time.After(waitBound):
		t.Fatal("no invocation reached the actor")
		return invocation{}
	}
}

// none fails if an invocation comes within a short while.
func (a *actors) none(t testing.TB) {
	t.Helper()
	select {
	case inv := <-a.got:
		t.Fatalf("unexpected invocation %s %s %x", inv.actor, inv.op, inv.payload)
	case <-time.After(100 * time.Millisecond):
	}
}

func newHandler(t testing.TB, b *bus, st messaging.Store, a *actors, opts messaging.Options) *messaging.Handler {
	t.Helper()
	opts.Conn = b.agent
	if st != nil {
		opts.Store = st
	}
	if a != nil {
		opts.Invoke = a.invoke
	}
	opts.Lattice, opts.Host = "default", "host1"
	h := messaging.New(opts)
	t.Cleanup(h.Close)
	return h
}

func mustMsgpack(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func call(h capabilities.Handler, ctx context.Context, actor, contract, op string, payload []byte, g capabilities.Grants) ([]byte, error) {
	return h.Handle(ctx, capabilities.Call{Actor: actor, Contract: contract, Operation: op, Payload: payload, Grants: g})
}

// subscribe calls Subscribe and returns the id.
func subscribe(t testing.TB, h *messaging.Handler, actor string, g capabilities.Grants, r messaging.SubscribeRequest) string {
	t.Helper()
	out, err := call(h, t.Context(), actor, capabilities.Messaging, messaging.OpSubscribe, mustMsgpack(t, r), g)
	if err != nil {
		t.Fatalf("Subscribe %+v: %v", r, err)
	}
	var resp messaging.SubscribeResponse
	if err := msgpack.Unmarshal(out, &resp); err != nil || resp.ID == "" {
		t.Fatalf("Subscribe response %x: %+v, %v", out, resp, err)
	}
	return resp.ID
}

// watch subscribes the peer to subject and returns the channel of what arrives.
func (b *bus) watch(t testing.TB, subject string) chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 256)
	sub, err := b.peer.ChanSubscribe(subject, ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := b.peer.Flush(); err != nil {
		t.Fatal(err)
	}
	return ch
}

func recv(t testing.TB, ch chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(waitBound):
		t.Fatal("no message arrived")
		return nil
	}
}

// flush makes sure the server has seen what the agent's connection sent
// (subscriptions and unsubscriptions included).
func (b *bus) flush(t testing.TB) {
	t.Helper()
	if err := b.agent.Flush(); err != nil {
		t.Fatal(err)
	}
}

func wantErr(t testing.TB, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got %v, want %v", what, err, target)
	}
}

// eventually polls cond until it holds, failing after waitBound.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(waitBound); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %v", what, waitBound)
		}
	}
}
