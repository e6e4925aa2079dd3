// Package capabilities is what actors may reach beyond their own memory:
// contracts (an id such as trellis:gpio, operations, msgpack payloads), the
// grants that allow an actor to use them, and the dispatcher that checks
// grants before any provider is touched.
//
// Each contract lives in a package of its own below this one, with a small
// interface, its value types, a real provider and a simulated one. This
// package imports none of them; the agent wires providers in. It is a leaf:
// it never imports agent, deploy or cmd.
package capabilities

import (
	"context"
	"errors"
)

// Contract ids of the native contracts.
const (
	GPIO      = "trellis:gpio"
	Sensor    = "trellis:sensor"
	KV        = "trellis:kv"
	Messaging = "trellis:messaging"
	Telemetry = "trellis:telemetry"
	Timer     = "trellis:timer"
	HTTP      = "trellis:http"
	Log       = "trellis:log"
	Numbergen = "trellis:numbergen"
)

// Call is one host call from an actor to a contract.
type Call struct {
	Actor     string // the calling actor
	Binding   string // waPC binding; "default" unless an actor names another
	Contract  string // the namespace: a contract id
	Operation string
	Payload   []byte // msgpack for the native contracts
	Grants    Grants // the calling actor's grants, for the handler's fine-grained checks
}

// Handler serves the operations of one contract for every actor. The
// dispatcher has checked the grant before Handle is called; Handle checks
// the fine grain (which pin, which subject) against the actor's grant.
// It honours ctx: a blocked read must not outlive the call's deadline.
type Handler interface {
	Handle(ctx context.Context, call Call) ([]byte, error)
}

// Sentinel errors. Errors a guest sees carry one of these and a message that
// names what was refused, never host paths.
var (
	// ErrDenied is a call the actor's grants do not allow.
	ErrDenied = errors.New("denied")
	// ErrUnknownOperation is an operation the contract does not have.
	ErrUnknownOperation = errors.New("unknown operation")
	// ErrBadPayload is a payload that does not decode as the operation's input.
	ErrBadPayload = errors.New("bad payload")
	// ErrUnavailable is a provider that cannot serve now (hardware missing,
	// swapped out, closed).
	ErrUnavailable = errors.New("unavailable")
)

// Invoker calls an actor's operation on this host and returns its response:
// how a device event (an HTTP request, a message, a timer tick) reaches an
// actor. The agent provides it; errors are the runtime's (*actor.CallError
// with a code such as not_found or timeout).
type Invoker func(ctx context.Context, actor, operation string, payload []byte) ([]byte, error)

// Binder is a handler that routes device events to actors as their grants
// say (HTTP routes, subscriptions, schedules). The dispatcher calls Bind
// whenever an actor's grants are set, and Unbind when they are removed
// (the actor stopped). Bind replaces what the actor had; an error leaves
// the grants unset and is returned by SetGrants.
type Binder interface {
	Bind(actor string, g Grants) error
	Unbind(actor string)
}

// Releaser is a Binder that can stop routing an actor's events without
// forgetting what it keeps for the actor (stored timers, subscriptions):
// the dispatcher's ReleaseGrants calls Release where a binder has it, and
// Unbind where not. An actor whose start failed is released, not unbound,
// so that its next start finds its state.
type Releaser interface {
	Release(actor string)
}
