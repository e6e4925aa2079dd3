package messaging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
	"github.com/trellis-edge/trellis/store"
)

// spec is what a subscription listens to and how it delivers.
type spec struct {
	Subject   string
	Queue     string
	Operation string
	Format    string // capabilities.FormatWasmbus or FormatLegacy
}

// storedSpec is a runtime subscription as kept in the store.
type storedSpec struct {
	Subject   string `json:"subject"`
	Operation string `json:"operation"`
	Queue     string `json:"queue,omitempty"`
}

// subscription is one NATS subscription delivering to one actor through a
// bounded queue and a goroutine of its own.
type subscription struct {
	id     string // runtime subscriptions only
	actor  string
	spec   spec
	ns     *nats.Subscription
	cancel context.CancelFunc
}

// stop ends the subscription; its goroutine returns soon after (a delivery
// in progress is cancelled). Messages still queued are discarded.
func (s *subscription) stop() {
	_ = s.ns.Unsubscribe()
	s.cancel()
}

// actorSubs are one actor's subscriptions.
type actorSubs struct {
	bound bool // Bind has run: stored subscriptions were made again
	// The grants of the last Bind that matter here, to make a Bind with
	// nothing changed cheap.
	subscribe     []string
	subscriptions []capabilities.Subscription

	bindings []*subscription          // one per entry of subscriptions
	runtime  map[string]*subscription // made by Subscribe, by id
}

func (a *actorSubs) stopAll() {
	for _, s := range a.bindings {
		s.stop()
	}
	for _, s := range a.runtime {
		s.stop()
	}
}

func msgpackMarshal(v any) ([]byte, error) { return msgpack.Marshal(v) }

// subscribe serves Subscribe: a runtime subscription, kept in the store.
// Subscribing again to the same subject, operation and queue answers the
// existing subscription's id, so an actor that subscribes when it starts
// does not pile up subscriptions across restarts.
func (h *Handler) subscribe(call capabilities.Call, r SubscribeRequest) (string, error) {
	if Reserved(r.Subject) {
		return "", fmt.Errorf("%w: actor %s may not subscribe to %s: reserved to the host", capabilities.ErrDenied, call.Actor, quote(r.Subject))
	}
	if !call.Grants.CanSubscribe(r.Subject) {
		return "", fmt.Errorf("%w: actor %s has no subscribe grant covering %s", capabilities.ErrDenied, call.Actor, quote(r.Subject))
	}
	sp := spec{Subject: r.Subject, Queue: r.Queue, Operation: r.Operation, Format: capabilities.FormatWasmbus}

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed.Load() {
		return "", errClosed
	}
	a := h.actors[call.Actor]
	if a == nil {
		a = &actorSubs{runtime: map[string]*subscription{}}
		h.actors[call.Actor] = a
	}
	for id, s := range a.runtime {
		if s.spec == sp {
			return id, nil
		}
	}
	if len(a.runtime) >= h.maxSubs {
		return "", fmt.Errorf("%w: actor %s: Subscribe %s: it has %d subscriptions, the most allowed", capabilities.ErrDenied, call.Actor, quote(r.Subject), h.maxSubs)
	}
	id := nuid.Next()
	s, err := h.start(call.Actor, id, sp)
	if err != nil {
		return "", err
	}
	if h.store != nil {
		value, err := json.Marshal(storedSpec{Subject: sp.Subject, Operation: sp.Operation, Queue: sp.Queue})
		if err == nil {
			err = h.store.CapStatePut(StateKind, call.Actor, id, value)
		}
		if err != nil {
			s.stop()
			h.log.Error("storing a subscription", "actor", call.Actor, "subject", sp.Subject, "err", err)
			return "", fmt.Errorf("%w: Subscribe %s: the subscription could not be stored", capabilities.ErrUnavailable, quote(r.Subject))
		}
	}
	a.runtime[id] = s
	return id, nil
}

// unsubscribe serves Unsubscribe: it ends a runtime subscription of the
// actor's and forgets it.
func (h *Handler) unsubscribe(actor, id string) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed.Load() {
		return false, errClosed
	}
	if err := h.loadPending(); err != nil {
		return false, err
	}
	existed := false
	if a := h.actors[actor]; a != nil {
		if s := a.runtime[id]; s != nil {
			s.stop()
			delete(a.runtime, id)
			existed = true
		}
	}
	if p := h.pending[actor]; p != nil {
		if i := slices.IndexFunc(p, func(r store.CapState) bool { return r.ID == id }); i >= 0 {
			h.pending[actor] = slices.Delete(p, i, i+1)
			existed = true
		}
	}
	if existed {
		h.forget(actor, id)
	}
	return existed, nil
}

// Bind implements capabilities.Binder: it makes the actor's binding
// subscriptions (g.Subscriptions) and, the first time the actor is bound,
// its stored runtime subscriptions again; runtime subscriptions that g no
// longer covers end and are forgotten. Bindings that did not change keep
// their subscription (no message is lost to a rebind), and a Bind with
// nothing changed does nothing. On error nothing has changed.
func (h *Handler) Bind(actor string, g capabilities.Grants) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed.Load() {
		return errClosed
	}
	a := h.actors[actor]
	if a != nil && a.bound && slices.Equal(a.subscribe, g.Subscribe) && slices.Equal(a.subscriptions, g.Subscriptions) {
		return nil
	}
	if err := h.loadPending(); err != nil {
		return err
	}
	if a == nil {
		a = &actorSubs{runtime: map[string]*subscription{}}
	}
	specs := make([]spec, len(g.Subscriptions))
	for i, b := range g.Subscriptions {
		sp, err := bindingSpec(b)
		if err == nil && Reserved(sp.Subject) {
			err = errors.New("subject: reserved to the host")
		}
		if err == nil && !g.CanSubscribe(sp.Subject) {
			err = errors.New("subject: not covered by a subscribe grant")
		}
		if err != nil {
			return fmt.Errorf("messaging: grants: subscriptions[%d] %s: %w", i, quote(b.Subject), err)
		}
		specs[i] = sp
	}

	// Make what is new; until the commit below, a failure undoes only that.
	var created []*subscription
	fail := func(err error) error {
		for _, s := range created {
			s.stop()
		}
		return err
	}
	unused := slices.Clone(a.bindings)
	bindings := make([]*subscription, len(specs))
	for i, sp := range specs {
		if j := slices.IndexFunc(unused, func(s *subscription) bool { return s.spec == sp }); j >= 0 {
			bindings[i] = unused[j]
			unused = slices.Delete(unused, j, j+1)
			continue
		}
		s, err := h.start(actor, "", sp)
		if err != nil {
			return fail(fmt.Errorf("messaging: grants: subscriptions[%d] %s: %w", i, quote(sp.Subject), err))
		}
		created = append(created, s)
		bindings[i] = s
	}
	var narrowed []string // runtime subscriptions g no longer covers
	kept := 0
	for id, s := range a.runtime {
		if !g.CanSubscribe(s.spec.Subject) {
			narrowed = append(narrowed, id)
		} else {
			kept++
		}
	}
	restored := map[string]*subscription{}
	var stale []string // stored subscriptions not made again: forgotten
	for _, rec := range h.pending[actor] {
		sp, err := decodeStored(rec.Value)
		switch {
		case a.runtime[rec.ID] != nil:
			continue // already made again (Subscribe before Bind)
		case err != nil:
			h.log.Warn("forgetting an unreadable stored subscription", "actor", actor, "id", rec.ID, "err", err)
		case Reserved(sp.Subject) || !g.CanSubscribe(sp.Subject):
			h.log.Info("forgetting a stored subscription the grants no longer cover", "actor", actor, "subject", sp.Subject)
		case kept+len(restored) >= h.maxSubs:
			h.log.Warn("forgetting a stored subscription over the limit", "actor", actor, "subject", sp.Subject, "limit", h.maxSubs)
		case hasSpec(a.runtime, sp) || hasSpec(restored, sp):
			// a duplicate of one that is made: forgotten
		default:
			s, err := h.start(actor, rec.ID, sp)
			if err != nil {
				return fail(fmt.Errorf("messaging: restoring subscription to %s: %w", quote(sp.Subject), err))
			}
			created = append(created, s)
			restored[rec.ID] = s
			continue
		}
		stale = append(stale, rec.ID)
	}

	// Commit.
	for _, s := range unused {
		s.stop()
	}
	for _, id := range narrowed {
		a.runtime[id].stop()
		delete(a.runtime, id)
		h.forget(actor, id)
	}
	for id, s := range restored {
		a.runtime[id] = s
	}
	for _, id := range stale {
		h.forget(actor, id)
	}
	delete(h.pending, actor)
	a.bindings = bindings
	a.subscribe = slices.Clone(g.Subscribe)
	a.subscriptions = slices.Clone(g.Subscriptions)
	a.bound = true
	h.actors[actor] = a
	return nil
}

// Unbind implements capabilities.Binder: the actor was stopped, so every
// subscription of its ends and its stored subscriptions are forgotten.
func (h *Handler) Unbind(actor string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a := h.actors[actor]; a != nil {
		a.stopAll()
		delete(h.actors, actor)
	}
	delete(h.pending, actor)
	if h.store != nil {
		if err := h.store.CapStateDeleteActor(StateKind, actor); err != nil {
			h.log.Error("forgetting stored subscriptions", "actor", actor, "err", err)
		}
	}
}

// Release implements capabilities.Releaser: the actor's subscriptions end
// but its stored ones stay, to be made again when it is bound next (its
// start failed, or it is being moved).
func (h *Handler) Release(actor string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a := h.actors[actor]; a != nil {
		a.stopAll()
		delete(h.actors, actor)
	}
	delete(h.pending, actor)
	if h.store == nil || !h.loaded {
		return // the next Bind loads everything from the store
	}
	recs, err := h.store.CapStateList(StateKind)
	if err != nil {
		h.log.Error("reading stored subscriptions", "actor", actor, "err", err)
		h.loaded = false // read again at the next Bind
		return
	}
	for _, r := range recs {
		if r.Actor == actor {
			h.pending[actor] = append(h.pending[actor], r)
		}
	}
}

// loadPending reads the stored subscriptions once. Called with h.mu held.
func (h *Handler) loadPending() error {
	if h.loaded || h.store == nil {
		return nil
	}
	recs, err := h.store.CapStateList(StateKind)
	if err != nil {
		h.log.Error("reading stored subscriptions", "err", err)
		return fmt.Errorf("%w: messaging: stored subscriptions could not be read", capabilities.ErrUnavailable)
	}
	for _, r := range recs {
		h.pending[r.Actor] = append(h.pending[r.Actor], r)
	}
	h.loaded = true
	return nil
}

// forget deletes a stored subscription. Called with h.mu held.
func (h *Handler) forget(actor, id string) {
	if h.store == nil {
		return
	}
	if _, err := h.store.CapStateDelete(StateKind, actor, id); err != nil {
		h.log.Error("forgetting a stored subscription", "actor", actor, "id", id, "err", err)
	}
}

func hasSpec(subs map[string]*subscription, sp spec) bool {
	for _, s := range subs {
		if s.spec == sp {
			return true
		}
	}
	return false
}

// bindingSpec resolves a binding's defaults and checks it.
func bindingSpec(b capabilities.Subscription) (spec, error) {
	sp := spec{Subject: b.Subject, Queue: b.Queue, Operation: b.Operation, Format: b.Format}
	switch sp.Format {
	case "", capabilities.FormatWasmbus:
		sp.Format = capabilities.FormatWasmbus
		if sp.Operation == "" {
			sp.Operation = wasmcloud.OpHandleMessage
		}
	case capabilities.FormatLegacy:
		if sp.Operation == "" {
			sp.Operation = wasmcloud.OpLegacyHandleMessage
		}
	default:
		return spec{}, fmt.Errorf("format %s: want wasmbus or legacy", quote(b.Format))
	}
	return sp, sp.check()
}

// check validates a subscription's subject, operation and queue.
func (sp spec) check() error {
	if err := checkSubject("subject", sp.Subject, true); err != nil {
		return err
	}
	if reason := validOperation(sp.Operation); reason != "" {
		return fmt.Errorf("operation %s: %s", quote(sp.Operation), reason)
	}
	if reason := validQueue(sp.Queue); reason != "" {
		return fmt.Errorf("queue %s: %s", quote(sp.Queue), reason)
	}
	return nil
}

// decodeStored decodes and checks a stored runtime subscription.
func decodeStored(value []byte) (spec, error) {
	var st storedSpec
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return spec{}, err
	}
	sp := spec{Subject: st.Subject, Queue: st.Queue, Operation: st.Operation, Format: capabilities.FormatWasmbus}
	return sp, sp.check()
}

// start subscribes and starts the subscription's delivery goroutine.
// Called with h.mu held and h not closed, so that Close waits for it.
func (h *Handler) start(actor, id string, sp spec) (*subscription, error) {
	ctx, cancel := context.WithCancel(context.Background())
	queue := make(chan *nats.Msg, h.queueLen)
	enqueue := func(m *nats.Msg) {
		select {
		case queue <- m:
		default:
			h.dropped.Add(1)
			if h.logEvery.allow() {
				h.log.Warn("message dropped: the actor is not keeping up", "actor", actor, "subject", sp.Subject, "queue", h.queueLen)
			}
		}
	}
	var ns *nats.Subscription
	var err error
	if sp.Queue != "" {
		ns, err = h.nc.QueueSubscribe(sp.Subject, sp.Queue, enqueue)
	} else {
		ns, err = h.nc.Subscribe(sp.Subject, enqueue)
	}
	if err != nil {
		cancel()
		return nil, busError(OpSubscribe, sp.Subject, err)
	}
	s := &subscription{id: id, actor: actor, spec: sp, ns: ns, cancel: cancel}
	h.wg.Add(1)
	go func() { // delivers the queued messages, in order, one at a time
		defer h.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-queue:
				if ctx.Err() != nil {
					return
				}
				h.deliver(ctx, s, m)
			}
		}
	}()
	return s, nil
}

// deliver invokes the subscription's operation with one message and
// publishes the response (or the failure) to the message's reply subject,
// unless the actor already replied itself with Publish.
func (h *Handler) deliver(ctx context.Context, s *subscription, m *nats.Msg) {
	era := wasmcloud.EraWasmbus
	if s.spec.Format == capabilities.FormatLegacy {
		era = wasmcloud.Era018
	}
	payload, err := wasmcloud.EncodeMessage(era, wasmcloud.Message{Subject: m.Subject, ReplyTo: m.Reply, Body: m.Data})
	if err == nil && h.invoke == nil {
		err = fmt.Errorf("%w: no invoker", capabilities.ErrUnavailable)
	}
	// A reply subject of the host's own (trellis.…, $…) is never answered:
	// the sender could otherwise have this host publish there for it.
	reply := m.Reply
	if reply != "" && Reserved(reply) && !strings.HasPrefix(reply, "_INBOX") {
		reply = ""
	}
	var resp []byte
	replied := false
	if err == nil {
		if reply != "" {
			h.replies.start(s.actor, reply)
		}
		ictx, cancel := context.WithTimeout(ctx, h.deliverTimeout)
		resp, err = h.invoke(ictx, s.actor, s.spec.Operation, payload)
		cancel()
		if reply != "" {
			replied = h.replies.end(s.actor, reply)
		}
	}
	if err != nil {
		h.failed.Add(1)
		if h.logEvery.allow() {
			h.log.Warn("message delivery failed", "actor", s.actor, "subject", m.Subject, "operation", s.spec.Operation, "err", err)
		}
		if reply != "" && !replied {
			code, msg := codeOf(err)
			h.reply(s, &nats.Msg{Subject: reply, Header: nats.Header{HeaderErrorCode: {code}, HeaderError: {msg}}})
		}
		return
	}
	h.delivered.Add(1)
	if era == wasmcloud.Era018 && bytes.Equal(resp, []byte{0xc0}) {
		resp = nil // a 0.18 handler answers msgpack nil: no reply
	}
	if reply == "" || replied || len(resp) == 0 {
		return
	}
	h.reply(s, &nats.Msg{Subject: reply, Data: resp})
}

func (h *Handler) reply(s *subscription, m *nats.Msg) {
	if err := h.nc.PublishMsg(m); err != nil {
		h.failed.Add(1)
		if h.logEvery.allow() {
			h.log.Warn("reply failed", "actor", s.actor, "subject", s.spec.Subject, "err", err)
		}
	}
}

// codeOf returns the stable code of a delivery's error and a message safe
// to send to whoever sent the message: the runtime's errors carry their
// code (ErrorCode() string) and a safe message; any other error's text
// stays on this host.
func codeOf(err error) (code, msg string) {
	var c interface{ ErrorCode() string }
	switch {
	case errors.As(err, &c) && c.ErrorCode() != "":
		return headerValue(c.ErrorCode()), headerValue(err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout", "deadline exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled", "canceled"
	}
	return "internal", "internal error"
}

// maxHeaderValue bounds an error message sent in a reply header.
const maxHeaderValue = 1024

// headerValue makes s safe as a header value: one line, bounded.
func headerValue(s string) string {
	if len(s) > maxHeaderValue {
		s = s[:maxHeaderValue]
	}
	s = strings.ToValidUTF8(s, "")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// replies are the reply subjects of the messages being delivered, by
// actor: while its handler runs, an actor may publish its answer to the
// message's reply subject, as wasmCloud actors do, without a publish grant
// for it (it is typically an _INBOX subject, reserved otherwise).
type replies struct {
	mu sync.Mutex
	m  map[replyKey]*inflight
}

type replyKey struct{ actor, subject string }

type inflight struct {
	n       int  // deliveries in progress with this reply subject
	replied bool // the actor published to it
}

func (r *replies) start(actor, subject string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := replyKey{actor, subject}
	f := r.m[k]
	if f == nil {
		f = &inflight{}
		r.m[k] = f
	}
	f.n++
}

// end reports whether the actor replied.
func (r *replies) end(actor, subject string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := replyKey{actor, subject}
	f := r.m[k]
	if f == nil {
		return false
	}
	if f.n--; f.n == 0 {
		delete(r.m, k)
	}
	return f.replied
}

// use reports whether subject is the reply subject of a message being
// delivered to actor, and records that the actor replied.
func (r *replies) use(actor, subject string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.m[replyKey{actor, subject}]
	if f == nil {
		return false
	}
	f.replied = true
	return true
}
