// Package messaging is the trellis:messaging contract (publish, request and
// subscribe on raw NATS subjects of the device bus), its wasmCloud
// compatibility namespaces wasmcloud:messaging (wasmbus and 0.18 eras) and
// wascc:messaging, and the trellis:telemetry contract.
//
// Operations of trellis:messaging and their msgpack payloads (the wasmbus
// shapes of wasmCloud's messaging interface where one exists):
//
//	Publish      {subject, replyTo?, body: bin}           → nil
//	Request      {subject, body: bin, timeoutMs: u32}     → {subject, replyTo?, body: bin}
//	Subscribe    {subject, operation, queue?}             → {id: str}
//	Unsubscribe  {id}                                     → {existed: bool}
//
// A message on a subscription invokes the actor's operation with
// {subject, replyTo?, body: bin}. Subscriptions come from the Subscribe
// operation (kept in the store, made again after a restart) and from the
// operator's bindings in the actor's grants (Grants.Subscriptions); Handler
// is a capabilities.Binder for the latter.
//
// Subjects reserved to the host (see Reserved) are refused whatever the
// grants say. The package imports capabilities and its wasmcloud codecs,
// and nats.go; the agent wires it in.
package messaging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
	"github.com/trellis-edge/trellis/store"
)

// Operation names of trellis:messaging (and of trellis:telemetry, Publish).
const (
	OpPublish     = "Publish"
	OpRequest     = "Request"
	OpSubscribe   = "Subscribe"
	OpUnsubscribe = "Unsubscribe"
)

// Defaults of Options.
const (
	// DefaultQueueLen bounds the messages waiting for one subscription's
	// actor; past it they are dropped and counted.
	DefaultQueueLen = 256
	// DefaultMaxSubscriptions bounds an actor's runtime subscriptions
	// (bindings in its grants are not counted).
	DefaultMaxSubscriptions = 64
	// DefaultDeliveryTimeout caps one delivery; the actor's own call
	// timeout, applied by the runtime, is usually shorter.
	DefaultDeliveryTimeout = 30 * time.Second
	// DefaultRequestTimeout is a Request's wait when its timeoutMs is 0.
	DefaultRequestTimeout = 2 * time.Second
)

// StateKind is the kind of the store records that keep runtime
// subscriptions (store capability state).
const StateKind = "subscription"

// Headers of a reply to a message whose delivery failed: the same names as
// the lattice's RPC replies (mesh.HeaderErrorCode, mesh.HeaderError), so a
// requester reads both alike.
const (
	HeaderErrorCode = "Trellis-Error-Code"
	HeaderError     = "Trellis-Error"
)

// Store keeps runtime subscriptions across restarts (*store.Store
// implements it).
type Store interface {
	CapStatePut(kind, actor, id string, value []byte) error
	CapStateDelete(kind, actor, id string) (bool, error)
	CapStateDeleteActor(kind, actor string) error
	CapStateList(kind string) ([]store.CapState, error)
}

// Options configure a Handler. Conn is required; zero values elsewhere
// mean the defaults.
type Options struct {
	// Conn is the device bus. The Handler uses it and never closes it.
	Conn *nats.Conn
	// Store keeps runtime subscriptions; nil keeps them in memory only.
	Store Store
	// Invoke delivers messages to actors.
	Invoke capabilities.Invoker
	// Lattice and Host name this device in logs.
	Lattice, Host string
	// Logger gets what goes wrong outside a call (deliveries, restores,
	// the store); per-message lines are rate-limited. Nil discards.
	Logger *slog.Logger
	// QueueLen is each subscription's delivery queue (DefaultQueueLen).
	QueueLen int
	// MaxSubscriptions bounds an actor's runtime subscriptions
	// (DefaultMaxSubscriptions).
	MaxSubscriptions int
	// DeliveryTimeout caps one delivery (DefaultDeliveryTimeout).
	DeliveryTimeout time.Duration
}

// Handler serves trellis:messaging, wasmcloud:messaging and
// wascc:messaging (register it under each), and binds actors'
// subscriptions (it is a capabilities.Binder). Close it when done.
type Handler struct {
	nc             *nats.Conn
	store          Store
	invoke         capabilities.Invoker
	log            *slog.Logger
	queueLen       int
	maxSubs        int
	deliverTimeout time.Duration
	logEvery       rateLimit

	closed atomic.Bool
	mu     sync.Mutex // guards actors, pending, loaded; held across subscribe and store writes
	actors map[string]*actorSubs
	// pending are stored runtime subscriptions not yet made again, by
	// actor: loaded from the store once, at the first Bind, and made when
	// their actor is bound.
	pending map[string][]store.CapState
	loaded  bool
	wg      sync.WaitGroup // delivery goroutines

	replies replies

	delivered, dropped, failed atomic.Uint64
}

// New returns a Handler on opts.Conn. It starts nothing until actors are
// bound or subscribe.
func New(opts Options) *Handler {
	h := &Handler{
		nc:             opts.Conn,
		store:          opts.Store,
		invoke:         opts.Invoke,
		log:            opts.Logger,
		queueLen:       opts.QueueLen,
		maxSubs:        opts.MaxSubscriptions,
		deliverTimeout: opts.DeliveryTimeout,
		actors:         map[string]*actorSubs{},
		pending:        map[string][]store.CapState{},
		replies:        replies{m: map[replyKey]*inflight{}},
	}
	if h.log == nil {
		h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h.log = h.log.With("subsystem", "messaging", "lattice", opts.Lattice, "host", opts.Host)
	if h.queueLen <= 0 {
		h.queueLen = DefaultQueueLen
	}
	if h.maxSubs <= 0 {
		h.maxSubs = DefaultMaxSubscriptions
	}
	if h.deliverTimeout <= 0 {
		h.deliverTimeout = DefaultDeliveryTimeout
	}
	return h
}

// Stats are a Handler's counters, for the agent's metrics.
type Stats struct {
	Subscriptions int    // active subscriptions, bindings and runtime
	Delivered     uint64 // messages whose invocation succeeded
	Dropped       uint64 // messages dropped because their subscription's queue was full
	Failed        uint64 // messages whose invocation (or its reply) failed
}

// Stats returns the counters.
func (h *Handler) Stats() Stats {
	h.mu.Lock()
	n := 0
	for _, a := range h.actors {
		n += len(a.bindings) + len(a.runtime)
	}
	h.mu.Unlock()
	return Stats{Subscriptions: n, Delivered: h.delivered.Load(), Dropped: h.dropped.Load(), Failed: h.failed.Load()}
}

// Close ends every subscription and waits for the deliveries in progress
// (their invocations are cancelled). Stored subscriptions stay in the
// store, to be made again by the next Handler. Calls after Close fail with
// ErrUnavailable.
func (h *Handler) Close() {
	h.mu.Lock()
	h.closed.Store(true)
	actors := h.actors
	h.actors = map[string]*actorSubs{}
	h.mu.Unlock()
	for _, a := range actors {
		a.stopAll()
	}
	h.wg.Wait()
}

var errClosed = fmt.Errorf("%w: messaging is closed", capabilities.ErrUnavailable)

// Handle implements capabilities.Handler for trellis:messaging and the
// compatibility namespaces.
func (h *Handler) Handle(ctx context.Context, call capabilities.Call) ([]byte, error) {
	if h.closed.Load() {
		return nil, errClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if call.Contract != capabilities.Messaging {
		return h.handleCompat(ctx, call)
	}
	switch call.Operation {
	case OpPublish:
		if err := capabilities.CheckMsgpack(call.Payload, capabilities.MaxPayloadDepth); err != nil {
			return nil, fmt.Errorf("%s: %w", call.Operation, err)
		}
		m, err := wasmcloud.DecodeMessage(wasmcloud.EraWasmbus, call.Payload)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", call.Operation, err)
		}
		return nil, h.publish(ctx, call, m)
	case OpRequest:
		if err := capabilities.CheckMsgpack(call.Payload, capabilities.MaxPayloadDepth); err != nil {
			return nil, fmt.Errorf("%s: %w", call.Operation, err)
		}
		r, err := wasmcloud.DecodeRequestMessage(wasmcloud.EraWasmbus, call.Payload)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", call.Operation, err)
		}
		reply, err := h.request(ctx, call, r)
		if err != nil {
			return nil, err
		}
		return wasmcloud.EncodeMessage(wasmcloud.EraWasmbus, reply)
	case OpSubscribe:
		r, err := decodeSubscribe(call.Payload)
		if err != nil {
			return nil, err
		}
		id, err := h.subscribe(call, r)
		if err != nil {
			return nil, err
		}
		return msgpackMarshal(SubscribeResponse{ID: id})
	case OpUnsubscribe:
		r, err := decodeUnsubscribe(call.Payload)
		if err != nil {
			return nil, err
		}
		existed, err := h.unsubscribe(call.Actor, r.ID)
		if err != nil {
			return nil, err
		}
		return msgpackMarshal(UnsubscribeResponse{Existed: existed})
	}
	return nil, fmt.Errorf("%w: %s %s", capabilities.ErrUnknownOperation, capabilities.Messaging, quote(call.Operation))
}

// handleCompat serves wasmcloud:messaging and wascc:messaging: the same
// publish and request, with each era's shapes.
func (h *Handler) handleCompat(ctx context.Context, call capabilities.Call) ([]byte, error) {
	op, ok := wasmcloud.LookupHostCall(call.Contract, call.Operation)
	if !ok || op.Namespace != wasmcloud.Messaging && op.Namespace != wasmcloud.WaSCCMessaging {
		return nil, fmt.Errorf("%w: %s %s", capabilities.ErrUnknownOperation, quote(call.Contract), quote(call.Operation))
	}
	e := op.Era
	switch op.Name {
	case wasmcloud.OpPublish, wasmcloud.OpLegacyPublish:
		m, err := wasmcloud.DecodeMessage(e, call.Payload)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", call.Operation, err)
		}
		if err := h.publish(ctx, call, m); err != nil {
			return nil, err
		}
		if e == wasmcloud.Era018 {
			return wasmcloud.EncodePublishResponse(true)
		}
		return nil, nil // wasmbus expects nothing; waSCC ignores the answer
	case wasmcloud.OpRequest, wasmcloud.OpLegacyRequest:
		r, err := wasmcloud.DecodeRequestMessage(e, call.Payload)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", call.Operation, err)
		}
		reply, err := h.request(ctx, call, r)
		if err != nil {
			return nil, err
		}
		if e == wasmcloud.EraWaSCC {
			return reply.Body, nil // waSCC answers the reply's raw bytes
		}
		return wasmcloud.EncodeMessage(e, reply)
	}
	return nil, fmt.Errorf("%w: %s %s is not supported on this host", capabilities.ErrUnknownOperation, call.Contract, call.Operation)
}

// publish sends m for the calling actor. A reply to a message being
// delivered to the actor needs no grant (the subject is the message's
// reply subject); anything else needs a publish grant and must not be
// reserved, and so must its replyTo, where responders will publish.
func (h *Handler) publish(ctx context.Context, call capabilities.Call, m wasmcloud.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkSubject("subject", m.Subject, false); err != nil {
		return fmt.Errorf("%w: %s: %v", capabilities.ErrBadPayload, call.Operation, err)
	}
	if m.ReplyTo != "" {
		if err := checkSubject("replyTo", m.ReplyTo, false); err != nil {
			return fmt.Errorf("%w: %s: %v", capabilities.ErrBadPayload, call.Operation, err)
		}
		if err := canPublish(call, "replyTo", m.ReplyTo); err != nil {
			return err
		}
	}
	if !h.replies.use(call.Actor, m.Subject) {
		if err := canPublish(call, "subject", m.Subject); err != nil {
			return err
		}
	}
	if err := h.nc.PublishMsg(&nats.Msg{Subject: m.Subject, Reply: m.ReplyTo, Data: m.Body}); err != nil {
		return busError(call.Operation, m.Subject, err)
	}
	return nil
}

// request sends r and waits for one reply, at most r.TimeoutMs (0: the
// default) and never past ctx.
func (h *Handler) request(ctx context.Context, call capabilities.Call, r wasmcloud.RequestMessage) (wasmcloud.Message, error) {
	if err := checkSubject("subject", r.Subject, false); err != nil {
		return wasmcloud.Message{}, fmt.Errorf("%w: %s: %v", capabilities.ErrBadPayload, call.Operation, err)
	}
	if err := canPublish(call, "subject", r.Subject); err != nil {
		return wasmcloud.Message{}, err
	}
	wait := time.Duration(r.TimeoutMs) * time.Millisecond
	if wait == 0 {
		wait = DefaultRequestTimeout
	}
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	resp, err := h.nc.RequestMsgWithContext(rctx, &nats.Msg{Subject: r.Subject, Data: r.Body})
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return wasmcloud.Message{}, fmt.Errorf("%w: %s %s: no reply within %v (%w)", capabilities.ErrUnavailable, call.Operation, quote(r.Subject), wait, err)
	case ctx.Err() != nil:
		return wasmcloud.Message{}, fmt.Errorf("%s %s: %w", call.Operation, quote(r.Subject), ctx.Err())
	default:
		return wasmcloud.Message{}, busError(call.Operation, r.Subject, err)
	}
	if code := resp.Header.Get(HeaderErrorCode); code != "" {
		return wasmcloud.Message{}, fmt.Errorf("%w: %s %s: the responder failed: %s: %s", capabilities.ErrUnavailable, call.Operation, quote(r.Subject), quote(code), quote(resp.Header.Get(HeaderError)))
	}
	return wasmcloud.Message{Subject: resp.Subject, ReplyTo: resp.Reply, Body: resp.Data}, nil
}

// canPublish checks a subject the actor wants to publish to (or to have
// responders publish to) against its grants and the reserved subjects.
func canPublish(call capabilities.Call, field, subject string) error {
	if Reserved(subject) {
		return fmt.Errorf("%w: actor %s may not publish to %s %s: reserved to the host", capabilities.ErrDenied, call.Actor, field, quote(subject))
	}
	if !call.Grants.CanPublish(subject) {
		return fmt.Errorf("%w: actor %s has no publish grant for %s %s", capabilities.ErrDenied, call.Actor, field, quote(subject))
	}
	return nil
}

// busError turns a nats.go error into one a guest can read.
func busError(op, subject string, err error) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%w: %s %s: no responders", capabilities.ErrUnavailable, op, quote(subject))
	case errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("%w: %s %s: body is over the bus's payload limit", capabilities.ErrBadPayload, op, quote(subject))
	case errors.Is(err, nats.ErrBadSubject):
		return fmt.Errorf("%w: %s %s: invalid subject", capabilities.ErrBadPayload, op, quote(subject))
	}
	return fmt.Errorf("%w: %s %s: bus: %v", capabilities.ErrUnavailable, op, quote(subject), err)
}

// rateLimit allows one event per second: per-message logs use it.
type rateLimit struct{ next atomic.Int64 }

func (l *rateLimit) allow() bool {
	now := time.Now().UnixNano()
	next := l.next.Load()
	return now >= next && l.next.CompareAndSwap(next, now+int64(time.Second))
}
