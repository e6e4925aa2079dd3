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
// edge. The provider can be swapped while actors run; watches on the old
// one end and actors register them again.
type Handler struct {
	invoke Invoker

	mu       sync.RWMutex
	provider Provider
	watches  map[string][]context.CancelFunc // by actor
	closed   bool
	wg       sync.WaitGroup

	dropped atomic.Uint64
}

// NewHandler serves provider; invoke delivers edges to actors.
func NewHandler(provider Provider, invoke Invoker) *Handler {
	return &Handler{provider: provider, invoke: invoke, watches: map[string][]context.CancelFunc{}}
}

// SetProvider swaps the provider: every watch on the old one ends.
func (h *Handler) SetProvider(p Provider) {
	h.mu.Lock()
	h.provider = p
	cancels := h.watches
	h.watches = map[string][]context.CancelFunc{}
	h.mu.Unlock()
	for _, cs := range cancels {
		for _, c := range cs {
			c()
		}
	}
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
	cs := h.watches[actor]
	delete(h.watches, actor)
	h.mu.Unlock()
	for _, c := range cs {
		c()
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
	h.watches[actor] = append(h.watches[actor], cancel)
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
