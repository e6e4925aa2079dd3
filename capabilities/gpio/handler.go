package gpio

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/capabilities"
)

// Invoker calls an actor's operation: how a watched edge reaches the actor
// that registered for it. The agent provides it.
type Invoker func(ctx context.Context, actor, operation string, payload []byte) error

// watchQueue bounds the edges waiting to be delivered to one watch; past it
// edges are dropped and counted, as hardware drops edges it cannot report.
const watchQueue = 64

// Handler serves trellis:gpio over a Provider: Read, Write and PWM on the
// lines an actor is granted in that direction, and Watch, which invokes the
// actor's operation with an Event (msgpack {line, level, time}) on each
// edge. The provider can be swapped while actors run: each watch moves to
// the new provider's line of the same name (a line the new provider lacks
// loses its watches, and Rewatched says so).
type Handler struct {
	invoke Invoker

	mu       sync.RWMutex
	provider Provider
	watches  map[string][]*watchEntry // by actor
	closed   bool
	wg       sync.WaitGroup

	dropped atomic.Uint64
}

// watchEntry is one live watch: what the actor asked for and how to end it.
type watchEntry struct {
	req    WatchRequest
	cancel context.CancelFunc
}

// NewHandler serves provider; invoke delivers edges to actors.
func NewHandler(provider Provider, invoke Invoker) *Handler {
	return &Handler{provider: provider, invoke: invoke, watches: map[string][]*watchEntry{}}
}

// SetProvider swaps the provider without restarting actors: every watch on
// the old one ends and is made again on the new one's line of the same
// name. It returns the watches that could not be moved (the new provider
// has no such line, or refused the watch), by actor.
func (h *Handler) SetProvider(p Provider) (lost map[string][]error) {
	h.mu.Lock()
	h.provider = p
	old := h.watches
	h.watches = map[string][]*watchEntry{}
	closed := h.closed
	h.mu.Unlock()
	for _, ws := range old {
		for _, w := range ws {
			w.cancel()
		}
	}
	if closed || p == nil {
		return nil
	}
	for actor, ws := range old {
		for _, w := range ws {
			l, err := p.Line(w.req.Line)
			if err == nil {
				err = h.watch(actor, l, w.req)
			}
			if err != nil {
				if lost == nil {
					lost = map[string][]error{}
				}
				lost[actor] = append(lost[actor], fmt.Errorf("watch of line %s: %w", w.req.Line, err))
			}
		}
	}
	return lost
}

// Provider returns the provider in use.
func (h *Handler) Provider() Provider {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.provider
}

// StopWatches ends an actor's watches (it was stopped).
func (h *Handler) StopWatches(actor string) {
	h.mu.Lock()
	ws := h.watches[actor]
	delete(h.watches, actor)
	h.mu.Unlock()
	for _, w := range ws {
		w.cancel()
	}
}

// Dropped counts edges dropped because an actor was not keeping up.
func (h *Handler) Dropped() uint64 { return h.dropped.Load() }

// Close ends every watch and waits for their deliveries to finish.
func (h *Handler) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.SetProvider(h.Provider())
	h.wg.Wait()
}

// Handle implements capabilities.Handler.
func (h *Handler) Handle(ctx context.Context, call capabilities.Call) ([]byte, error) {
	if err := capabilities.CheckMsgpack(call.Payload, capabilities.MaxPayloadDepth); err != nil {
		return nil, fmt.Errorf("%s: %w", call.Operation, err)
	}
	line := func(name string, dir capabilities.Direction) (Line, error) {
		if !call.Grants.GPIOAllows(name, dir) {
			return nil, fmt.Errorf("%w: actor %s may not use gpio line %q as %s", capabilities.ErrDenied, call.Actor, name, dir)
		}
		p := h.Provider()
		if p == nil {
			return nil, fmt.Errorf("%w: no gpio provider on this device", capabilities.ErrUnavailable)
		}
		return p.Line(name)
	}
	switch call.Operation {
	case OpRead:
		var r ReadRequest
		if err := r.UnmarshalMsgpack(call.Payload); err != nil { // strict: no trailing bytes
			return nil, err
		}
		l, err := line(r.Line, capabilities.DirIn)
		if err != nil {
			return nil, err
		}
		level, err := l.Read(ctx)
		if err != nil {
			return nil, err
		}
		return msgpack.Marshal(ReadResponse{Level: level})
	case OpWrite:
		var r WriteRequest
		if err := r.UnmarshalMsgpack(call.Payload); err != nil { // strict: no trailing bytes
			return nil, err
		}
		l, err := line(r.Line, capabilities.DirOut)
		if err != nil {
			return nil, err
		}
		return nil, l.Write(ctx, r.Level)
	case OpPWM:
		var r PWMRequest
		if err := r.UnmarshalMsgpack(call.Payload); err != nil { // strict: no trailing bytes
			return nil, err
		}
		l, err := line(r.Line, capabilities.DirPWM)
		if err != nil {
			return nil, err
		}
		return nil, l.PWM(ctx, r.Duty, r.Freq)
	case OpWatch:
		var r WatchRequest
		if err := r.UnmarshalMsgpack(call.Payload); err != nil { // strict: no trailing bytes
			return nil, err
		}
		l, err := line(r.Line, capabilities.DirIn)
		if err != nil {
			return nil, err
		}
		return nil, h.watch(call.Actor, l, r)
	}
	return nil, fmt.Errorf("%w: %s %q", capabilities.ErrUnknownOperation, capabilities.GPIO, call.Operation)
}

// watch registers an edge watch that outlives the call: it ends when the
// actor's watches are stopped, the provider is swapped or the handler closes.
func (h *Handler) watch(actor string, l Line, r WatchRequest) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return fmt.Errorf("%w: gpio handler closed", capabilities.ErrUnavailable)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.watches[actor] = append(h.watches[actor], &watchEntry{req: r, cancel: cancel})
	h.wg.Add(1)
	h.mu.Unlock()

	events := make(chan Event, watchQueue)
	go func() { // delivers the queued edges, in order, one at a time
		defer h.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-events:
				payload, err := msgpack.Marshal(ev)
				if err == nil && h.invoke != nil {
					_ = h.invoke(ctx, actor, r.Operation, payload)
				}
			}
		}
	}()
	err := l.Watch(ctx, r.Edge, func(ev Event) {
		select {
		case events <- ev:
		default:
			h.dropped.Add(1)
		}
	})
	if err != nil {
		cancel()
		return err
	}
	return nil
}

// Bind implements capabilities.Binder: watches on lines the actor's new
// grants no longer let it read end.
func (h *Handler) Bind(actor string, g capabilities.Grants) error {
	h.mu.Lock()
	var keep []*watchEntry
	var end []*watchEntry
	for _, w := range h.watches[actor] {
		if g.GPIOAllows(w.req.Line, capabilities.DirIn) {
			keep = append(keep, w)
		} else {
			end = append(end, w)
		}
	}
	if len(end) > 0 {
		h.watches[actor] = keep
	}
	h.mu.Unlock()
	for _, w := range end {
		w.cancel()
	}
	return nil
}

// Unbind implements capabilities.Binder: the actor's watches end.
func (h *Handler) Unbind(actor string) { h.StopWatches(actor) }
