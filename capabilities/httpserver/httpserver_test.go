package httpserver_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/httpserver"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
)

// deadline is how long a test waits for something that should happen.
const deadline = 10 * time.Second

// codedError is an invocation error with a stable code, as the runtime's
// *actor.CallError is.
type codedError struct{ code, msg string }

func (e *codedError) Error() string     { return e.msg }
func (e *codedError) ErrorCode() string { return e.code }

// invocation is one call the server made to the fake agent.
type invocation struct {
	actor, op string
	payload   []byte
}

// recorder is an Invoker standing for the agent: it records calls and
// answers with respond.
type recorder struct {
	mu      sync.Mutex
	calls   []invocation
	respond func(ctx context.Context, actor, op string, payload []byte) ([]byte, error)
}

func (r *recorder) invoke(ctx context.Context, actor, op string, payload []byte) ([]byte, error) {
	r.mu.Lock()
	r.calls = append(r.calls, invocation{actor, op, bytes.Clone(payload)})
	respond := r.respond
	r.mu.Unlock()
	return respond(ctx, actor, op, payload)
}

func (r *recorder) last(t *testing.T) invocation {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		t.Fatal("the actor was not invoked")
	}
	return r.calls[len(r.calls)-1]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// answer returns a responder that always answers resp in era e.
func answer(t *testing.T, e wasmcloud.Era, resp wasmcloud.HTTPResponse) func(context.Context, string, string, []byte) ([]byte, error) {
	t.Helper()
	b, err := wasmcloud.EncodeHTTPResponse(e, resp)
	if err != nil {
		t.Fatal(err)
	}
	return func(context.Context, string, string, []byte) ([]byte, error) { return b, nil }
}

// echo answers 200 with "actor op path" as the body (wasmbus).
func echo(_ context.Context, actor, op string, payload []byte) ([]byte, error) {
	req, err := wasmcloud.DecodeHTTPRequest(wasmcloud.EraWasmbus, payload)
	if err != nil {
		return nil, err
	}
	return wasmcloud.EncodeHTTPResponse(wasmcloud.EraWasmbus, wasmcloud.HTTPResponse{
		StatusCode: 200,
		Body:       []byte(actor + " " + op + " " + req.Path),
	})
}

// newServer returns a Server closed, and checked for leaked goroutines,
// when the test ends.
func newServer(t *testing.T, opts httpserver.Options) *httpserver.Server {
	t.Helper()
	if opts.Invoke == nil {
		opts.Invoke = echo
	}
	s := httpserver.New(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		checkNoLeaks(t)
	})
	return s
}

// checkNoLeaks fails unless every server goroutine ends within the deadline.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "net/http.(*Server).Serve(") || strings.Contains(g, "net/http.(*conn).serve(") ||
				strings.Contains(g, "capabilities/httpserver.(*Server)") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(end) {
			t.Errorf("%d goroutines left after Close:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func grants(routes ...capabilities.HTTPGrant) capabilities.Grants {
	return capabilities.Grants{HTTP: routes}
}

func route(listen, prefix string) capabilities.HTTPGrant {
	return capabilities.HTTPGrant{Listen: listen, PathPrefix: prefix}
}

func bind(t *testing.T, s *httpserver.Server, actor string, g capabilities.Grants) {
	t.Helper()
	if err := s.Bind(actor, g); err != nil {
		t.Fatalf("bind %s: %v", actor, err)
	}
}

// addrOf returns the bound address of an actor's route.
func addrOf(t *testing.T, s *httpserver.Server, actor, prefix string) string {
	t.Helper()
	for _, r := range s.Routes() {
		if r.Actor == actor && r.PathPrefix == prefix {
			return r.Addr
		}
	}
	t.Fatalf("actor %s has no route %s: %+v", actor, prefix, s.Routes())
	return ""
}

// bindOnFreePort binds grants built for a free loopback port, trying
// again when another process takes the port first. It returns host:port.
func bindOnFreePort(t *testing.T, s *httpserver.Server, actor string, build func(listen string) capabilities.Grants) string {
	t.Helper()
	for range 10 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listen := ln.Addr().String()
		ln.Close()
		err = s.Bind(actor, build(listen))
		if err == nil {
			return listen
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("bind %s on %s: %v", actor, listen, err)
		}
	}
	t.Fatal("no free port")
	return ""
}

// result is a response read whole.
type result struct {
	status int
	header http.Header
	body   string
}

// do sends req on a connection of its own and reads the response.
func do(t *testing.T, req *http.Request) result {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}

func get(t *testing.T, url string) result {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

// raw writes a request byte for byte and reads the response.
func raw(t *testing.T, addr, request string) result {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(deadline))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}

// refused waits until nothing accepts connections on addr.
func refused(t *testing.T, addr string) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(end) {
			t.Fatalf("%s still accepts connections", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWasmbusRequestAndResponse(t *testing.T) {
	rec := &recorder{}
	rec.respond = answer(t, wasmcloud.EraWasmbus, wasmcloud.HTTPResponse{
		StatusCode: 201,
		Header:     map[string][]string{"X-Made": {"1", "2"}, "Content-Type": {"text/plain"}},
		Body:       []byte("made"),
	})
	s := newServer(t, httpserver.Options{Invoke: rec.invoke})
	bind(t, s, "counter", grants(route("127.0.0.1:0", "/api/")))
	addr := addrOf(t, s, "counter", "/api/")

	got := raw(t, addr, "POST /api/items/caf%C3%A9?x=1&y=%20 HTTP/1.1\r\nHost: dev.local\r\n"+
		"X-Multi: a\r\nx-multi: b\r\nContent-Length: 5\r\n\r\nhello")
	if got.status != 201 || got.body != "made" || got.header.Get("Content-Type") != "text/plain" ||
		strings.Join(got.header.Values("X-Made"), ",") != "1,2" || got.header.Get(httpserver.ErrorCodeHeader) != "" {
		t.Fatalf("response: %+v", got)
	}

	want, err := wasmcloud.EncodeHTTPRequest(wasmcloud.EraWasmbus, wasmcloud.HTTPRequest{
		Method:      "POST",
		Path:        "/api/items/caf%C3%A9",
		QueryString: "x=1&y=%20",
		Header: map[string][]string{
			"host":           {"dev.local"},
			"x-multi":        {"a", "b"},
			"content-length": {"5"},
		},
		Body: []byte("hello"),
	})
	if err != nil {
		t.Fatal(err)
	}
	call := rec.last(t)
	if call.actor != "counter" || call.op != wasmcloud.OpHandleRequest || !bytes.Equal(call.payload, want) {
		t.Fatalf("invoked %s %s with\n%x\nwant %s\n%x", call.actor, call.op, call.payload, wasmcloud.OpHandleRequest, want)
	}
}

func TestLegacyFormat(t *testing.T) {
	rec := &recorder{}
	rec.respond = answer(t, wasmcloud.Era018, wasmcloud.HTTPResponse{
		StatusCode: 202, Status: "Accepted",
		Header: map[string][]string{"X-Legacy": {"yes"}},
		Body:   []byte("queued"),
	})
	s := newServer(t, httpserver.Options{Invoke: rec.invoke})
	bind(t, s, "old", grants(capabilities.HTTPGrant{Listen: "127.0.0.1:0", PathPrefix: "/", Format: capabilities.FormatLegacy}))
	addr := addrOf(t, s, "old", "/")

	got := raw(t, addr, "GET /status?verbose HTTP/1.1\r\nHost: h\r\nAccept: a\r\nAccept: b\r\n\r\n")
	if got.status != 202 || got.body != "queued" || got.header.Get("X-Legacy") != "yes" {
		t.Fatalf("response: %+v", got)
	}
	want, err := wasmcloud.EncodeHTTPRequest(wasmcloud.Era018, wasmcloud.HTTPRequest{
		Method: "GET", Path: "/status", QueryString: "verbose",
		Header: map[string][]string{"host": {"h"}, "accept": {"a", "b"}}, // joined as "a, b"
		Body:   []byte{},
	})
	if err != nil {
		t.Fatal(err)
	}
	call := rec.last(t)
	if call.op != wasmcloud.OpLegacyHandleRequest || !bytes.Equal(call.payload, want) {
		t.Fatalf("invoked %s with\n%x\nwant %s\n%x", call.op, call.payload, wasmcloud.OpLegacyHandleRequest, want)
	}
	if r := s.Routes(); len(r) != 1 || r[0].Operation != "HandleRequest" || r[0].Format != capabilities.FormatLegacy {
		t.Fatalf("routes: %+v", r)
	}
}

func TestNamedOperation(t *testing.T) {
	rec := &recorder{respond: echo}
	s := newServer(t, httpserver.Options{Invoke: rec.invoke})
	bind(t, s, "a", grants(capabilities.HTTPGrant{Listen: "127.0.0.1:0", PathPrefix: "/", Operation: "Api.Serve"}))
	if got := get(t, "http://"+addrOf(t, s, "a", "/")+"/x"); got.status != 200 || got.body != "a Api.Serve /x" {
		t.Fatalf("response: %+v", got)
	}
}

func TestLongestPrefixWins(t *testing.T) {
	s := newServer(t, httpserver.Options{})
	listen := bindOnFreePort(t, s, "a", func(listen string) capabilities.Grants {
		return grants(
			capabilities.HTTPGrant{Listen: listen, PathPrefix: "/", Operation: "Root"},
			capabilities.HTTPGrant{Listen: listen, PathPrefix: "/api/v2/", Operation: "V2"},
			capabilities.HTTPGrant{Listen: listen, PathPrefix: "/api/", Operation: "API"},
		)
	})
	for path, op := range map[string]string{
		"/":            "Root",
		"/index.html":  "Root",
		"/api":         "Root",
		"/api/":        "API",
		"/api/v1/x":    "API",
		"/api/v2/":     "V2",
		"/api/v2/deep": "V2",
	} {
		if got := get(t, "http://"+listen+path); got.status != 200 || got.body != "a "+op+" "+path {
			t.Errorf("GET %s: %+v, want operation %s", path, got, op)
		}
	}
}

func TestNoRoute(t *testing.T) {
	rec := &recorder{respond: echo}
	s := newServer(t, httpserver.Options{Invoke: rec.invoke})
	bind(t, s, "a", grants(route("127.0.0.1:0", "/api/")))
	got := get(t, "http://"+addrOf(t, s, "a", "/api/")+"/other")
	if got.status != 404 || got.header.Get(httpserver.ErrorCodeHeader) != httpserver.CodeNoRoute ||
		!strings.HasPrefix(got.header.Get("Content-Type"), "text/plain") || rec.count() != 0 {
		t.Fatalf("response: %+v, %d invocations", got, rec.count())
	}
	if st := s.Stats(); st.Requests != 1 || st.NoRoute != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestBodyLimit(t *testing.T) {
	rec := &recorder{respond: echo}
	s := newServer(t, httpserver.Options{Invoke: rec.invoke, MaxBody: 16})
	bind(t, s, "a", grants(route("127.0.0.1:0", "/")))
	addr := addrOf(t, s, "a", "/")
	tests := []struct {
		name    string
		request string
		status  int
	}{
		{"at the limit", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 16\r\n\r\n" + strings.Repeat("x", 16), 200},
		{"declared over", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 17\r\n\r\n" + strings.Repeat("x", 17), 413},
		{"chunked over", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n" + strings.Repeat("x", 17) + "\r\n0\r\n\r\n", 413},
		{"chunked at the limit", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + strings.Repeat("x", 16) + "\r\n0\r\n\r\n", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := rec.count()
			got := raw(t, addr, tt.request)
			if got.status != tt.status {
				t.Fatalf("status %d, want %d: %+v", got.status, tt.status, got)
			}
			if tt.status == 413 && (got.header.Get(httpserver.ErrorCodeHeader) != httpserver.CodeTooLarge || rec.count() != before) {
				t.Fatalf("413 without its code or after invoking the actor: %+v", got)
			}
		})
	}
	if st := s.Stats(); st.TooLarge != 2 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestInvocationErrors(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		body   string
		status int
		code   string
	}{
		{"overloaded", &codedError{"overloaded", "actor a: HttpServer.HandleRequest: no instance free"}, "", 503, "overloaded"},
		{"timeout", &codedError{"timeout", "actor a: deadline"}, "", 504, "timeout"},
		{"not running", &codedError{"not_found", "actor a: not found"}, "", 503, "not_found"},
		{"request over the actor's limit", &codedError{"limit", "request of 9 bytes over the limit of 4"}, "123456789", 413, "limit"},
		{"memory limit", &codedError{"limit", "trapped with memory at its limit"}, "", 500, "limit"},
		{"guest error", &codedError{"guest_error", "actor a: boom"}, "", 500, "guest_error"},
		{"wrapped", fmt.Errorf("agent: %w", &codedError{"timeout", "slow"}), "", 504, "timeout"},
		{"no code", errors.New("something broke"), "", 500, httpserver.CodeInternal},
		{"context deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), "", 504, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, httpserver.Options{Invoke: func(context.Context, string, string, []byte) ([]byte, error) {
				return nil, tt.err
			}})
			bind(t, s, "a", grants(route("127.0.0.1:0", "/")))
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addrOf(t, s, "a", "/")+"/", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			got := do(t, req)
			if got.status != tt.status || got.header.Get(httpserver.ErrorCodeHeader) != tt.code || !strings.Contains(got.body, tt.err.Error()) {
				t.Fatalf("got %d %q %q, want %d %q with the message %q", got.status, got.header.Get(httpserver.ErrorCodeHeader), got.body, tt.status, tt.code, tt.err)
			}
		})
	}
}

func TestBadResponses(t *testing.T) {
	enc := func(e wasmcloud.Era, code uint16) []byte {
		b, err := wasmcloud.EncodeHTTPResponse(e, wasmcloud.HTTPResponse{StatusCode: code, Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name   string
		format string
		answer []byte
		status int
	}{
		{"empty", "", nil, 502},
		{"not msgpack", "", []byte("<html>"), 502},
		{"no statusCode", "", []byte{0x81, 0xa4, 'b', 'o', 'd', 'y', 0xc4, 0x01, 'x'}, 502},
		{"legacy shape to wasmbus", "", enc(wasmcloud.Era018, 200), 200}, // status and u32 decode as wasmbus too
		{"status 0", "", enc(wasmcloud.EraWasmbus, 0), 502},
		{"status 101", "", enc(wasmcloud.EraWasmbus, 101), 502},
		{"status 600", "", enc(wasmcloud.EraWasmbus, 600), 502},
		{"status 599", "", enc(wasmcloud.EraWasmbus, 599), 599},
		{"legacy status 70000", capabilities.FormatLegacy, []byte{0x81, 0xaa, 's', 't', 'a', 't', 'u', 's', 'C', 'o', 'd', 'e', 0xce, 0, 1, 0x11, 0x70}, 502},
		{"trailing zero", "", append(enc(wasmcloud.EraWasmbus, 200), 0), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, httpserver.Options{Invoke: func(context.Context, string, string, []byte) ([]byte, error) {
				return tt.answer, nil
			}})
			bind(t, s, "a", grants(capabilities.HTTPGrant{Listen: "127.0.0.1:0", PathPrefix: "/", Format: tt.format}))
			got := get(t, "http://"+addrOf(t, s, "a", "/")+"/")
			if got.status != tt.status {
				t.Fatalf("status %d, want %d: %+v", got.status, tt.status, got)
			}
			if tt.status == 502 && (got.header.Get(httpserver.ErrorCodeHeader) != httpserver.CodeBadResponse || !strings.Contains(got.body, "HttpResponse")) {
				t.Fatalf("502 without its code or message: %+v", got)
			}
		})
	}
}

func TestResponseHeaderFiltering(t *testing.T) {
	rec := &recorder{}
	rec.respond = answer(t, wasmcloud.EraWasmbus, wasmcloud.HTTPResponse{
		StatusCode: 200,
		Header: map[string][]string{
			"Content-Length":     {"999"},
			"Transfer-Encoding":  {"chunked"},
			"Bad Name":           {"x"},
			"X-Split":            {"a\r\nInjected: yes"},
			"Trellis-Error-Code": {"fake"},
			"x-kept":             {"ok"},
		},
		Body: []byte("<html><body>hi</body></html>"),
	})
	s := newServer(t, httpserver.Options{Invoke: rec.invoke})
	bind(t, s, "a", grants(route("127.0.0.1:0", "/")))
	got := get(t, "http://"+addrOf(t, s, "a", "/")+"/")
	if got.status != 200 || got.body != "<html><body>hi</body></html>" || got.header.Get("X-Kept") != "ok" {
		t.Fatalf("response: %+v", got)
	}
	for _, h := range []string{"Injected", "X-Split", "Bad Name", httpserver.ErrorCodeHeader, "Content-Type"} {
		if v, ok := got.header[http.CanonicalHeaderKey(h)]; ok {
			t.Errorf("header %s: %q, want none", h, v)
		}
	}
}

func TestPanicIsContained(t *testing.T) {
	var n atomic.Int32
	s := newServer(t, httpserver.Options{Invoke: func(ctx context.Context, actor, op string, p []byte) ([]byte, error) {
		if n.Add(1) == 1 {
			panic("invoker bug")
		}
		return echo(ctx, actor, op, p)
	}})
	bind(t, s, "a", grants(route("127.0.0.1:0", "/")))
	url := "http://" + addrOf(t, s, "a", "/") + "/"
	if got := get(t, url); got.status != 500 || got.header.Get(httpserver.ErrorCodeHeader) != httpserver.CodeInternal {
		t.Fatalf("after a panic: %+v", got)
	}
	if got := get(t, url); got.status != 200 {
		t.Fatalf("the server does not serve after a panic: %+v", got)
	}
}

func TestRebindSameGrantsKeepsListener(t *testing.T) {
	var started atomic.Int32
	s := newServer(t, httpserver.Options{Started: func(r httpserver.Route, addr net.Addr) { started.Add(1) }})
	g := grants(route("127.0.0.1:0", "/a/"), route("127.0.0.1:0", "/b/"))
	bind(t, s, "a", g)
	before := s.Routes()
	for range 3 {
		bind(t, s, "a", g)
	}
	after := s.Routes()
	if fmt.Sprint(before) != fmt.Sprint(after) || len(after) != 2 {
		t.Fatalf("routes changed: %+v, then %+v", before, after)
	}
	if n := started.Load(); n != 2 {
		t.Fatalf("Started called %d times, want 2 (once per route)", n)
	}
	if after[0].Addr == after[1].Addr {
		t.Fatalf("port-0 routes share %s", after[0].Addr)
	}
}

func TestRebindChangesOperationInPlace(t *testing.T) {
	s := newServer(t, httpserver.Options{})
	listen := bindOnFreePort(t, s, "a", func(listen string) capabilities.Grants {
		return grants(capabilities.HTTPGrant{Listen: listen, PathPrefix: "/", Operation: "One"})
	})
	addr := addrOf(t, s, "a", "/")
	bind(t, s, "a", grants(capabilities.HTTPGrant{Listen: listen, PathPrefix: "/", Operation: "Two"}))
	if got := addrOf(t, s, "a", "/"); got != addr {
		t.Fatalf("listener moved from %s to %s", addr, got)
	}
	if got := get(t, "http://"+addr+"/"); got.body != "a Two /" {
		t.Fatalf("response: %+v", got)
	}
}

func TestRemovedRouteClosesItsListener(t *testing.T) {
	s := newServer(t, httpserver.Options{})
	bind(t, s, "a", grants(route("127.0.0.1:0", "/keep/"), route("127.0.0.1:0", "/drop/")))
	keep, drop := addrOf(t, s, "a", "/keep/"), addrOf(t, s, "a", "/drop/")
	bind(t, s, "a", grants(route("127.0.0.1:0", "/keep/")))
	refused(t, drop)
	if got := get(t, "http://"+keep+"/keep/x"); got.status != 200 {
		t.Fatalf("kept route: %+v", got)
	}
	if r := s.Routes(); len(r) != 1 || r[0].Addr != keep {
		t.Fatalf("routes: %+v", r)
	}
}

func TestListenFailureKeepsOldRoutes(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	s := newServer(t, httpserver.Options{})
	bind(t, s, "a", grants(route("127.0.0.1:0", "/old/")))
	before := s.Routes()
	for _, g := range []capabilities.Grants{
		grants(route("127.0.0.1:0", "/old/"), route(busy.Addr().String(), "/new/")), // adds
		grants(route(busy.Addr().String(), "/new/")),                                // replaces
	} {
		err := s.Bind("a", g)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || !errors.Is(err, capabilities.ErrUnavailable) {
			t.Fatalf("bind on a busy port: %v", err)
		}
		for _, want := range []string{"actor a", "/new/", busy.Addr().String()} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
		if after := s.Routes(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("routes changed by a failed bind: %+v, then %+v", before, after)
		}
		if got := get(t, "http://"+before[0].Addr+"/old/"); got.status != 200 {
			t.Fatalf("old route after a failed bind: %+v", got)
		}
	}
}

func TestActorsShareAListener(t *testing.T) {
	var started sync.Map
	s := newServer(t, httpserver.Options{Started: func(r httpserver.Route, addr net.Addr) { started.Store(r.Actor, addr.String()) }})
	listen := bindOnFreePort(t, s, "a", func(listen string) capabilities.Grants { return grants(route(listen, "/a/")) })
	bind(t, s, "b", grants(route(listen, "/b/")))
	if addrOf(t, s, "a", "/a/") != listen || addrOf(t, s, "b", "/b/") != listen {
		t.Fatalf("routes: %+v", s.Routes())
	}
	if a, _ := started.Load("a"); a != listen {
		t.Fatalf("Started told a of %v", a)
	}
	for _, who := range []string{"a", "b"} {
		if got := get(t, "http://"+listen+"/"+who+"/x"); got.body != who+" HttpServer.HandleRequest /"+who+"/x" {
			t.Fatalf("GET /%s/x: %+v", who, got)
		}
	}
	s.Unbind("a")
	if got := get(t, "http://"+listen+"/a/x"); got.status != 404 {
		t.Fatalf("unbound route: %+v", got)
	}
	if got := get(t, "http://"+listen+"/b/x"); got.status != 200 {
		t.Fatalf("the other actor's route: %+v", got)
	}
	s.Unbind("b")
	refused(t, listen)
}

func TestConflictingPrefixRefused(t *testing.T) {
	s := newServer(t, httpserver.Options{})
	listen := bindOnFreePort(t, s, "a", func(listen string) capabilities.Grants { return grants(route(listen, "/api/")) })
	for _, prefix := range []string{"/api/", "/api/v2/", "/"} {
		err := s.Bind("b", grants(route("127.0.0.1:0", "/free/"), route(listen, prefix)))
		if !errors.Is(err, capabilities.ErrDenied) || !strings.Contains(err.Error(), "actor a") || !strings.Contains(err.Error(), prefix) {
			t.Fatalf("prefix %s over actor a's /api/: %v", prefix, err)
		}
		if r := s.Routes(); len(r) != 1 || r[0].Actor != "a" {
			t.Fatalf("routes after a refused bind: %+v", r)
		}
	}
	bind(t, s, "b", grants(route(listen, "/other/"))) // no overlap
	if got := get(t, "http://"+listen+"/api/x"); got.body != "a HttpServer.HandleRequest /api/x" {
		t.Fatalf("actor a's route: %+v", got)
	}
}

func TestBadGrantsRefused(t *testing.T) {
	s := newServer(t, httpserver.Options{})
	for _, g := range []capabilities.HTTPGrant{
		{Listen: "nope", PathPrefix: "/"},
		{Listen: "127.0.0.1:0", PathPrefix: "api"},
		{Listen: "127.0.0.1:0", PathPrefix: "/", Format: "xml"},
	} {
		if err := s.Bind("a", grants(g)); err == nil || !strings.Contains(err.Error(), "grants: http[0]") {
			t.Errorf("bind %+v: %v", g, err)
		}
	}
	dup := grants(capabilities.HTTPGrant{Listen: "127.0.0.1:8080", PathPrefix: "/", Operation: "A"}, capabilities.HTTPGrant{Listen: "127.0.0.1:8080", PathPrefix: "/", Operation: "B"})
	if err := s.Bind("a", dup); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("bind of one route with two operations on one address: %v", err)
	}
	if r := s.Routes(); len(r) != 0 {
		t.Fatalf("routes: %+v", r)
	}
	// On port 0 each route has a listener of its own, so one prefix may be
	// served twice (a wasmbus and a legacy route, say).
	bind(t, s, "a", grants(capabilities.HTTPGrant{Listen: "127.0.0.1:0", PathPrefix: "/", Operation: "A"}, capabilities.HTTPGrant{Listen: "127.0.0.1:0", PathPrefix: "/", Operation: "B"}))
	if r := s.Routes(); len(r) != 2 || r[0].Addr == r[1].Addr {
		t.Fatalf("two port-0 routes with one prefix: %+v", r)
	}
}

func TestUnbind(t *testing.T) {
	s := newServer(t, httpserver.Options{})
	bind(t, s, "a", grants(route("127.0.0.1:0", "/")))
	addr := addrOf(t, s, "a", "/")
	s.Unbind("a")
	s.Unbind("a")
	s.Unbind("never-bound")
	refused(t, addr)
	if r := s.Routes(); len(r) != 0 {
		t.Fatalf("routes: %+v", r)
	}
	bind(t, s, "a", grants(route("127.0.0.1:0", "/"))) // bound again
	if got := get(t, "http://"+addrOf(t, s, "a", "/")+"/"); got.status != 200 {
		t.Fatalf("after a new bind: %+v", got)
	}
}

func TestDispatcherBindsTheServer(t *testing.T) {
	s := newServer(t, httpserver.Options{})
	d := capabilities.NewDispatcher(capabilities.DispatcherOptions{})
	for _, ns := range httpserver.Namespaces() {
		d.Register(ns, s)
	}
	if err := d.SetGrants("a", grants(route("127.0.0.1:0", "/"))); err != nil {
		t.Fatal(err)
	}
	if got := get(t, "http://"+addrOf(t, s, "a", "/")+"/x"); got.status != 200 {
		t.Fatalf("response: %+v", got)
	}
	for _, ns := range httpserver.Namespaces() {
		_, err := d.Dispatch(t.Context(), capabilities.Call{Actor: "a", Contract: ns, Operation: "HandleRequest"})
		if !errors.Is(err, capabilities.ErrUnknownOperation) || !strings.Contains(err.Error(), "HandleRequest") {
			t.Errorf("%s HandleRequest: %v", ns, err)
		}
	}
	d.RemoveGrants("a")
	if r := s.Routes(); len(r) != 0 {
		t.Fatalf("routes after RemoveGrants: %+v", r)
	}
}

func TestCloseWaitsForRequestsInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	s := httpserver.New(httpserver.Options{Invoke: func(ctx context.Context, actor, op string, p []byte) ([]byte, error) {
		close(entered)
		<-release
		return echo(ctx, actor, op, p)
	}})
	bind(t, s, "a", grants(route("127.0.0.1:0", "/")))
	addr := addrOf(t, s, "a", "/")
	resp := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/slow", nil)
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		r, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			resp <- result{body: err.Error()}
			return
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		resp <- result{status: r.StatusCode, body: string(b)}
	}()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- s.Close(context.Background()) }()
	refused(t, addr) // Close has begun: no new connections
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	if got := <-resp; got.status != 200 || got.body != "a HttpServer.HandleRequest /slow" {
		t.Fatalf("request in flight: %+v", got)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(deadline):
		t.Fatal("Close did not return")
	}
	if err := s.Bind("b", grants(route("127.0.0.1:0", "/"))); !errors.Is(err, capabilities.ErrUnavailable) {
		t.Fatalf("bind after close: %v", err)
	}
	checkNoLeaks(t)
}

func TestCloseCutsOffWhenContextEnds(t *testing.T) {
	entered := make(chan struct{})
	sawCancel := make(chan error, 1)
	s := httpserver.New(httpserver.Options{Invoke: func(ctx context.Context, actor, op string, p []byte) ([]byte, error) {
		close(entered)
		<-ctx.Done()
		sawCancel <- ctx.Err()
		return nil, ctx.Err()
	}})
	bind(t, s, "a", grants(route("127.0.0.1:0", "/")))
	addr := addrOf(t, s, "a", "/")
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		if r, err := (&http.Client{Transport: tr}).Get("http://" + addr + "/"); err == nil {
			r.Body.Close()
		}
	}()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("close with an ended context: %v", err)
	}
	if err := <-sawCancel; err == nil {
		t.Fatal("the invocation's context did not end")
	}
	<-done
	if err := s.Close(context.Background()); err != nil { // again: nothing left
		t.Fatalf("second close: %v", err)
	}
	checkNoLeaks(t)
}

func TestConcurrentRequestsAndBinds(t *testing.T) {
	s := newServer(t, httpserver.Options{})
	listen := bindOnFreePort(t, s, "a", func(listen string) capabilities.Grants {
		return grants(route(listen, "/a/"), route(listen, "/a/deep/"))
	})
	bind(t, s, "b", grants(route(listen, "/b/")))
	stop := make(chan struct{})
	var churn sync.WaitGroup
	churn.Go(func() { // actor c's routes come and go meanwhile
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				_ = s.Bind("c", grants(route(listen, "/c/"), route("127.0.0.1:0", "/c/")))
			} else {
				s.Unbind("c")
			}
			_ = s.Routes()
			_ = s.Stats()
		}
	})
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			for j := range 20 {
				path := fmt.Sprintf("/%s/%d/%d", []string{"a", "b", "a/deep"}[(i+j)%3], i, j)
				resp, err := client.Get("http://" + listen + path)
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				actor := path[1:2]
				if resp.StatusCode != 200 || string(b) != actor+" HttpServer.HandleRequest "+path {
					errs <- fmt.Errorf("GET %s: %d %q", path, resp.StatusCode, b)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	churn.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := s.Stats(); st.Requests != 32*20 {
		t.Fatalf("stats: %+v", st)
	}
}
