package actor

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/trellis-edge/trellis/agent/abi"
)

// wasiUnstable is the pre-snapshot WASI module name old TinyGo guests import.
const wasiUnstable = "wasi_unstable"

// Actor is one running actor: a compiled module and its pool of instances.
type Actor struct {
	name      string
	rt        *Runtime
	limits    Limits
	abiLimits abi.Limits
	digest    [sha256.Size]byte
	log       *guestLog

	wr       wazero.Runtime
	compiled wazero.CompiledModule
	modCfg   wazero.ModuleConfig
	inits    []string // start sequence: exports to call, in order

	idle  chan *instance // idle instances; capacity MaxInstances
	slots chan struct{}  // one token per live instance; capacity MaxInstances

	mu       sync.Mutex // guards closed and inflight's Add against close's Wait
	closed   bool
	inflight sync.WaitGroup

	calls     atomic.Uint64
	failures  atomic.Uint64
	discarded atomic.Uint64
}

// instance is one instantiated module.
type instance struct {
	mod       api.Module
	guestCall api.Function
	deadline  *deadline
	inv       abi.Invocation // reused by each call on this instance
	stack     [2]uint64
}

// load compiles wasm in a runtime of its own (the memory limit is a runtime
// setting) that shares the compilation cache, checks that it is a waPC guest,
// and starts one instance so a broken start sequence is found now.
func (r *Runtime) load(ctx context.Context, name string, wasm []byte, limits Limits) (_ *Actor, err error) {
	if err := limits.Validate(); err != nil {
		return nil, fmt.Errorf("actor: %s: %w", name, err)
	}
	limits = limits.WithDefaults()
	a := &Actor{
		name:   name,
		rt:     r,
		limits: limits,
		abiLimits: abi.Limits{
			MaxResponse:    uint32(limits.MaxResponse),
			MaxHostPayload: uint32(limits.MaxHostPayload),
			MaxHostCalls:   uint32(limits.MaxHostCalls),
		},
		digest: sha256.Sum256(wasm),
		log:    newGuestLog(r.log.With("actor", name)),
		idle:   make(chan *instance, limits.MaxInstances),
		slots:  make(chan struct{}, limits.MaxInstances),
	}
	cfg := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(limits.MemoryPages).
		WithCompilationCache(r.cache)
	a.wr = wazero.NewRuntimeWithConfig(ctx, cfg)
	defer func() {
		if err != nil {
			a.close(ctx)
		}
	}()
	if err := instantiateHost(ctx, a.wr); err != nil {
		return nil, fmt.Errorf("actor: %s: %w", name, err)
	}
	a.compiled, err = a.wr.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("actor: %s: %w: %w", name, ErrInvalidModule, err)
	}
	if a.inits, err = checkModule(a.compiled); err != nil {
		return nil, fmt.Errorf("actor: %s: %w: %w", name, ErrInvalidModule, err)
	}
	a.modCfg = wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances of one module
		WithStartFunctions().
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader).
		WithStdout(a.log.writer("stdout", slog.LevelInfo)).
		WithStderr(a.log.writer("stderr", slog.LevelWarn))
	// The first instance proves the start sequence and stays in the pool.
	a.slots <- struct{}{}
	in, err := a.newInstance(ctx)
	if err != nil {
		<-a.slots
		return nil, fmt.Errorf("actor: %s: %w", name, err)
	}
	a.idle <- in
	return a, nil
}

// instantiateHost registers what an actor may import: WASI preview1 (also as
// wasi_unstable) and the waPC host functions under both names.
func instantiateHost(ctx context.Context, wr wazero.Runtime) error {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, wr); err != nil {
		return fmt.Errorf("wasi: %w", err)
	}
	b := wr.NewHostModuleBuilder(wasiUnstable)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("%s: %w", wasiUnstable, err)
	}
	return abi.Instantiate(ctx, wr)
}

// checkModule verifies the exports and imports of a waPC guest and returns
// its start sequence.
func checkModule(m wazero.CompiledModule) ([]string, error) {
	exports := m.ExportedFunctions()
	gc, ok := exports[abi.ExportGuestCall]
	if !ok {
		return nil, fmt.Errorf("no %s export: not a waPC guest", abi.ExportGuestCall)
	}
	if p, res := gc.ParamTypes(), gc.ResultTypes(); len(p) != 2 || p[0] != api.ValueTypeI32 || p[1] != api.ValueTypeI32 ||
		len(res) != 1 || res[0] != api.ValueTypeI32 {
		return nil, fmt.Errorf("%s has signature %s, want (i32, i32) -> i32", abi.ExportGuestCall, signature(gc))
	}
	for _, imp := range m.ImportedFunctions() {
		mod, fn, _ := imp.Import()
		switch mod {
		case abi.ModuleWapc, abi.ModuleWasmbus:
			if !abi.IsHostFunction(fn) {
				return nil, fmt.Errorf("imports %s.%s, which is not a waPC host function", mod, fn)
			}
		case wasi_snapshot_preview1.ModuleName, wasiUnstable:
		default:
			return nil, fmt.Errorf("imports %s.%s: trellis provides only wapc, wasmbus, %s and %s",
				mod, fn, wasi_snapshot_preview1.ModuleName, wasiUnstable)
		}
	}
	var inits []string
	noArgs := func(name string) bool {
		f, ok := exports[name]
		return ok && len(f.ParamTypes()) == 0
	}
	switch {
	case noArgs(abi.ExportInitialize):
		inits = append(inits, abi.ExportInitialize)
	case noArgs(abi.ExportStart):
		inits = append(inits, abi.ExportStart)
	}
	if noArgs(abi.ExportWapcInit) {
		inits = append(inits, abi.ExportWapcInit)
	}
	return inits, nil
}

func signature(f api.FunctionDefinition) string {
	names := func(ts []api.ValueType) string {
		s := "("
		for i, t := range ts {
			if i > 0 {
				s += ", "
			}
			s += api.ValueTypeName(t)
		}
		return s + ")"
	}
	return names(f.ParamTypes()) + " -> " + names(f.ResultTypes())
}

// newInstance instantiates the module and runs its start sequence under the
// call deadline. The caller holds a slot for it.
func (a *Actor) newInstance(ctx context.Context) (*instance, error) {
	ctx, cancel := context.WithTimeout(ctx, a.limits.CallTimeout)
	defer cancel()
	inv := &abi.Invocation{Limits: a.abiLimits, Host: a, Log: a.log}
	ctx = abi.WithInvocation(ctx, inv)
	mod, err := a.wr.InstantiateModule(ctx, a.compiled, a.modCfg)
	if err != nil {
		return nil, fmt.Errorf("%w: instantiate: %w", ErrStart, err)
	}
	for _, name := range a.inits {
		if _, err := mod.ExportedFunction(name).Call(ctx); err != nil {
			_ = mod.Close(context.Background())
			var exit *sys.ExitError
			if errors.As(err, &exit) && exit.ExitCode() == 0 {
				return nil, fmt.Errorf("%w: %s exited with code 0, so the instance is gone: build the actor as a reactor (e.g. Go -buildmode=c-shared)", ErrStart, name)
			}
			if ce := classify(ctx, inv, err, 0); ce != nil {
				ce.Operation = name
				return nil, fmt.Errorf("%w: %s: %w", ErrStart, name, ce)
			}
			return nil, fmt.Errorf("%w: %s: %w", ErrStart, name, err)
		}
	}
	return &instance{mod: mod, guestCall: mod.ExportedFunction(abi.ExportGuestCall), deadline: newDeadline()}, nil
}

// Name returns the actor's name.
func (a *Actor) Name() string { return a.name }

// Digest returns the lowercase hex sha256 of the actor's module.
func (a *Actor) Digest() string { return hex.EncodeToString(a.digest[:]) }

// Limits returns the actor's limits with defaults filled in.
func (a *Actor) Limits() Limits { return a.limits }

// Stats counts an actor's calls and instances.
type Stats struct {
	Calls     uint64 // calls made
	Failures  uint64 // calls that failed, of any code
	Discarded uint64 // instances discarded after a trap, timeout or fault
	Instances int    // live instances
	Idle      int    // live instances not running a call
}

// Stats returns a snapshot of the actor's counters.
func (a *Actor) Stats() Stats {
	return Stats{
		Calls:     a.calls.Load(),
		Failures:  a.failures.Load(),
		Discarded: a.discarded.Load(),
		Instances: len(a.slots),
		Idle:      len(a.idle),
	}
}

// Invoke calls operation with payload on an instance of the actor. It waits
// for a free instance until the call's deadline: the actor's CallTimeout, or
// ctx's deadline if that is earlier.
func (a *Actor) Invoke(ctx context.Context, operation string, payload []byte) ([]byte, error) {
	a.calls.Add(1)
	resp, err := a.invoke(ctx, operation, payload)
	if err != nil {
		a.failures.Add(1)
	}
	return resp, err
}

func (a *Actor) invoke(ctx context.Context, operation string, payload []byte) ([]byte, error) {
	if len(payload) > a.limits.MaxRequest {
		return nil, a.errorf(CodeLimit, operation, nil, "request of %d bytes over the limit of %d", len(payload), a.limits.MaxRequest)
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, a.errorf(CodeNotFound, operation, nil, "actor stopped")
	}
	a.inflight.Add(1)
	a.mu.Unlock()
	defer a.inflight.Done()

	at := time.Now().Add(a.limits.CallTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(at) {
		at = d
	}
	in := a.tryAcquire()
	if in == nil {
		wctx, cancel := context.WithDeadline(ctx, at)
		var err error
		in, err = a.acquire(wctx)
		cancel()
		if err != nil {
			return nil, a.acquireError(wctx, operation, err)
		}
	}
	inv := &in.inv
	*inv = abi.Invocation{Operation: operation, Request: payload, Limits: a.abiLimits, Host: a, Log: a.log}
	cctx := &callCtx{Context: ctx, d: in.deadline, at: at, inv: inv}
	in.deadline.arm(ctx, at)
	in.stack[0], in.stack[1] = uint64(len(operation)), uint64(len(payload))
	err := in.guestCall.CallWithStack(cctx, in.stack[:])
	fired := in.deadline.disarm()
	if err != nil {
		ce := classify(cctx, inv, err, a.memoryAtLimit(in))
		a.discard(in)
		ce.Actor, ce.Operation = a.name, operation
		return nil, ce
	}
	if inv.Fault != nil { // a guest that recovered from a fault panic is still broken
		a.discard(in)
		ce := classify(cctx, inv, inv.Fault, 0)
		ce.Actor, ce.Operation = a.name, operation
		return nil, ce
	}
	resp, guestErr := inv.Response, inv.GuestError
	ok := uint32(in.stack[0]) == 1 && guestErr == ""
	*inv = abi.Invocation{} // drop references to the caller's payload
	if fired {
		a.discard(in) // its done channel is closed; the result is still good
	} else {
		a.idle <- in
	}
	// As the reference waPC host does: success is exactly 1, and a guest that
	// reported an error failed whatever it returned.
	if !ok {
		msg := guestErr
		if msg == "" {
			msg = fmt.Sprintf("call to %q was unsuccessful", operation)
		}
		return nil, &CallError{Code: CodeGuestError, Actor: a.name, Operation: operation, Message: msg}
	}
	return resp, nil
}

func (a *Actor) errorf(code Code, operation string, cause error, format string, args ...any) *CallError {
	return &CallError{Code: code, Actor: a.name, Operation: operation, Message: fmt.Sprintf(format, args...), Err: cause}
}

// tryAcquire takes an idle instance if there is one.
func (a *Actor) tryAcquire() *instance {
	select {
	case in := <-a.idle:
		return in
	default:
		return nil
	}
}

// acquire takes an idle instance, or starts one if the pool has room, or
// waits for one until ctx ends.
func (a *Actor) acquire(ctx context.Context) (*instance, error) {
	select {
	case in := <-a.idle:
		return in, nil
	case a.slots <- struct{}{}:
		in, err := a.newInstance(ctx)
		if err != nil {
			<-a.slots
			return nil, err
		}
		return in, nil
	case <-ctx.Done():
		return nil, errNoInstance
	}
}

func (a *Actor) acquireError(ctx context.Context, operation string, err error) *CallError {
	if errors.Is(err, errNoInstance) {
		if errors.Is(ctx.Err(), context.Canceled) {
			return a.errorf(CodeCanceled, operation, ctx.Err(), "canceled while waiting for an instance")
		}
		return a.errorf(CodeOverloaded, operation, ctx.Err(), "all %d instances busy until the deadline", a.limits.MaxInstances)
	}
	var ce *CallError
	if errors.As(err, &ce) {
		return &CallError{Code: ce.Code, Actor: a.name, Operation: operation, Message: "starting an instance: " + ce.Message, Err: err}
	}
	a.rt.log.Warn("actor instance failed to start", "actor", a.name, "err", err)
	return a.errorf(CodeTrap, operation, err, "starting an instance failed")
}

// discard closes an instance that must not run again and frees its slot.
func (a *Actor) discard(in *instance) {
	_ = in.mod.Close(context.Background())
	a.discarded.Add(1)
	<-a.slots
}

// memoryAtLimit reports the instance's memory size in pages when it has
// reached the actor's page limit, else 0.
func (a *Actor) memoryAtLimit(in *instance) uint32 {
	mem := in.mod.Memory()
	if mem == nil {
		return 0
	}
	if pages := mem.Size() / wasmPageSize; pages >= a.limits.MemoryPages {
		return pages
	}
	return 0
}

// classify turns a failed guest call into a CallError.
func classify(ctx context.Context, inv *abi.Invocation, err error, pagesAtLimit uint32) *CallError {
	if f := inv.Fault; f != nil {
		switch {
		case errors.Is(f, abi.ErrTooLarge), errors.Is(f, abi.ErrTooManyHostCalls):
			return &CallError{Code: CodeLimit, Message: f.Error(), Err: err}
		default:
			return &CallError{Code: CodeTrap, Message: f.Error(), Err: err}
		}
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return &CallError{Code: CodeTimeout, Message: "deadline exceeded", Err: err}
		case sys.ExitCodeContextCanceled:
			return &CallError{Code: CodeCanceled, Message: "canceled", Err: err}
		default:
			return &CallError{Code: CodeTrap, Message: fmt.Sprintf("guest exited with code %d", exit.ExitCode()), Err: err}
		}
	}
	if ctx.Err() != nil { // the deadline hit inside a host call
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &CallError{Code: CodeTimeout, Message: "deadline exceeded", Err: err}
		}
		return &CallError{Code: CodeCanceled, Message: "canceled", Err: err}
	}
	if inv.GuestErr { // e.g. AssemblyScript's abort: report, then trap
		return &CallError{Code: CodeTrap, Message: fmt.Sprintf("%s after the guest reported: %s", firstLine(err), inv.GuestError), Err: err}
	}
	if pagesAtLimit > 0 {
		return &CallError{Code: CodeLimit, Message: fmt.Sprintf("trapped with memory at its limit of %d pages: %s", pagesAtLimit, firstLine(err)), Err: err}
	}
	return &CallError{Code: CodeTrap, Message: firstLine(err), Err: err}
}

// firstLine drops wazero's wasm stack trace from an error message.
func firstLine(err error) string {
	s := err.Error()
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

// HostCall implements abi.HostCaller: a guest's host call, routed by the runtime.
func (a *Actor) HostCall(ctx context.Context, binding, namespace, operation string, payload []byte) ([]byte, error) {
	return a.rt.dispatch(ctx, HostCall{Caller: a.name, Binding: binding, Namespace: namespace, Operation: operation, Payload: payload})
}

// close stops new calls, waits for calls in flight until ctx ends, and frees
// the instances, the compiled module and the actor's wazero runtime.
func (a *Actor) close(ctx context.Context) {
	a.mu.Lock()
	already := a.closed
	a.closed = true
	a.mu.Unlock()
	if already {
		return
	}
	done := make(chan struct{})
	go func() { a.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	// Closing the runtime closes every instance, idle or still running;
	// a call cut off here fails with a trap.
	if a.wr != nil {
		_ = a.wr.Close(context.Background())
	}
	if a.compiled != nil {
		_ = a.compiled.Close(context.Background())
	}
}
