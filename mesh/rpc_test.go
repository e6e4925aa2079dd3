package mesh

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// fakeInvoker echoes the payload of any operation except: the ones in errs
// fail with that error; "wait" blocks until ctx ends (or release is
// closed); "deadline" answers whether ctx has a deadline; "panic" panics;
// "big" returns 8 KiB.
type fakeInvoker struct {
	errs    map[string]error
	release chan struct{}
	started chan struct{} // receives one value per "wait" call, if not nil
}

func (f *fakeInvoker) Invoke(ctx context.Context, actor, operation string, payload []byte) ([]byte, error) {
	if err, ok := f.errs[operation]; ok {
		return nil, err
	}
	switch operation {
	case "wait":
		if f.started != nil {
			f.started <- struct{}{}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-f.release:
			return []byte("released"), nil
		}
	case "deadline":
		d, ok := ctx.Deadline()
		if !ok {
			return []byte("none"), nil
		}
		return []byte(time.Until(d).Round(time.Minute).String()), nil
	case "panic":
		panic("boom")
	case "big":
		return make([]byte, 8192), nil
	}
	return payload, nil
}

// codedError is an invoker error with a stable code, like actor.CallError.
type codedError struct{ code, msg string }

func (e *codedError) Error() string     { return e.msg }
func (e *codedError) ErrorCode() string { return e.code }

// serveRPC serves actors as hostID on s (in-process connection); the test
// closes it.
func serveRPC(t testing.TB, s *Server, hostID string, inv Invoker, actors ...string) *RPC {
	t.Helper()
	r := NewRPC(connect(t, s), DefaultLattice, hostID, inv, testLogger(t))
	t.Cleanup(r.Close)
	for _, a := range actors {
		if err := r.Serve(a); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func callCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// callOK reports whether a call of actor on nc succeeds (interest may take
// a moment to cross leaf connections).
func callOK(t testing.TB, nc *nats.Conn, actor string) bool {
	_, _, err := Call(callCtx(t), nc, DefaultLattice, actor, "echo", []byte("hi"))
	return err == nil
}

func TestRPCAcrossLattice(t *testing.T) {
	l := startLattice(t)
	serveRPC(t, l.agents[2], "host-c", &fakeInvoker{}, "only-c")

	for _, from := range []*Server{l.hub, l.agents[0]} {
		nc := connect(t, from)
		eventually(t, "only-c reachable from "+from.Name(), func() bool { return callOK(t, nc, "only-c") })
		resp, host, err := Call(callCtx(t), nc, DefaultLattice, "only-c", "say.hello", []byte("payload"))
		if err != nil || string(resp) != "payload" || host != "host-c" {
			t.Fatalf("from %s: %q from %q, %v", from.Name(), resp, host, err)
		}
	}
}

func TestRPCSpreadsOverHosts(t *testing.T) {
	l := startLattice(t)
	serveRPC(t, l.agents[1], "host-b", &fakeInvoker{}, "both")
	serveRPC(t, l.agents[2], "host-c", &fakeInvoker{}, "both")

	for _, from := range []*Server{l.hub, l.agents[0]} {
		nc := connect(t, from)
		seen := map[string]int{}
		// Both hosts must have propagated their interest before counting.
		eventually(t, "both hosts answer calls from "+from.Name(), func() bool {
			_, host, err := Call(callCtx(t), nc, DefaultLattice, "both", "echo", nil)
			if err == nil {
				seen[host]++
			}
			return seen["host-b"] > 0 && seen["host-c"] > 0
		})
		clear(seen)
		for range 200 {
			_, host, err := Call(callCtx(t), nc, DefaultLattice, "both", "echo", nil)
			if err != nil {
				t.Fatal(err)
			}
			seen[host]++
		}
		if len(seen) != 2 || seen["host-b"] == 0 || seen["host-c"] == 0 {
			t.Fatalf("from %s: answers by host %v, want both", from.Name(), seen)
		}
		t.Logf("from %s: %v", from.Name(), seen)
	}
}

func TestRPCPinned(t *testing.T) {
	l := startLattice(t)
	serveRPC(t, l.agents[1], "host-b", &fakeInvoker{}, "both")
	serveRPC(t, l.agents[2], "host-c", &fakeInvoker{}, "both")
	nc := connect(t, l.agents[0])

	eventually(t, "host-c reachable pinned", func() bool {
		_, _, err := CallHost(callCtx(t), nc, DefaultLattice, "host-c", "both", "echo", nil)
		return err == nil
	})
	for range 50 {
		resp, host, err := CallHost(callCtx(t), nc, DefaultLattice, "host-c", "both", "pinned.op", []byte("p"))
		if err != nil || host != "host-c" || string(resp) != "p" {
			t.Fatalf("pinned call: %q from %q, %v", resp, host, err)
		}
	}
	_, _, err := CallHost(callCtx(t), nc, DefaultLattice, "host-x", "both", "echo", nil)
	if !errors.Is(err, ErrRemoteNotFound) || !strings.Contains(err.Error(), "host-x") {
		t.Fatalf("pinned call to a host that does not exist: %v, want not_found naming it", err)
	}
}

func TestRPCPrefersLocalHost(t *testing.T) {
	l := startLattice(t)
	serveRPC(t, l.hub, "host-hub", &fakeInvoker{}, "shared")
	serveRPC(t, l.agents[0], "host-a", &fakeInvoker{}, "shared")

	onHub, onA, onB := connect(t, l.hub), connect(t, l.agents[0]), connect(t, l.agents[1])
	// Wait until the hub knows agent-a's subscription: then it has a choice.
	eventually(t, "hub sees agent-a's queue subscription", func() bool {
		_, host, err := CallHost(callCtx(t), onHub, DefaultLattice, "host-a", "shared", "echo", nil)
		return err == nil && host == "host-a"
	})
	eventually(t, "agent-b sees the hub's interest", func() bool { return callOK(t, onB, "shared") })
	for _, tt := range []struct {
		from *nats.Conn
		name string
		want string
	}{
		{onA, "agent-a", "host-a"},   // served on its own server
		{onHub, "hub", "host-hub"},   // likewise
		{onB, "agent-b", "host-hub"}, // relayed by the hub, which prefers its own client
	} {
		for range 100 {
			_, host, err := Call(callCtx(t), tt.from, DefaultLattice, "shared", "echo", nil)
			if err != nil || host != tt.want {
				t.Fatalf("call from %s answered by %q (%v), want %q", tt.name, host, err, tt.want)
			}
		}
	}
}

func TestRPCErrorCodes(t *testing.T) {
	l := startLattice(t)
	inv := &fakeInvoker{errs: map[string]error{}}
	for _, code := range []string{"guest_error", "trap", "timeout", "canceled", "limit", "overloaded", "not_found", "denied"} {
		inv.errs[code] = &codedError{code, "actor coded: failed with " + code}
	}
	inv.errs["plain"] = errors.New("open /var/lib/trellis/secret: permission denied")
	inv.errs["ctx-deadline"] = fmt.Errorf("wrapped: %w", context.DeadlineExceeded)
	serveRPC(t, l.agents[2], "host-c", inv, "coded")
	nc := connect(t, l.agents[0])
	eventually(t, "coded reachable", func() bool { return callOK(t, nc, "coded") })

	for _, tt := range []struct {
		op, code, msg string
		sentinel      error
	}{
		{"guest_error", "guest_error", "actor coded: failed with guest_error", ErrRemoteGuest},
		{"trap", "trap", "actor coded: failed with trap", ErrRemoteTrap},
		{"timeout", "timeout", "actor coded: failed with timeout", ErrRemoteTimeout},
		{"canceled", "canceled", "actor coded: failed with canceled", ErrRemoteCanceled},
		{"limit", "limit", "actor coded: failed with limit", ErrRemoteLimit},
		{"overloaded", "overloaded", "actor coded: failed with overloaded", ErrRemoteOverloaded},
		{"not_found", "not_found", "actor coded: failed with not_found", ErrRemoteNotFound},
		{"denied", "denied", "actor coded: failed with denied", ErrRemoteDenied},
		{"plain", "internal", "internal error", ErrRemoteInternal}, // the path stays on the host
		{"ctx-deadline", "timeout", "deadline exceeded", ErrRemoteTimeout},
		{"panic", "internal", "internal error", ErrRemoteInternal},
	} {
		t.Run(tt.op, func(t *testing.T) {
			resp, host, err := Call(callCtx(t), nc, DefaultLattice, "coded", tt.op, []byte("x"))
			var re *RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("got %q, %v; want a RemoteError", resp, err)
			}
			if re.Code != tt.code || re.Message != tt.msg || re.Host != "host-c" || host != "host-c" || re.ErrorCode() != tt.code {
				t.Fatalf("got %+v from %q, want code %q message %q from host-c", re, host, tt.code, tt.msg)
			}
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("%v is not %v", err, tt.sentinel)
			}
			for _, other := range []error{ErrRemoteGuest, ErrRemoteTrap, ErrRemoteDenied} {
				if other != tt.sentinel && errors.Is(err, other) {
					t.Fatalf("%v matches %v", err, other)
				}
			}
		})
	}
}

func TestRPCNoResponders(t *testing.T) {
	l := startLattice(t)
	_, host, err := Call(callCtx(t), connect(t, l.agents[0]), "prod", "ghost", "echo", nil)
	if !errors.Is(err, ErrRemoteNotFound) || !errors.Is(err, nats.ErrNoResponders) || host != "" {
		t.Fatalf("got %v from %q, want not_found wrapping no responders", err, host)
	}
	if msg := err.Error(); !strings.Contains(msg, "ghost") || !strings.Contains(msg, "prod") {
		t.Fatalf("message %q does not name the actor and the lattice", msg)
	}
}

func TestRPCDeadlines(t *testing.T) {
	s := startServer(t, ServerOptions{Name: "solo", DontListen: true})
	serveRPC(t, s, "host-1", &fakeInvoker{}, "clock")
	nc := connect(t, s)

	// The caller's deadline travels and bounds the invocation.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Minute)
	defer cancel()
	resp, _, err := Call(ctx, nc, DefaultLattice, "clock", "deadline", nil)
	if err != nil || string(resp) != MaxCallTimeout.String() {
		t.Fatalf("30m deadline arrived as %q (%v), want capped at %s", resp, err, MaxCallTimeout)
	}
	resp, _, err = Call(t.Context(), nc, DefaultLattice, "clock", "deadline", nil)
	if err != nil || string(resp) != "none" {
		t.Fatalf("no deadline arrived as %q (%v), want none", resp, err)
	}

	// The caller gives up: timeout. The actor's context ends at about the
	// same time, so the timeout is the caller's or the host's reply.
	ctx, cancel = context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, _, err = Call(ctx, nc, DefaultLattice, "clock", "wait", nil)
	if !errors.Is(err, ErrRemoteTimeout) {
		t.Fatalf("got %v, want timeout", err)
	}
	_, _, err = Call(ctx, nc, DefaultLattice, "clock", "echo", nil)
	if !errors.Is(err, ErrRemoteTimeout) {
		t.Fatalf("call with an expired context: %v, want timeout", err)
	}
	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	if _, _, err = Call(ctx, nc, DefaultLattice, "clock", "echo", nil); !errors.Is(err, ErrRemoteCanceled) {
		t.Fatalf("call with a canceled context: %v, want canceled", err)
	}

	// Raw requests with odd headers.
	for _, tt := range []struct{ timeout, wantCode string }{
		{"-1s", "timeout"},
		{"0s", "timeout"},
		{"garbage", ""}, // ignored: the actor's own limit rules
		{"1h", ""},
	} {
		m, err := nc.RequestMsg(&nats.Msg{
			Subject: RPCSubject(DefaultLattice, "clock", "echo"),
			Header:  nats.Header{HeaderTimeout: []string{tt.timeout}},
		}, 5*time.Second)
		if err != nil || m.Header.Get(HeaderErrorCode) != tt.wantCode {
			t.Fatalf("timeout %q: code %q (%v), want %q", tt.timeout, m.Header.Get(HeaderErrorCode), err, tt.wantCode)
		}
	}
}

func TestRPCGarbageIn(t *testing.T) {
	s := startServer(t, ServerOptions{Name: "solo", DontListen: true})
	r := serveRPC(t, s, "host-1", &fakeInvoker{}, "echo")
	nc := connect(t, s)

	for _, subj := range []string{
		"trellis.default.rpc.echo.op",      // no reply subject
		"trellis.default.rpc.echo.a.b.c.d", // no reply subject
	} {
		if err := nc.Publish(subj, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	// Subjects that match the subscription but are not well-formed RPC
	// subjects (a wildcard as a literal token) are answered, not_found.
	m, err := nc.Request("trellis.default.rpc.echo.*", nil, 5*time.Second)
	if err != nil || m.Header.Get(HeaderErrorCode) != "not_found" {
		t.Fatalf("wildcard token: %v %v", m, err)
	}
	// Big and empty payloads.
	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(i)
	}
	for _, p := range [][]byte{nil, {}, big} {
		resp, _, err := Call(callCtx(t), nc, DefaultLattice, "echo", "echo", p)
		if err != nil || len(resp) != len(p) {
			t.Fatalf("payload of %d bytes: %d bytes back, %v", len(p), len(resp), err)
		}
	}
	eventually(t, "counters", func() bool {
		st := r.Stats()
		return st.NoReply == 2 && st.BadSubject == 1 && st.Requests == 6
	})

	// Calls with names that would not make a subject never leave.
	for _, tt := range [][4]string{
		{"default", "", "echo", "op"},
		{"default", "a.b", "echo", "op"},
		{"default", "echo", "", ""},
		{"default", "echo", "a..b", ""},
		{"default", "echo", "op.", ""},
		{"default", "echo", ".op", ""},
		{"default", "echo", "op.*", ""},
		{"default", "echo", "op >", ""},
		{"de.fault", "echo", "op", ""},
		{"default", "echo", "op", "host.x"},
	} {
		lattice, actor, op, host := tt[0], tt[1], tt[2], tt[3]
		var err error
		if host == "" {
			_, _, err = Call(callCtx(t), nc, lattice, actor, op, nil)
		} else {
			_, _, err = CallHost(callCtx(t), nc, lattice, host, actor, op, nil)
		}
		if err == nil || errors.As(err, new(*RemoteError)) {
			t.Fatalf("Call(%q, %q, %q, host %q): %v, want a validation error", lattice, actor, op, host, err)
		}
	}
	if got := r.Stats().Requests; got != 6 {
		t.Fatalf("%d requests reached the server, want 6", got)
	}
	if err := r.Serve("bad actor"); err == nil {
		t.Fatal("served an actor name with a space")
	}
}

func TestRPCPayloadLimits(t *testing.T) {
	s := startServer(t, ServerOptions{Name: "small", DontListen: true, MaxPayload: 4096})
	serveRPC(t, s, "host-1", &fakeInvoker{}, "echo")
	nc := connect(t, s)

	_, host, err := Call(callCtx(t), nc, DefaultLattice, "echo", "big", nil)
	if !errors.Is(err, ErrRemoteLimit) || host != "host-1" {
		t.Fatalf("response over the max payload: %v from %q, want limit from host-1", err, host)
	}
	_, _, err = Call(callCtx(t), nc, DefaultLattice, "echo", "echo", make([]byte, 8192))
	if !errors.Is(err, ErrRemoteLimit) || !errors.Is(err, nats.ErrMaxPayload) {
		t.Fatalf("request over the max payload: %v, want limit", err)
	}
}

func TestRPCOverloaded(t *testing.T) {
	s := startServer(t, ServerOptions{Name: "solo", DontListen: true})
	inv := &fakeInvoker{release: make(chan struct{}), started: make(chan struct{})}
	r := NewRPC(connect(t, s), DefaultLattice, "host-1", inv, testLogger(t))
	r.limit = 2
	t.Cleanup(r.Close)
	if err := r.Serve("slow"); err != nil {
		t.Fatal(err)
	}
	nc := connect(t, s)

	var wg sync.WaitGroup
	results := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			resp, _, err := Call(callCtx(t), nc, DefaultLattice, "slow", "wait", nil)
			if err == nil && string(resp) != "released" {
				err = fmt.Errorf("response %q", resp)
			}
			results <- err
		})
	}
	<-inv.started
	<-inv.started
	_, host, err := Call(callCtx(t), nc, DefaultLattice, "slow", "echo", nil)
	if !errors.Is(err, ErrRemoteOverloaded) || host != "host-1" {
		t.Fatalf("third call: %v from %q, want overloaded", err, host)
	}
	close(inv.release)
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := Call(callCtx(t), nc, DefaultLattice, "slow", "echo", nil); err != nil {
		t.Fatalf("after the slow calls: %v", err)
	}
	if st := r.Stats(); st.Overloaded != 1 || st.Failed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRPCCloseDrains(t *testing.T) {
	s := startServer(t, ServerOptions{Name: "solo", DontListen: true})
	nc, rpcConn := connect(t, s), connect(t, s)
	Call(callCtx(t), nc, DefaultLattice, "none", "echo", nil) // starts nc's reply subscription
	before := runtime.NumGoroutine()

	inv := &fakeInvoker{release: make(chan struct{}), started: make(chan struct{}, 8)}
	r := NewRPC(rpcConn, DefaultLattice, "host-1", inv, testLogger(t))
	for _, a := range []string{"one", "two"} {
		if err := r.Serve(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Serve("one"); err != nil { // again: no-op
		t.Fatal(err)
	}
	const inFlight = 6
	errs := make(chan error, inFlight)
	for i := range inFlight {
		go func() {
			_, _, err := Call(callCtx(t), nc, DefaultLattice, []string{"one", "two"}[i%2], "wait", nil)
			errs <- err
		}()
	}
	for range inFlight {
		<-inv.started
	}
	r.Close()
	r.Close() // again: no-op
	for range inFlight {
		if err := <-errs; !errors.Is(err, ErrRemoteCanceled) {
			t.Fatalf("in-flight call at Close: %v, want canceled", err)
		}
	}
	if err := r.Serve("three"); !errors.Is(err, ErrRPCClosed) {
		t.Fatalf("Serve after Close: %v", err)
	}
	if _, _, err := Call(callCtx(t), nc, DefaultLattice, "one", "echo", nil); !errors.Is(err, ErrRemoteNotFound) {
		t.Fatalf("call after Close: %v, want not_found", err)
	}
	if !rpcConn.IsConnected() {
		t.Fatal("Close closed the connection it does not own")
	}
	for end := time.Now().Add(waitBound); runtime.NumGoroutine() > before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before Serve:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
	}
}

func TestRPCUnserve(t *testing.T) {
	s := startServer(t, ServerOptions{Name: "solo", DontListen: true})
	r := serveRPC(t, s, "host-1", &fakeInvoker{}, "echo")
	nc := connect(t, s)
	if !callOK(t, nc, "echo") {
		t.Fatal("call before Unserve failed")
	}
	r.Unserve("echo")
	r.Unserve("echo") // again: no-op
	if _, _, err := Call(callCtx(t), nc, DefaultLattice, "echo", "echo", nil); !errors.Is(err, ErrRemoteNotFound) {
		t.Fatalf("call after Unserve: %v", err)
	}
	if err := r.Serve("echo"); err != nil {
		t.Fatal(err)
	}
	if !callOK(t, nc, "echo") {
		t.Fatal("call after serving again failed")
	}
}

func TestRemoteErrorIs(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", &RemoteError{Code: "trap", Message: "unreachable", Host: "h"})
	if !errors.Is(err, ErrRemoteTrap) || errors.Is(err, ErrRemoteGuest) {
		t.Fatal("Is matches by code only")
	}
	if errors.Is(ErrRemoteTrap, &RemoteError{Code: "trap", Message: "x"}) {
		t.Fatal("a RemoteError with a message is not a sentinel")
	}
	if got := err.Error(); got != "wrapped: mesh: call: trap: unreachable (host h)" {
		t.Fatalf("message %q", got)
	}
}

func TestParseTimeout(t *testing.T) {
	for _, tt := range timeoutCases {
		d, ok := parseTimeout(tt.in)
		if d != tt.want || ok != tt.ok {
			t.Errorf("parseTimeout(%q) = %s, %v; want %s, %v", tt.in, d, ok, tt.want, tt.ok)
		}
	}
}

var timeoutCases = []struct {
	in   string
	want time.Duration
	ok   bool
}{
	{"1.5s", 1500 * time.Millisecond, true},
	{"250ms", 250 * time.Millisecond, true},
	{"4999873us", 4999873 * time.Microsecond, true},
	{"0", 0, true},
	{"-3s", 0, true},
	{"1h", MaxCallTimeout, true},
	{"9999999999h", 0, false}, // overflows
	{"", 0, false},
	{"10", 0, false},
	{"s", 0, false},
	{"1.5 s", 0, false},
}

func FuzzParseTimeout(f *testing.F) {
	for _, tt := range timeoutCases {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		d, ok := parseTimeout(in)
		if d < 0 || d > MaxCallTimeout || (!ok && d != 0) {
			t.Fatalf("parseTimeout(%q) = %s, %v", in, d, ok)
		}
	})
}

// The server's operation extraction must agree with ParseRPC on every
// subject its subscriptions can receive.
func checkOperationAgrees(t *testing.T, suffix string) {
	s := &served{prefix: [2]string{"trellis.default.rpc.echo.", "trellis.default.host.H1.rpc.echo."}}
	for _, p := range s.prefix {
		subject := p + suffix
		op, ok := s.operation(subject)
		addr, err := ParseRPC(subject)
		if ok != (err == nil) || (ok && op != addr.Operation) {
			t.Fatalf("subject %q: operation %q, %v; ParseRPC %+v, %v", subject, op, ok, addr, err)
		}
	}
}

var operationCases = []string{"op", "a.b.c", "KeyValue.Increment", "", ".", "a.", ".a", "a..b", "*", "a.>", "a b", "a\tb", "a\x00b", "\xff", "ok*"}

func TestOperationAgreesWithParseRPC(t *testing.T) {
	for _, suffix := range operationCases {
		checkOperationAgrees(t, suffix)
	}
}

func FuzzOperation(f *testing.F) {
	for _, suffix := range operationCases {
		f.Add(suffix)
	}
	f.Fuzz(checkOperationAgrees)
}

func TestRPCCloseAfterConnectionClosed(t *testing.T) {
	s := startServer(t, ServerOptions{Name: "solo", DontListen: true})
	nc := connect(t, s)
	r := NewRPC(nc, DefaultLattice, "host-1", &fakeInvoker{}, nil)
	if err := r.Serve("echo"); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if err := r.Serve("other"); err == nil {
		t.Fatal("Serve on a closed connection succeeded")
	}
	done := make(chan struct{})
	go func() { r.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitBound):
		t.Fatal("Close hangs when the connection is closed")
	}
}

func TestRPCCloseAfterServerShutdown(t *testing.T) {
	s := startServer(t, ServerOptions{Name: "solo", DontListen: true})
	nc := connect(t, s)
	r := NewRPC(nc, DefaultLattice, "host-1", &fakeInvoker{}, nil)
	if err := r.Serve("echo"); err != nil {
		t.Fatal(err)
	}
	shutdown(t, s) // nc is now reconnecting
	done := make(chan struct{})
	go func() { r.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitBound):
		t.Fatal("Close hangs while the connection is reconnecting")
	}
}
