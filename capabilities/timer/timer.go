// Package timer is the trellis:timer contract and the schedule bindings:
// invocations of an actor's operations at a time or a period.
//
// An actor with the timers grant sets, cancels and lists its own timers.
// Operations and their msgpack payloads (map keys as shown; unknown and
// repeated keys are errors):
//
//	Set     {name: str, operation: str, after: int ms, every: int ms, payload: bin} → nil
//	Cancel  {name: str}  → {existed: bool}
//	List    {}           → {timers: [{name: str, operation: str, next: int (Unix ns), every: int ms}]}
//
// In Set, name and operation are required; after, every and payload may
// be left out or nil. every 0 is a one-shot timer that fires after ms from
// now; otherwise the timer first fires after ms (0: one period) and then
// every ms (at least capabilities.MinSchedulePeriod). Set of an existing
// name replaces it. A firing invokes the actor's operation with
//
//	{name: str, time: int (Unix ns, when the tick was due), payload: bin or nil}
//
// An operator binds periodic invocations in the grants' schedule, which
// needs no timers grant; they are invoked with payload nil, are not listed
// and cannot be cancelled by the actor, and their names are apart from the
// actor's timers'. A tick that comes while the previous invocation of the
// same timer still runs is skipped and counted, and a failed invocation is
// logged and counted but never stops a timer.
//
// Persistence. Timers an actor sets are kept in the store (capability
// state of kind "timer", one record per name) before Set answers, and are
// started again when the actor is bound after a restart:
//
//   - A record holds the timer's first due time and its period, never a
//     per-tick state: a periodic timer's ticks fall on due + k·every, so
//     after a restart it goes on at its period, at the first of those times
//     not before the restart; the ticks it missed while the device was off
//     are not made up (nor counted).
//   - A one-shot timer that fell due while the device was off fires once,
//     late, as soon as its actor is bound; its Tick carries the time it was
//     due, so the actor can tell how late it is.
//   - A one-shot timer's record is deleted after its invocation returns,
//     successful or not: it fires at least once, and at most once more if
//     the device stops (a crash, or Close cutting the invocation short)
//     between the invocation and the deletion.
//
// Schedules are not stored: they come with the grants, which the agent
// keeps, and restart with them (the first tick one period after Bind).
//
// This package is imported by the agent, which registers the Handler under
// capabilities.Timer; it imports only capabilities and store.
package timer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/store"
)

// Operation names.
const (
	OpSet    = "Set"
	OpCancel = "Cancel"
	OpList   = "List"
)

// MaxTimers is how many timers one actor may have set at once (schedule
// bindings do not count).
const MaxTimers = 256

// InvokeTimeout bounds one firing's invocation; the actor's own call
// deadline, set by the runtime, is usually shorter.
const InvokeTimeout = 30 * time.Second

// StoreKind is the kind of the capability state records this package keeps.
const StoreKind = "timer"

// ErrTooManyTimers is a Set past MaxTimers. It wraps
// capabilities.ErrBadPayload, which is what the guest sees.
var ErrTooManyTimers = fmt.Errorf("%w: too many timers", capabilities.ErrBadPayload)

// Store keeps timers across restarts (*store.Store implements it).
type Store interface {
	CapStatePut(kind, actor, id string, value []byte) error
	CapStateDelete(kind, actor, id string) (bool, error)
	CapStateDeleteActor(kind, actor string) error
	CapStateList(kind string) ([]store.CapState, error)
}

// Clock is the time source: clockwork.NewRealClock() or, in tests, a
// *clockwork.FakeClock.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) clockwork.Timer
}

// Options configure a Handler.
type Options struct {
	// Store keeps the timers actors set. Required.
	Store Store
	// Invoke calls an actor's operation when one of its timers fires.
	// Nil fails every firing (counted and logged).
	Invoke capabilities.Invoker
	// Logger receives failed firings (rate-limited per timer). Nil discards.
	Logger *slog.Logger
	// Clock is the time source. Nil means real time.
	Clock Clock
}

// Stats counts firings since the Handler was made.
type Stats struct {
	Timers  int    // timers and schedules held now (a one-shot until its invocation returns)
	Fired   uint64 // ticks that invoked an actor
	Skipped uint64 // ticks that did not: the previous invocation still ran, or the host fell behind
	Failed  uint64 // invocations that returned an error (counted in Fired too)
}

// Handler serves trellis:timer and binds the grants' schedules. It
// implements capabilities.Handler and capabilities.Binder; one Handler
// serves every actor. Close it to stop every timer.
type Handler struct {
	store  Store
	invoke capabilities.Invoker
	log    *slog.Logger
	clock  Clock

	// ops serialises changes (Set, Cancel, Bind, Unbind, Close and the end
	// of a one-shot): each writes the store, then memory, so the two agree.
	// It is a channel so that a call waiting for it honours its ctx.
	ops chan struct{}

	ctx    context.Context // parent of every invocation; Close cancels it
	cancel context.CancelFunc

	mu     sync.Mutex
	actors map[string]*actorTimers
	closed bool
	// wg counts armed clock timers and running ticks: Add when armed, Done
	// when stopped before it ran or when its tick ends.
	wg sync.WaitGroup

	fired, skipped, failed atomic.Uint64
}

// actorTimers is one actor's timers. Its maps and entries are guarded by
// Handler.mu.
type actorTimers struct {
	name      string
	ctx       context.Context // parent of the actor's invocations; Unbind cancels it
	cancel    context.CancelFunc
	loaded    bool              // the stored timers were read (timers granted)
	timers    map[string]*entry // set by the actor, by name
	schedules map[string]*entry // bound by the grants, by name
}

// entry is one timer or schedule.
type entry struct {
	owner     *actorTimers
	name      string
	operation string
	every     time.Duration // 0: a one-shot timer
	due       time.Time     // first due time; periodic ticks fall on due + k·every
	payload   []byte
	schedule  bool

	// Guarded by Handler.mu.
	timer      clockwork.Timer // armed for next; nil while none
	next       time.Time
	stopped    bool
	busy       bool // an invocation runs
	lastLog    time.Time
	suppressed int // failures not logged since lastLog
}

// failureLogEvery is how often one timer's failures are logged.
const failureLogEvery = time.Minute

// New returns a Handler with no timers; Bind starts an actor's. It panics
// without a Store.
func New(opts Options) *Handler {
	if opts.Store == nil {
		panic("timer: New: Options.Store is nil")
	}
	h := &Handler{
		store:  opts.Store,
		invoke: opts.Invoke,
		log:    opts.Logger,
		clock:  opts.Clock,
		ops:    make(chan struct{}, 1),
		actors: map[string]*actorTimers{},
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.log = h.log.With("subsystem", "timer")
	if h.clock == nil {
		h.clock = clockwork.NewRealClock()
	}
	if h.invoke == nil {
		h.invoke = func(context.Context, string, string, []byte) ([]byte, error) {
			return nil, fmt.Errorf("%w: no invoker", capabilities.ErrUnavailable)
		}
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

// Stats returns the Handler's counters.
func (h *Handler) Stats() Stats {
	h.mu.Lock()
	n := 0
	for _, a := range h.actors {
		n += len(a.timers) + len(a.schedules)
	}
	h.mu.Unlock()
	return Stats{Timers: n, Fired: h.fired.Load(), Skipped: h.skipped.Load(), Failed: h.failed.Load()}
}

// lock takes ops, or gives up when ctx ends.
func (h *Handler) lock(ctx context.Context) error {
	select {
	case h.ops <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Handler) unlock() { <-h.ops }

var errClosed = fmt.Errorf("%w: timer handler closed", capabilities.ErrUnavailable)

// Handle implements capabilities.Handler.
func (h *Handler) Handle(ctx context.Context, call capabilities.Call) ([]byte, error) {
	if !call.Grants.Timers {
		return nil, fmt.Errorf("%w: actor %s has no timers grant", capabilities.ErrDenied, call.Actor)
	}
	var (
		set  setRequest
		name string
		err  error
	)
	switch call.Operation {
	case OpSet:
		set, err = decodeSet(call.Payload)
	case OpCancel:
		name, err = decodeCancel(call.Payload)
	case OpList:
		err = decodeList(call.Payload)
	default:
		return nil, fmt.Errorf("%w: %s %q", capabilities.ErrUnknownOperation, capabilities.Timer, call.Operation)
	}
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := h.lock(ctx); err != nil {
		return nil, err
	}
	defer h.unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a, err := h.loaded(call.Actor)
	if err != nil {
		return nil, fmt.Errorf("timer: %s: %w", call.Operation, err)
	}
	switch call.Operation {
	case OpSet:
		return nil, h.set(a, set)
	case OpCancel:
		existed, err := h.cancelTimer(a, name)
		if err != nil {
			return nil, err
		}
		return encodeCancelResponse(existed)
	default:
		return encodeListResponse(h.list(a))
	}
}

// loaded returns the actor's timers, read from the store if they were not
// yet (the actor was not bound: the Handler serves without a dispatcher).
// The caller holds ops.
func (h *Handler) loaded(actor string) (*actorTimers, error) {
	h.mu.Lock()
	closed, a := h.closed, h.actors[actor]
	h.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	if a != nil && a.loaded {
		return a, nil
	}
	stored, err := h.read(actor)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	a = h.actor(actor)
	h.start(a, stored)
	return a, nil
}

// set stores a timer, then arms it in place of any of the same name. The
// caller holds ops.
func (h *Handler) set(a *actorTimers, r setRequest) error {
	h.mu.Lock()
	_, replaces := a.timers[r.name]
	n := len(a.timers)
	h.mu.Unlock()
	if !replaces && n >= MaxTimers {
		return fmt.Errorf("timer: %s: %w: name %q: actor %s has %d timers, the most allowed; cancel one first",
			OpSet, ErrTooManyTimers, r.name, a.name, n)
	}
	first := r.after
	if r.every > 0 && first == 0 {
		first = r.every
	}
	e := &entry{owner: a, name: r.name, operation: r.operation, every: r.every, due: h.clock.Now().Add(first), payload: r.payload}
	rec, err := record{operation: e.operation, every: e.every, payload: e.payload, due: e.due}.encode()
	if err == nil {
		err = h.store.CapStatePut(StoreKind, a.name, e.name, rec)
	}
	if err != nil {
		h.log.Error("storing a timer", "actor", a.name, "timer", r.name, "err", err)
		return fmt.Errorf("timer: %s %q: %w: the timer could not be stored", OpSet, r.name, capabilities.ErrUnavailable)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := a.timers[e.name]; old != nil {
		h.stop(old)
	}
	a.timers[e.name] = e
	h.arm(e, e.due)
	return nil
}

// cancelTimer deletes a timer from the store, then stops it. The caller
// holds ops.
func (h *Handler) cancelTimer(a *actorTimers, name string) (bool, error) {
	stored, err := h.store.CapStateDelete(StoreKind, a.name, name)
	if err != nil {
		h.log.Error("deleting a timer", "actor", a.name, "timer", name, "err", err)
		return false, fmt.Errorf("timer: %s %q: %w: the stored timer could not be deleted", OpCancel, name, capabilities.ErrUnavailable)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e, running := a.timers[name]
	if running {
		h.stop(e)
		delete(a.timers, name)
	}
	return stored || running, nil
}

// list returns the actor's timers by name.
func (h *Handler) list(a *actorTimers) []timerInfo {
	h.mu.Lock()
	out := make([]timerInfo, 0, len(a.timers))
	for _, e := range a.timers {
		out = append(out, timerInfo{Name: e.name, Operation: e.operation, Next: e.next, Every: e.every})
	}
	h.mu.Unlock()
	slices.SortFunc(out, func(x, y timerInfo) int { return cmp.Compare(x.Name, y.Name) })
	return out
}

// Bind implements capabilities.Binder. It starts the actor's stored timers
// (when it holds the timers grant and they are not running yet) and makes
// its schedules those of g. It is idempotent: a schedule whose name, period
// and operation are unchanged, and a running timer, go on undisturbed. When
// g no longer grants timers, the actor's timers stop but stay in the store
// (a Bind with the grant starts them again, as the dispatcher's rollback of
// a failed SetGrants needs); Unbind deletes them.
func (h *Handler) Bind(actor string, g capabilities.Grants) error {
	for i, s := range g.Schedule {
		switch every := time.Duration(s.Every); {
		case validName(s.Name) != "":
			return fmt.Errorf("timer: bind actor %s: %w: schedule[%d] %q: name: %s", actor, capabilities.ErrBadPayload, i, s.Name, validName(s.Name))
		case validOperation(s.Operation) != "":
			return fmt.Errorf("timer: bind actor %s: %w: schedule[%d] %q: operation: %s", actor, capabilities.ErrBadPayload, i, s.Name, validOperation(s.Operation))
		case every < capabilities.MinSchedulePeriod || every > MaxDelay:
			return fmt.Errorf("timer: bind actor %s: %w: schedule[%d] %q: every %s: want %s to %s", actor, capabilities.ErrBadPayload, i, s.Name, every, capabilities.MinSchedulePeriod, MaxDelay)
		}
	}
	_ = h.lock(context.Background())
	defer h.unlock()
	h.mu.Lock()
	closed, a := h.closed, h.actors[actor]
	h.mu.Unlock()
	if closed {
		return fmt.Errorf("timer: bind actor %s: %w", actor, errClosed)
	}
	var stored []*entry
	load := g.Timers && (a == nil || !a.loaded)
	if load {
		var err error
		if stored, err = h.read(actor); err != nil {
			return fmt.Errorf("timer: bind actor %s: %w", actor, err)
		}
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	a = h.actor(actor)
	now := h.clock.Now()
	want := map[string]capabilities.ScheduleEntry{}
	for _, s := range g.Schedule {
		want[s.Name] = s
	}
	for name, e := range a.schedules {
		if s, ok := want[name]; !ok || time.Duration(s.Every) != e.every || s.Operation != e.operation {
			h.stop(e)
			delete(a.schedules, name)
		}
	}
	for _, s := range g.Schedule {
		if _, running := a.schedules[s.Name]; running {
			continue
		}
		every := time.Duration(s.Every)
		e := &entry{owner: a, name: s.Name, operation: s.Operation, every: every, due: now.Add(every), schedule: true}
		a.schedules[s.Name] = e
		h.arm(e, e.due)
	}
	switch {
	case !g.Timers:
		for _, e := range a.timers {
			h.stop(e)
		}
		clear(a.timers)
		a.loaded = false
	case load:
		h.start(a, stored)
	}
	return nil
}

// Unbind implements capabilities.Binder: the actor was stopped. Its timers
// and schedules stop, running invocations are cancelled, and its stored
// timers are deleted.
func (h *Handler) Unbind(actor string) {
	_ = h.lock(context.Background())
	defer h.unlock()
	h.mu.Lock()
	if a := h.actors[actor]; a != nil {
		h.stopActor(a)
		delete(h.actors, actor)
	}
	h.mu.Unlock()
	if err := h.store.CapStateDeleteActor(StoreKind, actor); err != nil {
		h.log.Error("deleting stored timers", "actor", actor, "err", err)
	}
}

// Release implements capabilities.Releaser: the actor's timers and
// schedules stop but its stored timers stay, to start again when it is
// bound next (its start failed).
func (h *Handler) Release(actor string) {
	_ = h.lock(context.Background())
	defer h.unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if a := h.actors[actor]; a != nil {
		h.stopActor(a)
		delete(h.actors, actor)
	}
}

// Close stops every timer and schedule, cancels the invocations that run
// and waits for them to return. Stored timers stay: they start again when
// a new Handler on the same store binds their actors.
func (h *Handler) Close() {
	_ = h.lock(context.Background())
	h.mu.Lock()
	h.closed = true
	for _, a := range h.actors {
		h.stopActor(a)
	}
	h.mu.Unlock()
	h.unlock()
	h.cancel()
	h.wg.Wait()
}

// actor returns an actor's timers, made empty if it had none. The caller
// holds mu.
func (h *Handler) actor(name string) *actorTimers {
	a := h.actors[name]
	if a == nil {
		a = &actorTimers{name: name, timers: map[string]*entry{}, schedules: map[string]*entry{}}
		a.ctx, a.cancel = context.WithCancel(h.ctx)
		h.actors[name] = a
	}
	return a
}

// stopActor stops an actor's timers and schedules and cancels its
// invocations. The caller holds mu.
func (h *Handler) stopActor(a *actorTimers) {
	for _, e := range a.timers {
		h.stop(e)
	}
	for _, e := range a.schedules {
		h.stop(e)
	}
	a.cancel()
}

// read returns an actor's stored timers. A record that does not decode is
// logged and left alone.
func (h *Handler) read(actor string) ([]*entry, error) {
	recs, err := h.store.CapStateList(StoreKind)
	if err != nil {
		h.log.Error("reading stored timers", "actor", actor, "err", err)
		return nil, fmt.Errorf("%w: the stored timers could not be read", capabilities.ErrUnavailable)
	}
	var out []*entry
	for _, rec := range recs {
		if rec.Actor != actor {
			continue
		}
		r, err := decodeRecord(rec.Value)
		if err == nil && validName(rec.ID) != "" {
			err = errors.New("bad name")
		}
		if err != nil {
			h.log.Error("stored timer skipped", "actor", actor, "timer", rec.ID, "err", err)
			continue
		}
		out = append(out, &entry{name: rec.ID, operation: r.operation, every: r.every, due: r.due, payload: r.payload})
	}
	return out, nil
}

// start arms stored timers that are not running yet and marks the actor's
// timers loaded. The caller holds mu.
func (h *Handler) start(a *actorTimers, stored []*entry) {
	if a.loaded {
		return
	}
	a.loaded = true
	now := h.clock.Now()
	for _, e := range stored {
		if _, running := a.timers[e.name]; running {
			continue
		}
		e.owner = a
		a.timers[e.name] = e
		next := e.due // a one-shot that fell due while the device was off fires now, once
		if e.every > 0 {
			next = grid(e.due, e.every, now) // a periodic one goes on at its period
		}
		h.arm(e, next)
	}
}

// arm makes e tick at at. The caller holds mu.
func (h *Handler) arm(e *entry, at time.Time) {
	e.next = at
	h.wg.Add(1)
	e.timer = h.clock.AfterFunc(at.Sub(h.clock.Now()), func() { h.tick(e, at) })
}

// stop disarms e for good. The caller holds mu.
func (h *Handler) stop(e *entry) {
	e.stopped = true
	if e.timer != nil && e.timer.Stop() {
		h.wg.Done() // it will not tick
	}
	e.timer = nil
}

// tick is e falling due at due: it arms the next tick of a periodic timer,
// then invokes the actor unless the previous invocation still runs.
func (h *Handler) tick(e *entry, due time.Time) {
	defer h.wg.Done()
	h.mu.Lock()
	if e.stopped {
		h.mu.Unlock()
		return
	}
	e.timer = nil
	if e.every > 0 {
		next, missed := nextTick(e.due, e.every, due, h.clock.Now())
		h.skipped.Add(missed)
		h.arm(e, next)
	}
	if e.busy {
		h.mu.Unlock()
		h.skipped.Add(1)
		return
	}
	e.busy = true
	parent := e.owner.ctx
	h.mu.Unlock()

	ctx, cancel := context.WithTimeout(parent, InvokeTimeout)
	payload, err := encodeTick(e.name, due, e.payload)
	if err == nil {
		_, err = h.invoke(ctx, e.owner.name, e.operation, payload)
	}
	cancel()

	h.mu.Lock()
	e.busy = false
	if err != nil {
		h.logFailure(e, err)
	}
	h.mu.Unlock()
	if e.every == 0 {
		h.fired1(e)
	}
	// Counted last: whoever sees the count sees the timer ready to fire
	// again, and a one-shot forgotten.
	if err != nil {
		h.failed.Add(1)
	}
	h.fired.Add(1)
}

// nextTick returns the tick after the one due at due: one period later, or
// if the host fell behind (it was suspended, or this tick ran late) the
// first tick on the timer's grid not before now, with the ticks passed over.
func nextTick(first time.Time, every time.Duration, due, now time.Time) (time.Time, uint64) {
	next := due.Add(every)
	if !next.Before(now) {
		return next, 0
	}
	n := grid(first, every, now)
	return n, uint64(n.Sub(next) / every)
}

// grid returns the first of first + k·every (k ≥ 0) not before now.
func grid(first time.Time, every time.Duration, now time.Time) time.Time {
	d := now.Sub(first) // saturates rather than overflows
	if d <= 0 {
		return first
	}
	next := first.Add(d / every * every)
	if d%every != 0 {
		next = next.Add(every)
	}
	return next
}

// fired1 forgets a one-shot timer that fired, unless it was replaced,
// cancelled or stopped meanwhile (a stopped timer stays in the store when
// the Handler closed, and so fires again after a restart).
func (h *Handler) fired1(e *entry) {
	_ = h.lock(context.Background())
	defer h.unlock()
	h.mu.Lock()
	a := e.owner
	current := !e.stopped && a.timers[e.name] == e
	if current {
		e.stopped = true
		delete(a.timers, e.name)
	}
	h.mu.Unlock()
	if !current {
		return
	}
	if _, err := h.store.CapStateDelete(StoreKind, a.name, e.name); err != nil {
		h.log.Error("deleting a fired timer", "actor", a.name, "timer", e.name, "err", err)
	}
}

// logFailure logs a failed invocation, at most once per failureLogEvery
// per timer. The caller holds mu.
func (h *Handler) logFailure(e *entry, err error) {
	now := h.clock.Now()
	if !e.lastLog.IsZero() && now.Sub(e.lastLog) < failureLogEvery {
		e.suppressed++
		return
	}
	kind := "timer"
	if e.schedule {
		kind = "schedule"
	}
	h.log.Warn("timer invocation failed", "actor", e.owner.name, kind, e.name, "operation", e.operation,
		"err", err, "suppressed", e.suppressed)
	e.lastLog, e.suppressed = now, 0
}
