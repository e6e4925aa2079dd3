// Package abi implements the host side of the waPC guest/host protocol that
// Trellis actors speak: the nine host functions, registered under both import
// module names `wapc` (waPC SDKs: TinyGo, Rust, AssemblyScript, Zig, Trellis's
// Go sdk) and `wasmbus` (wasmCloud 0.x actors).
//
// Every pointer and length a guest passes is untrusted: it is bounds-checked
// against guest memory and against the per-call Limits before anything is read
// or written. A guest that breaks the protocol does not get an error code back;
// its call is aborted with a Fault, and the caller (agent/actor) discards that
// instance.
//
// The state of one guest call travels in the context as an *Invocation, so
// one registration serves any number of instances and concurrent calls.
//
// Only agent/actor imports this package.
package abi

import (
	"context"
	"errors"
	"fmt"
)

// Import module names under which the host functions are registered.
const (
	ModuleWapc    = "wapc"
	ModuleWasmbus = "wasmbus"
)

// Names of the guest exports the protocol uses.
const (
	ExportGuestCall  = "__guest_call"
	ExportInitialize = "_initialize"
	ExportStart      = "_start"
	ExportWapcInit   = "wapc_init"
)

// Sentinel errors wrapped by a Fault.
var (
	// ErrOutOfBounds is a pointer or length outside guest memory.
	ErrOutOfBounds = errors.New("out-of-bounds guest memory access")
	// ErrTooLarge is a payload over its limit.
	ErrTooLarge = errors.New("payload over limit")
	// ErrTooManyHostCalls is a guest that made more host calls in one
	// invocation than its limit allows.
	ErrTooManyHostCalls = errors.New("too many host calls")
	// ErrNoInvocation is a host function called with no invocation in its
	// context (by a guest calling it from a place the host did not expect).
	ErrNoInvocation = errors.New("host function called outside an invocation")
)

// Fault is a guest's breach of the protocol: the host function that saw it
// panics with the Fault, wazero unwinds the guest, and the call fails.
type Fault struct {
	Func string // host function that saw the breach
	Err  error  // one of the sentinels above
	Msg  string // details: pointers, lengths, limits
}

func (f *Fault) Error() string { return fmt.Sprintf("abi: %s: %v: %s", f.Func, f.Err, f.Msg) }
func (f *Fault) Unwrap() error { return f.Err }

// Limits bound what crosses the guest boundary in one invocation. They are
// set by the caller; the zero value of a field means "nothing allowed", so
// callers always pass filled-in limits.
type Limits struct {
	MaxResponse    uint32 // bytes in __guest_response and __guest_error
	MaxHostPayload uint32 // bytes of binding+namespace+operation+payload in one __host_call
	MaxHostCalls   uint32 // __host_call invocations per guest call
}

// HostCaller serves a guest's __host_call. Its error text is handed back to
// the guest through __host_error, so it must not leak host details.
type HostCaller interface {
	HostCall(ctx context.Context, binding, namespace, operation string, payload []byte) ([]byte, error)
}

// Logger receives a guest's __console_log messages.
type Logger interface {
	ConsoleLog(ctx context.Context, msg string)
}

// Invocation is the state of one guest call. The caller fills in the inputs,
// puts it into the context with WithInvocation, calls __guest_call, and reads
// the outputs.
type Invocation struct {
	// Inputs.
	Operation string
	Request   []byte
	Limits    Limits
	Host      HostCaller // nil: every host call fails with an error to the guest
	Log       Logger     // nil: console output is dropped

	// Outputs.
	Response   []byte // copied out of guest memory
	GuestError string // set by __guest_error
	GuestErr   bool   // __guest_error was called
	Fault      *Fault // set when the guest broke the protocol

	hostCalls uint32
	hostResp  []byte
	hostErr   string
}

// Reset clears an Invocation for reuse.
func (inv *Invocation) Reset() { *inv = Invocation{} }

type invocationKey struct{}

// WithInvocation returns a context carrying inv for the host functions.
func WithInvocation(ctx context.Context, inv *Invocation) context.Context {
	return context.WithValue(ctx, invocationKey{}, inv)
}

// Carrier is a context that carries an invocation itself, so a caller on
// the hot path can avoid context.WithValue's allocation.
type Carrier interface {
	context.Context
	Invocation() *Invocation
}

// InvocationFrom returns the invocation in ctx, or nil.
func InvocationFrom(ctx context.Context) *Invocation {
	if c, ok := ctx.(Carrier); ok {
		return c.Invocation()
	}
	inv, _ := ctx.Value(invocationKey{}).(*Invocation)
	return inv
}
