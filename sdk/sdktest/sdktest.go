//go:build !wasip1

// Package sdktest runs a Go actor natively, in ordinary Go tests, against a
// fake waPC host: the test serves the host calls the actor makes (answering
// them itself, or passing them to real host code) and calls the actor's
// operations as the host would. The actor's code runs unchanged, through
// the same SDK calls it makes in wasm.
//
//	func TestCounter(t *testing.T) {
//		h := sdktest.New(t)
//		h.Serve("trellis:kv", func(op string, payload []byte) ([]byte, error) {
//			// decode payload, answer like the host
//		})
//		resp, err := h.Invoke("HttpServer.HandleRequest", request)
//		...
//	}
//
// The SDK keeps one host and one table of handlers per process, as a wasm
// instance does: a test that uses a Host must not run in parallel with
// another one. Handlers registered in init functions stay registered;
// handlers registered during a test are dropped when it ends.
//
// The package exists in native builds only.
package sdktest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unsafe"

	_ "github.com/trellis-edge/trellis/sdk" // sets the nativeabi hooks
	"github.com/trellis-edge/trellis/sdk/internal/nativeabi"
)

// LogNamespace is the namespace of the SDK's leveled logging (sdk.Info and
// the others). Unless a test serves it, a Host records its lines in Logs
// and accepts them.
const LogNamespace = "trellis:log"

// HostFunc answers the host calls to one namespace: a response, or an error
// whose text the actor receives.
type HostFunc func(operation string, payload []byte) ([]byte, error)

// Call is one host call an actor made.
type Call struct {
	Binding, Namespace, Operation string
	Payload                       []byte
}

// Host is a fake waPC host. It is not safe for concurrent use (neither is
// a wasm instance).
type Host struct {
	serve map[string]HostFunc

	// Calls are the host calls made so far, trellis:log ones included, in
	// order.
	Calls []Call
	// Logs are the lines logged through trellis:log, as "level: text".
	Logs []string
	// Console holds the lines written with sdk.Log (__console_log).
	Console []string

	// The call in progress.
	op, payload []byte
	response    []byte
	guestErr    string

	// The last host call's answer.
	hostResp []byte
	hostErr  string
}

// New installs a new fake host for the rest of the test.
func New(t testing.TB) *Host {
	t.Helper()
	h := &Host{serve: map[string]HostFunc{}}
	restore := nativeabi.Install((*hostABI)(h))
	t.Cleanup(restore)
	return h
}

// Serve answers the host calls to namespace with f, replacing what served
// it before. A call to a namespace nobody serves fails with an error that
// says it is denied, as a real host says of a capability without a grant.
func (h *Host) Serve(namespace string, f HostFunc) { h.serve[namespace] = f }

// CallsTo returns the calls made to namespace, in order.
func (h *Host) CallsTo(namespace string) []Call {
	var out []Call
	for _, c := range h.Calls {
		if c.Namespace == namespace {
			out = append(out, c)
		}
	}
	return out
}

// Invoke calls the actor's operation with payload, as the host's
// __guest_call does, and returns its response or its error. A handler
// panic propagates to the test.
func (h *Host) Invoke(operation string, payload []byte) ([]byte, error) {
	h.op, h.payload = []byte(operation), payload
	h.response, h.guestErr = nil, ""
	ok := nativeabi.GuestCall(uint32(len(h.op)), uint32(len(h.payload))) == 1
	if !ok {
		msg := h.guestErr
		if msg == "" {
			msg = "guest call failed without an error"
		}
		return nil, &GuestError{Operation: operation, Message: msg}
	}
	return h.response, nil
}

// GuestError is an operation that returned an error.
type GuestError struct {
	Operation string
	Message   string // the actor's error text
}

func (e *GuestError) Error() string { return "sdktest: " + e.Operation + ": " + e.Message }

// hostABI is the host's half of the waPC ABI, kept off Host's API.
type hostABI Host

func (h *hostABI) GuestRequest(operation, payload *byte) {
	copy(unsafe.Slice(operation, len(h.op)), h.op)
	copy(unsafe.Slice(payload, len(h.payload)), h.payload)
}

func (h *hostABI) GuestResponse(ptr *byte, n uint32) {
	h.response = bytes.Clone(unsafe.Slice(ptr, n))
	if h.response == nil {
		h.response = []byte{}
	}
}

func (h *hostABI) GuestError(msg string) { h.guestErr = strings.Clone(msg) }

func (h *hostABI) HostCall(binding, namespace, operation string, payload *byte, n uint32) uint32 {
	c := Call{
		Binding: strings.Clone(binding), Namespace: strings.Clone(namespace), Operation: strings.Clone(operation),
		Payload: bytes.Clone(unsafe.Slice(payload, n)),
	}
	h.Calls = append(h.Calls, c)
	h.hostResp, h.hostErr = nil, ""
	f, ok := h.serve[c.Namespace]
	var err error
	switch {
	case ok:
		h.hostResp, err = f(c.Operation, c.Payload)
	case c.Namespace == LogNamespace:
		h.Logs = append(h.Logs, c.Operation+": "+string(c.Payload))
	default:
		err = errors.New("denied: sdktest: no fake serves namespace " + c.Namespace)
	}
	if err != nil {
		h.hostErr = err.Error()
		if h.hostErr == "" {
			h.hostErr = "host call failed"
		}
		return 0
	}
	return 1
}

func (h *hostABI) HostResponseLen() uint32 { return uint32(len(h.hostResp)) }

func (h *hostABI) HostResponse(ptr *byte) { copy(unsafe.Slice(ptr, len(h.hostResp)), h.hostResp) }

func (h *hostABI) HostErrorLen() uint32 { return uint32(len(h.hostErr)) }

func (h *hostABI) HostError(ptr *byte) { copy(unsafe.Slice(ptr, len(h.hostErr)), h.hostErr) }

func (h *hostABI) ConsoleLog(msg string) { h.Console = append(h.Console, strings.Clone(msg)) }
