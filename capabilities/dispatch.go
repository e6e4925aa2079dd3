package capabilities

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
)

// Dispatcher routes actors' host calls to contract handlers, after checking
// the calling actor's grants. Handlers and grants can be replaced while
// actors run (a provider swap, a config reload): a call uses whatever is
// registered when it starts.
type Dispatcher struct {
	bindMu   sync.Mutex // serialises SetGrants and RemoveGrants
	mu       sync.RWMutex
	handlers map[string]Handler  // by namespace: contract ids and their aliases
	grants   map[string]Grants   // by actor
	claims   map[string][]string // by actor: the contracts a signed actor's claims list

	denied   func(ctx context.Context, call Call, reason string)
	nDenied  atomic.Uint64
	nUnknown atomic.Uint64
}

// DispatcherOptions configure a Dispatcher.
type DispatcherOptions struct {
	// Denied is told of every denied call (the agent publishes an event);
	// it must not block. Nil ignores them.
	Denied func(ctx context.Context, call Call, reason string)
}

// NewDispatcher returns a dispatcher with no handlers and no grants: every
// call but trellis:log and trellis:numbergen is denied until both exist.
func NewDispatcher(opts DispatcherOptions) *Dispatcher {
	return &Dispatcher{handlers: map[string]Handler{}, grants: map[string]Grants{}, claims: map[string][]string{}, denied: opts.Denied}
}

// Register serves namespace with h, replacing any handler it had. A
// compatibility namespace (wasmcloud:keyvalue) is registered under its own
// name with the handler that translates it.
func (d *Dispatcher) Register(namespace string, h Handler) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h == nil {
		delete(d.handlers, namespace)
		return
	}
	d.handlers[namespace] = h
}

// SetGrants replaces an actor's grants after validating them on their own,
// and binds its device events (every registered Binder's Bind). When a
// binder fails, the actor's previous grants and bindings are restored.
func (d *Dispatcher) SetGrants(actor string, g Grants) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("actor %s: %w", actor, err)
	}
	d.bindMu.Lock()
	defer d.bindMu.Unlock()
	old, had := d.Grants(actor)
	binders := d.binders()
	for i, b := range binders {
		if err := b.Bind(actor, g); err != nil {
			for _, done := range binders[:i] {
				if had {
					_ = done.Bind(actor, old)
				} else {
					done.Unbind(actor)
				}
			}
			return fmt.Errorf("actor %s: %w", actor, err)
		}
	}
	d.mu.Lock()
	d.grants[actor] = g
	d.mu.Unlock()
	return nil
}

// RemoveGrants forgets an actor's grants and unbinds its device events (it
// was stopped).
func (d *Dispatcher) RemoveGrants(actor string) {
	d.bindMu.Lock()
	defer d.bindMu.Unlock()
	d.mu.Lock()
	delete(d.grants, actor)
	d.mu.Unlock()
	for _, b := range d.binders() {
		b.Unbind(actor)
	}
}

// ReleaseGrants forgets an actor's grants like RemoveGrants, but binders
// that keep state for the actor keep it (Releaser): for an actor whose
// start failed, or that stops with the host.
func (d *Dispatcher) ReleaseGrants(actor string) {
	d.bindMu.Lock()
	defer d.bindMu.Unlock()
	d.mu.Lock()
	delete(d.grants, actor)
	d.mu.Unlock()
	for _, b := range d.binders() {
		if r, ok := b.(Releaser); ok {
			r.Release(actor)
		} else {
			b.Unbind(actor)
		}
	}
}

// binders returns the registered handlers that are Binders, each once.
func (d *Dispatcher) binders() []Binder {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []Binder
	names := make([]string, 0, len(d.handlers))
	for ns := range d.handlers {
		names = append(names, ns)
	}
	slices.Sort(names) // a stable order: rollback undoes what was done
	for _, ns := range names {
		b, ok := d.handlers[ns].(Binder)
		// One handler registered under several namespaces binds once; only
		// comparable handlers (pointers) can be recognised as the same.
		if ok && !slices.ContainsFunc(out, func(o Binder) bool {
			return reflect.TypeOf(o).Comparable() && reflect.TypeOf(o) == reflect.TypeOf(b) && any(o) == any(b)
		}) {
			out = append(out, b)
		}
	}
	return out
}

// SetClaims restricts a signed actor to the contracts its claims list
// (wascap caps, such as wasmcloud:keyvalue or trellis:gpio), on top of its
// grants; nil lifts the restriction (an unsigned actor). trellis:log and
// trellis:numbergen, which touch nothing, are never restricted.
func (d *Dispatcher) SetClaims(actor string, contracts []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if contracts == nil {
		delete(d.claims, actor)
		return
	}
	d.claims[actor] = contracts
}

// claimsAllow reports whether a claims list allows namespace: the same id,
// or a compatibility name of the same native contract.
func claimsAllow(contracts []string, namespace string) bool {
	native := contractOf(namespace)
	if native == Log || native == Numbergen {
		return true
	}
	for _, c := range contracts {
		if c == namespace || contractOf(c) == native {
			return true
		}
	}
	return false
}

// Grants returns an actor's grants.
func (d *Dispatcher) Grants(actor string) (Grants, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	g, ok := d.grants[actor]
	return g, ok
}

// Handles reports whether namespace has a handler.
func (d *Dispatcher) Handles(namespace string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	_, ok := d.handlers[namespace]
	return ok
}

// DispatchStats counts refused calls.
type DispatchStats struct {
	Denied  uint64 // calls without a grant
	Unknown uint64 // calls to a namespace no handler serves
}

// Stats returns the dispatcher's counters.
func (d *Dispatcher) Stats() DispatchStats {
	return DispatchStats{Denied: d.nDenied.Load(), Unknown: d.nUnknown.Load()}
}

// Dispatch serves one host call: the actor must hold a grant for the
// contract (the handler checks the fine grain), and a handler must serve
// the namespace. A denial never reaches a provider.
func (d *Dispatcher) Dispatch(ctx context.Context, call Call) ([]byte, error) {
	d.mu.RLock()
	h, served := d.handlers[call.Contract]
	g := d.grants[call.Actor]
	caps, signed := d.claims[call.Actor]
	d.mu.RUnlock()
	if !served {
		d.nUnknown.Add(1)
		reason := fmt.Sprintf("namespace %q: no capability or actor by that name on this host", call.Contract)
		if d.denied != nil {
			d.denied(ctx, call, reason)
		}
		return nil, fmt.Errorf("%w: %s", ErrDenied, reason)
	}
	if !g.Allows(contractOf(call.Contract)) {
		d.nDenied.Add(1)
		reason := fmt.Sprintf("actor %s has no grant for %s", call.Actor, call.Contract)
		if d.denied != nil {
			d.denied(ctx, call, reason)
		}
		return nil, fmt.Errorf("%w: %s", ErrDenied, reason)
	}
	if signed && !claimsAllow(caps, call.Contract) {
		d.nDenied.Add(1)
		reason := fmt.Sprintf("actor %s's signed claims do not list %s (caps: %v)", call.Actor, call.Contract, caps)
		if d.denied != nil {
			d.denied(ctx, call, reason)
		}
		return nil, fmt.Errorf("%w: %s", ErrDenied, reason)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	call.Grants = g
	return h.Handle(ctx, call)
}

// compat maps compatibility namespaces to the native contract whose grant
// they need.
var compat = map[string]string{
	"wasmcloud:keyvalue":          KV,
	"wascc:keyvalue":              KV,
	"wasmcloud:messaging":         Messaging,
	"wascc:messaging":             Messaging,
	"wasmcloud:httpserver":        HTTP,
	"wascc:http_server":           HTTP,
	"wasmcloud:builtin:logging":   Log,
	"wasmcloud:logging":           Log,
	"wascc:logging":               Log,
	"wasmcloud:builtin:numbergen": Numbergen,
	"wasmcloud:extras":            Numbergen,
}

// contractOf returns the native contract a namespace is granted as.
func contractOf(namespace string) string {
	if c, ok := compat[namespace]; ok {
		return c
	}
	return namespace
}
