//go:build !wasip1

package sdk

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unsafe"
)

// fakeHost is a waPC host in Go: it plays the host's half of the ABI
// against the native stand-ins of the wasm imports.
type fakeHost struct {
	op      string
	payload []byte

	response []byte // set by __guest_response
	guestErr string // set by __guest_error

	// answer is called for each host call; a non-nil error becomes the host error.
	answer   func(binding, namespace, operation string, payload []byte) ([]byte, error)
	calls    []string // "binding namespace operation payload" of each host call
	hostResp []byte
	hostErr  string

	console []string
}

func (f *fakeHost) guestRequest(op, payload *byte) {
	copy(unsafe.Slice(op, len(f.op)), f.op)
	copy(unsafe.Slice(payload, len(f.payload)), f.payload)
}

func (f *fakeHost) guestResponse(ptr *byte, n uint32) {
	f.response = bytes.Clone(unsafe.Slice(ptr, n))
}

func (f *fakeHost) guestError(msg string) { f.guestErr = msg }

func (f *fakeHost) hostCall(binding, namespace, operation string, payload *byte, n uint32) uint32 {
	p := bytes.Clone(unsafe.Slice(payload, n))
	f.calls = append(f.calls, binding+" "+namespace+" "+operation+" "+string(p))
	f.hostResp, f.hostErr = nil, ""
	if f.answer == nil {
		return 1
	}
	res, err := f.answer(binding, namespace, operation, p)
	if err != nil {
		f.hostErr = err.Error()
		return 0
	}
	f.hostResp = res
	return 1
}

func (f *fakeHost) hostResponseLen() uint32 { return uint32(len(f.hostResp)) }
func (f *fakeHost) hostResponse(ptr *byte) {
	copy(unsafe.Slice(ptr, len(f.hostResp)), f.hostResp)
}
func (f *fakeHost) hostErrorLen() uint32 { return uint32(len(f.hostErr)) }
func (f *fakeHost) hostError(ptr *byte)  { copy(unsafe.Slice(ptr, len(f.hostErr)), f.hostErr) }
func (f *fakeHost) consoleLog(msg string) {
	f.console = append(f.console, msg)
}

// call makes one __guest_call the way a host does.
func (f *fakeHost) call(op string, payload []byte) (ok bool) {
	f.op, f.payload, f.response, f.guestErr = op, payload, nil, ""
	return guestCall(uint32(len(op)), uint32(len(payload))) == 1
}

// setup installs a fake host and an empty handler table for one test.
func setup(t testing.TB) *fakeHost {
	t.Helper()
	f := &fakeHost{}
	oldHost, oldRoutes := nativeHost, routes
	nativeHost, routes = f, nil
	t.Cleanup(func() { nativeHost, routes = oldHost, oldRoutes; inCall = false })
	return f
}

func echo(p []byte) ([]byte, error) { return p, nil }

func TestDispatch(t *testing.T) {
	long := strings.Repeat("x", 1000)
	big := bytes.Repeat([]byte("0123456789"), 10_000) // larger than maxKeptPayload
	tests := []struct {
		name     string
		op       string
		payload  []byte
		ok       bool
		response string
		guestErr string
	}{
		{name: "echo", op: "echo", payload: []byte("hello"), ok: true, response: "hello"},
		{name: "empty payload", op: "echo", ok: true, response: ""},
		{name: "payload over the kept buffer", op: "echo", payload: big, ok: true, response: string(big)},
		{name: "long operation name", op: long, payload: []byte("p"), ok: true, response: "long:p"},
		{name: "handler error", op: "fail", payload: []byte("boom"), guestErr: "fail: boom"},
		{name: "empty error text", op: "silent", guestErr: `sdk: operation "silent" failed with an empty error`},
		{name: "unknown operation", op: "nope", guestErr: `sdk: unknown operation "nope"`},
		{name: "empty operation", op: "", guestErr: `sdk: unknown operation ""`},
		{name: "prefix of an operation", op: "ech", guestErr: `sdk: unknown operation "ech"`},
	}
	f := setup(t)
	Handle("echo", echo)
	Handle("fail", func(p []byte) ([]byte, error) { return nil, errors.New("fail: " + string(p)) })
	Handle("silent", func([]byte) ([]byte, error) { return nil, errors.New("") })
	Handle(long, func(p []byte) ([]byte, error) { return append([]byte("long:"), p...), nil })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok := f.call(tt.op, tt.payload)
			if ok != tt.ok || string(f.response) != tt.response || f.guestErr != tt.guestErr {
				t.Errorf("call(%.20q) = %v, response %.20q, guest error %q; want %v, %.20q, %q",
					tt.op, ok, f.response, f.guestErr, tt.ok, tt.response, tt.guestErr)
			}
		})
	}
}

func TestNoHandlers(t *testing.T) {
	f := setup(t)
	if f.call("echo", nil) {
		t.Fatal("call succeeded with no handlers")
	}
	if !strings.Contains(f.guestErr, `"echo"`) || !strings.Contains(f.guestErr, "init") {
		t.Errorf("guest error %q should name the operation and point to init functions", f.guestErr)
	}
}

// The payload buffer is reused: a handler sees exactly its own call's
// bytes, whatever the previous payload was, and a payload kept past its
// call is overwritten (which Handler documents).
func TestPayloadReuse(t *testing.T) {
	f := setup(t)
	var seen []string
	var kept []byte
	Handle("keep", func(p []byte) ([]byte, error) {
		seen = append(seen, string(p))
		if kept == nil {
			kept = p
		}
		return p, nil
	})
	payloads := []string{"a long first payload", "short", "", "mid size"}
	for _, p := range payloads {
		if !f.call("keep", []byte(p)) || string(f.response) != p {
			t.Fatalf("call(keep, %q): response %q, guest error %q", p, f.response, f.guestErr)
		}
	}
	if strings.Join(seen, "|") != strings.Join(payloads, "|") {
		t.Errorf("handlers saw %q, want %q", seen, payloads)
	}
	if string(kept) == payloads[0] {
		t.Errorf("kept payload still %q: the buffer was not reused", kept)
	}
}

func TestPanicIsNotRecovered(t *testing.T) {
	f := setup(t)
	Handle("panic", func([]byte) ([]byte, error) { panic("boom") })
	defer func() {
		if v := recover(); v != "boom" {
			t.Errorf("recovered %v, want the handler's own panic value", v)
		}
	}()
	f.call("panic", nil)
	t.Error("call returned after a handler panic")
}

func TestReentrantCallTraps(t *testing.T) {
	f := setup(t)
	Handle("outer", func([]byte) ([]byte, error) {
		f.call("outer", nil) // what a host does if it re-enters the instance
		return nil, nil
	})
	defer func() {
		v := recover()
		if v == nil || !strings.Contains(f.guestErr, "re-entrant") {
			t.Errorf("recovered %v with guest error %q; want a re-entrancy panic", v, f.guestErr)
		}
	}()
	f.call("outer", nil)
	t.Error("re-entrant call returned")
}

func TestHandlePanics(t *testing.T) {
	tests := []struct {
		name string
		op   string
		h    Handler
		want string
	}{
		{name: "empty operation", op: "", h: echo, want: "empty operation"},
		{name: "nil handler", op: "x", h: nil, want: "nil handler"},
		{name: "duplicate", op: "echo", h: echo, want: "registered twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setup(t)
			Handle("echo", echo)
			defer func() {
				v, _ := recover().(string)
				if !strings.Contains(v, tt.want) {
					t.Errorf("panic %q, want it to contain %q", v, tt.want)
				}
			}()
			Handle(tt.op, tt.h)
		})
	}
}

func TestHostCall(t *testing.T) {
	tests := []struct {
		name      string
		call      func() ([]byte, error)
		answer    func(binding, namespace, operation string, payload []byte) ([]byte, error)
		wantCall  string
		want      []byte
		wantError string
	}{
		{
			name:     "response",
			call:     func() ([]byte, error) { return HostCall("b", "ns", "op", []byte("in")) },
			answer:   func(_, _, _ string, p []byte) ([]byte, error) { return append([]byte("re:"), p...), nil },
			wantCall: "b ns op in",
			want:     []byte("re:in"),
		},
		{
			name:     "empty response is nil",
			call:     func() ([]byte, error) { return HostCall("default", "ns", "op", nil) },
			answer:   func(_, _, _ string, _ []byte) ([]byte, error) { return nil, nil },
			wantCall: "default ns op ",
		},
		{
			name:      "host error",
			call:      func() ([]byte, error) { return CallActor("other", "op", []byte("x")) },
			answer:    func(_, _, _ string, _ []byte) ([]byte, error) { return nil, errors.New("no actor named other") },
			wantCall:  "default other op x",
			wantError: "sdk: host call other/op: no actor named other",
		},
		{
			name:      "host error without text",
			call:      func() ([]byte, error) { return HostCall("default", "ns", "op", nil) },
			answer:    func(_, _, _ string, _ []byte) ([]byte, error) { return nil, errors.New("") },
			wantCall:  "default ns op ",
			wantError: "sdk: host call ns/op: host call failed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			f.answer = tt.answer
			got, err := tt.call()
			if len(f.calls) != 1 || f.calls[0] != tt.wantCall {
				t.Errorf("host saw %q, want %q", f.calls, tt.wantCall)
			}
			if !bytes.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("response %q, want %q", got, tt.want)
			}
			if tt.wantError == "" {
				if err != nil {
					t.Errorf("error %v", err)
				}
				return
			}
			var he *HostError
			if !errors.As(err, &he) || err.Error() != tt.wantError {
				t.Errorf("error %v, want *HostError %q", err, tt.wantError)
			}
		})
	}
}

func TestLog(t *testing.T) {
	f := setup(t)
	Log("plain")
	Debug("d")
	Info("i")
	Warn("w")
	Error("e")
	want := []string{"default trellis:log debug d", "default trellis:log info i", "default trellis:log warn w", "default trellis:log error e"}
	if strings.Join(f.calls, "|") != strings.Join(want, "|") {
		t.Errorf("host calls %q, want %q", f.calls, want)
	}
	if len(f.console) != 1 || f.console[0] != "plain" {
		t.Errorf("console log %q, want [plain]", f.console)
	}
}

func TestLogFallsBackToConsole(t *testing.T) {
	f := setup(t)
	f.answer = func(_, _, _ string, _ []byte) ([]byte, error) { return nil, errors.New("unknown namespace") }
	Warn("careful")
	if len(f.console) != 1 || f.console[0] != "warn: careful" {
		t.Errorf("console log %q, want [warn: careful]", f.console)
	}
}

// Without a host (a native build outside the tests) host calls fail
// cleanly instead of crashing.
func TestNoHost(t *testing.T) {
	if _, err := HostCall("default", "ns", "op", nil); err == nil || !strings.Contains(err.Error(), "not running in a waPC host") {
		t.Errorf("HostCall without a host: %v", err)
	}
}

func TestCallPathAllocations(t *testing.T) {
	f := setup(t)
	Handle("other", echo)
	Handle("echo", echo)
	payload := bytes.Repeat([]byte("p"), 1000)
	f.payload, f.op = payload, "echo"
	allocs := testing.AllocsPerRun(100, func() {
		guestCall(uint32(len(f.op)), uint32(len(f.payload)))
	})
	// The fake host clones the response: that is the only allocation.
	if allocs > 1 {
		t.Errorf("%v allocations per echo call, want at most the fake host's 1", allocs)
	}
}

func BenchmarkEcho(b *testing.B) {
	f := setup(b)
	Handle("echo", echo)
	f.op, f.payload = "echo", []byte("hello")
	b.ReportAllocs()
	for b.Loop() {
		guestCall(4, 5)
	}
}

// FuzzDispatch feeds arbitrary operations and payloads through the ABI: an
// echo handler must return the payload exactly, anything else must be an
// unknown-operation error, and nothing may panic.
func FuzzDispatch(f *testing.F) {
	f.Add("echo", []byte("hello"))
	f.Add("echo", []byte{})
	f.Add("", []byte("x"))
	f.Add("ech\x00", bytes.Repeat([]byte{0xff}, maxKeptPayload+1))
	f.Fuzz(func(t *testing.T, op string, payload []byte) {
		h := setup(t)
		Handle("echo", echo)
		ok := h.call(op, payload)
		switch {
		case op == "echo":
			if !ok || !bytes.Equal(h.response, payload) {
				t.Fatalf("echo %q: ok %v response %q error %q", payload, ok, h.response, h.guestErr)
			}
		case ok || !strings.HasPrefix(h.guestErr, "sdk: unknown operation "):
			t.Fatalf("op %q: ok %v error %q", op, ok, h.guestErr)
		}
	})
}
