// Package actor runs WebAssembly actors: it compiles modules ahead of time
// with wazero (native code kept in an on-disk compilation cache), pools
// instances per actor, enforces per-actor limits, and routes a guest's host
// calls to the log, to other actors by name, or to a capability dispatcher.
//
// A guest can fail its own call, and lose the instance it ran on, but nothing
// it does can panic or stall the host: every call has a deadline, every
// pointer is checked, every payload is capped.
//
// agent and cmd import this package; leaf packages never do.
package actor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
)

// Engine names reported by EngineName.
const (
	EngineCompiler    = "compiler"
	EngineInterpreter = "interpreter"
)

// EngineName says which wazero engine runs actors on this machine: the
// optimizing compiler on amd64 and arm64, the interpreter elsewhere (32-bit
// ARM), where the compilation cache is not used.
func EngineName() string {
	switch runtime.GOARCH {
	case "amd64", "arm64":
		switch runtime.GOOS {
		case "linux", "darwin", "windows", "freebsd", "netbsd", "dragonfly", "solaris", "illumos":
			return EngineCompiler
		}
	}
	return EngineInterpreter
}

// Dispatcher serves host calls to namespaces that are neither `trellis:log`
// nor the name of a running actor: the capability contracts.
type Dispatcher interface {
	Dispatch(ctx context.Context, call HostCall) ([]byte, error)
}

// HostCall is one guest __host_call, with the name of the calling actor.
type HostCall struct {
	Caller    string
	Binding   string
	Namespace string
	Operation string
	Payload   []byte
}

// NamespaceLog is the host-call namespace of the built-in log: the operation
// is the level (debug, info, warn, error) and the payload the message.
const NamespaceLog = "trellis:log"

// Options configure a Runtime. The zero value is usable: no compilation
// cache, logs discarded, no capabilities.
type Options struct {
	// CacheDir keeps compiled native code across restarts; "" disables the
	// on-disk cache.
	CacheDir string
	// Logger receives the runtime's and the guests' logs.
	Logger *slog.Logger
	// Capabilities serves namespaces other than the log and actor names;
	// nil denies them.
	Capabilities Dispatcher
	// MaxCallDepth caps chains of actor-to-actor calls (A calls B calls
	// C...); 0 means 16.
	MaxCallDepth int
}

// Runtime is the set of actors running in one process.
type Runtime struct {
	opts  Options
	log   *slog.Logger
	cache wazero.CompilationCache

	mu     sync.RWMutex
	actors map[string]*Actor
	closed bool
}

// New returns a Runtime. It starts no goroutines.
func New(opts Options) (*Runtime, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Runtime{opts: opts, log: log.With("subsystem", "actor"), actors: map[string]*Actor{}}
	if opts.CacheDir != "" {
		if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("actor: compilation cache: %w", err)
		}
		c, err := wazero.NewCompilationCacheWithDir(opts.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("actor: compilation cache: %w", err)
		}
		r.cache = c
	} else {
		// An in-memory cache still lets actors of one module share their
		// compiled code.
		r.cache = wazero.NewCompilationCache()
	}
	return r, nil
}

// Start compiles wasm, starts the actor's first instance, and makes it
// callable as name. A module that does not compile, is not a waPC guest, or
// fails its start sequence is an error, and nothing is left running.
func (r *Runtime) Start(ctx context.Context, name string, wasm []byte, limits Limits) (*Actor, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	r.mu.RLock()
	_, exists := r.actors[name]
	closed := r.closed
	r.mu.RUnlock()
	if closed {
		return nil, fmt.Errorf("actor: start %s: %w", name, ErrClosed)
	}
	if exists {
		return nil, fmt.Errorf("actor: start %s: %w", name, ErrExists)
	}
	a, err := r.load(ctx, name, wasm, limits)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if _, exists := r.actors[name]; exists || r.closed {
		r.mu.Unlock()
		a.close(ctx)
		if exists {
			return nil, fmt.Errorf("actor: start %s: %w", name, ErrExists)
		}
		return nil, fmt.Errorf("actor: start %s: %w", name, ErrClosed)
	}
	r.actors[name] = a
	r.mu.Unlock()
	r.log.Debug("actor started", "actor", name, "sha256", a.Digest(), "engine", EngineName())
	return a, nil
}

// Update replaces a running actor's module and limits. The new version is
// compiled and started before the old one is drained; if it fails, the old
// one keeps serving and the error is returned.
func (r *Runtime) Update(ctx context.Context, name string, wasm []byte, limits Limits) (*Actor, error) {
	if _, ok := r.Actor(name); !ok {
		return nil, fmt.Errorf("actor: update %s: %w", name, ErrNotFound)
	}
	next, err := r.load(ctx, name, wasm, limits)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	prev, ok := r.actors[name]
	if !ok || r.closed {
		r.mu.Unlock()
		next.close(ctx)
		return nil, fmt.Errorf("actor: update %s: %w", name, ErrNotFound)
	}
	r.actors[name] = next
	r.mu.Unlock()
	prev.close(ctx) // drains calls in flight on the old version
	r.log.Debug("actor updated", "actor", name, "sha256", next.Digest(), "previous", prev.Digest())
	return next, nil
}

// Stop removes an actor, waits for its calls in flight (until ctx ends) and
// frees its instances.
func (r *Runtime) Stop(ctx context.Context, name string) error {
	r.mu.Lock()
	a, ok := r.actors[name]
	delete(r.actors, name)
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("actor: stop %s: %w", name, ErrNotFound)
	}
	a.close(ctx)
	r.log.Debug("actor stopped", "actor", name)
	return nil
}

// Actor returns the running actor called name.
func (r *Runtime) Actor(name string) (*Actor, bool) {
	r.mu.RLock()
	a, ok := r.actors[name]
	r.mu.RUnlock()
	return a, ok
}

// Actors returns the running actors, sorted by name.
func (r *Runtime) Actors() []*Actor {
	r.mu.RLock()
	out := make([]*Actor, 0, len(r.actors))
	for _, a := range r.actors {
		out = append(out, a)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Actor) int { return strings.Compare(a.name, b.name) })
	return out
}

// Invoke calls operation on the actor called name.
func (r *Runtime) Invoke(ctx context.Context, name, operation string, payload []byte) ([]byte, error) {
	a, ok := r.Actor(name)
	if !ok {
		return nil, &CallError{Code: CodeNotFound, Actor: name, Operation: operation, Message: "no such actor"}
	}
	return a.Invoke(ctx, operation, payload)
}

// Close stops every actor and releases the compilation cache. Calls in flight
// finish or are cut off when ctx ends.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	actors := r.actors
	r.actors = map[string]*Actor{}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range actors {
		wg.Go(func() { a.close(ctx) })
	}
	wg.Wait()
	return r.cache.Close(ctx)
}

// dispatch routes a guest's host call.
func (r *Runtime) dispatch(ctx context.Context, call HostCall) ([]byte, error) {
	if call.Namespace == NamespaceLog {
		return nil, r.guestLog(ctx, call)
	}
	if target, ok := r.Actor(call.Namespace); ok {
		depth, max := callDepth(ctx)+1, r.opts.MaxCallDepth
		if max <= 0 {
			max = defaultMaxCallDepth
		}
		if depth > max {
			return nil, &CallError{Code: CodeLimit, Actor: call.Namespace, Operation: call.Operation,
				Message: fmt.Sprintf("actor call chain deeper than %d", max)}
		}
		return target.Invoke(withCallDepth(ctx, depth), call.Operation, call.Payload)
	}
	if r.opts.Capabilities != nil {
		return r.opts.Capabilities.Dispatch(ctx, call)
	}
	return nil, &CallError{Code: CodeDenied, Message: fmt.Sprintf(
		"namespace %q denied: no capability or running actor by that name", call.Namespace)}
}

func (r *Runtime) guestLog(ctx context.Context, call HostCall) error {
	var level slog.Level
	switch call.Operation {
	case "debug":
		level = slog.LevelDebug
	case "info", "":
		level = slog.LevelInfo
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return fmt.Errorf("%s: unknown level %q (want debug, info, warn or error)", NamespaceLog, call.Operation)
	}
	a, ok := r.Actor(call.Caller)
	if !ok {
		return nil
	}
	a.log.emit(ctx, level, "log", string(call.Payload))
	return nil
}

type callDepthKey struct{}

func callDepth(ctx context.Context) int {
	d, _ := ctx.Value(callDepthKey{}).(int)
	return d
}

func withCallDepth(ctx context.Context, d int) context.Context {
	return context.WithValue(ctx, callDepthKey{}, d)
}

// ValidateName checks an actor name: 1–63 characters of a–z, 0–9, '-' and
// '_', starting with a letter or digit. Names become subject tokens on the
// lattice, so dots, spaces and wildcards are not allowed.
func ValidateName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("actor: name %q: want 1 to 63 characters", name)
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (i > 0 && (c == '-' || c == '_'))
		if !ok {
			return fmt.Errorf("actor: name %q: character %q at %d: want a-z, 0-9, '-' or '_' (not first)", name, c, i)
		}
	}
	return nil
}

var errNoInstance = errors.New("no instance")
