package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// HeaderTimeout is a request header: how long the caller will wait, as a Go
// duration ("1.5s"). The serving host gives the actor at most that long
// (capped at MaxCallTimeout); without it the actor's own limit rules.
const HeaderTimeout = "Trellis-Timeout"

// MaxCallTimeout caps the time a remote caller may ask for.
const MaxCallTimeout = 5 * time.Minute

// maxInFlight is how many requests one actor may have running on this host
// at once; beyond that requests are refused as overloaded, so a slow actor
// cannot pile up goroutines.
const maxInFlight = 64

// maxErrorMessage caps the HeaderError value.
const maxErrorMessage = 1024

// subscribeFlushTimeout bounds Serve's wait for the server to confirm the
// subscriptions.
const subscribeFlushTimeout = 2 * time.Second

// Error codes that travel in HeaderErrorCode. The actor runtime's codes
// (guest_error, trap, limit, denied…) pass through unchanged; these are the
// ones the RPC layer produces itself.
const (
	codeTimeout    = "timeout"
	codeCanceled   = "canceled"
	codeOverloaded = "overloaded"
	codeNotFound   = "not_found"
	codeLimit      = "limit"
	codeInternal   = "internal" // the invoker failed without a code
)

// Invoker calls an operation of an actor running on this host. Its errors
// may carry a stable code through an ErrorCode() string method.
type Invoker interface {
	Invoke(ctx context.Context, actor, operation string, payload []byte) ([]byte, error)
}

// RPC serves actors of this host on the lattice: each served actor answers
// RPCSubject requests in its queue group (one host answers each request)
// and the PinnedRPCSubject requests addressed to this host.
type RPC struct {
	nc      *nats.Conn
	lattice string
	hostID  string
	inv     Invoker
	log     *slog.Logger
	limit   int         // max in-flight requests per actor
	okHdr   nats.Header // shared by every success reply; never written after NewRPC

	// base is the lifetime of the RPC (like http.Server's BaseContext):
	// every invocation derives from it and Close cancels it.
	base    context.Context
	cancel  context.CancelFunc
	closing atomic.Bool

	mu     sync.Mutex
	actors map[string]*served
	closed bool

	requests, failed, overloaded, noReply, badSubject atomic.Uint64
	logEvery                                          rateLimit
}

// served is one actor's subscriptions and in-flight requests.
type served struct {
	actor  string
	prefix [2]string // of subjects in the queue group and pinned: "….rpc.<actor>."
	subs   []*nats.Subscription
	closed []chan struct{} // one per sub, closed when its callback goroutine is gone
	slots  chan struct{}   // a token per running request
}

// ErrRPCClosed is returned by Serve after Close.
var ErrRPCClosed = errors.New("mesh: rpc closed")

// NewRPC returns an RPC that serves actors of the host hostID through inv
// on nc. It does not own nc: Close leaves it open. log may be nil.
func NewRPC(nc *nats.Conn, lattice, hostID string, inv Invoker, log *slog.Logger) *RPC {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base, cancel := context.WithCancel(context.Background())
	return &RPC{
		nc:      nc,
		lattice: lattice,
		hostID:  hostID,
		inv:     inv,
		log:     log.With("subsystem", "rpc", "host", hostID),
		limit:   maxInFlight,
		okHdr:   nats.Header{HeaderHost: []string{hostID}},
		base:    base,
		cancel:  cancel,
		actors:  make(map[string]*served),
	}
}

// Serve subscribes actor's RPC subjects. Serving an actor already served
// does nothing. When Serve returns, the server has the subscriptions:
// requests made on the same server reach them.
func (r *RPC) Serve(actor string) error {
	for _, t := range [][2]string{{"lattice", r.lattice}, {"host", r.hostID}, {"actor", actor}} {
		if err := ValidateToken(t[0], t[1]); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrRPCClosed
	}
	if _, ok := r.actors[actor]; ok {
		return nil
	}
	s := &served{actor: actor, slots: make(chan struct{}, r.limit), prefix: [2]string{
		strings.TrimSuffix(RPCWildcard(r.lattice, actor), ">"),
		strings.TrimSuffix(PinnedRPCWildcard(r.lattice, r.hostID, actor), ">"),
	}}
	cb := func(m *nats.Msg) { r.onRequest(s, m) }
	subscribe := []func() (*nats.Subscription, error){
		func() (*nats.Subscription, error) {
			return r.nc.QueueSubscribe(RPCWildcard(r.lattice, actor), RPCQueue(actor), cb)
		},
		func() (*nats.Subscription, error) {
			return r.nc.Subscribe(PinnedRPCWildcard(r.lattice, r.hostID, actor), cb)
		},
	}
	for _, sub := range subscribe {
		sb, err := sub()
		if err == nil {
			done := make(chan struct{})
			sb.SetClosedHandler(func(string) { close(done) })
			if !sb.IsValid() { // closed before the handler was set: it would never run
				err = nats.ErrConnectionClosed
			} else {
				s.subs, s.closed = append(s.subs, sb), append(s.closed, done)
			}
		}
		if err != nil {
			r.stop(s)
			return fmt.Errorf("mesh: serve actor %s: %w", actor, err)
		}
	}
	// Best effort: when the connection is down the subscriptions are sent
	// again on reconnect.
	if r.nc.IsConnected() {
		if err := r.nc.FlushTimeout(subscribeFlushTimeout); err != nil {
			r.log.Debug("flush after subscribe", "actor", actor, "err", err)
		}
	}
	r.actors[actor] = s
	return nil
}

// Unserve stops serving actor: it unsubscribes, answers the requests
// already received, and waits for the running ones to finish.
func (r *RPC) Unserve(actor string) {
	r.mu.Lock()
	s := r.actors[actor]
	delete(r.actors, actor)
	r.mu.Unlock()
	if s != nil {
		r.stop(s)
	}
}

// Close stops serving every actor: running invocations are canceled,
// requests already received are answered (code canceled), and Close
// returns when every goroutine it started is gone. It does not close the
// connection. Calling Close again does nothing.
func (r *RPC) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	actors := r.actors
	r.actors = nil
	r.mu.Unlock()

	r.closing.Store(true)
	r.cancel()
	var wg sync.WaitGroup
	for _, s := range actors {
		wg.Go(func() { r.stop(s) })
	}
	wg.Wait()
}

// stop drains s's subscriptions, then waits for its in-flight requests by
// taking every slot.
func (r *RPC) stop(s *served) {
	connected := r.nc.IsConnected()
	for _, sub := range s.subs {
		// Drain lets the callback see the messages already delivered to this
		// client, so that their callers get an answer. Without a connection
		// no answer can leave, and nats.go's drain would wait for a flush
		// (10 s): unsubscribe. Both fail only if the connection is closed,
		// which ends the callback goroutine too.
		if connected {
			_ = sub.Drain()
		} else {
			_ = sub.Unsubscribe()
		}
	}
	for i, done := range s.closed {
		r.waitClosed(s.subs[i], done)
	}
	for range cap(s.slots) {
		s.slots <- struct{}{}
	}
}

// waitClosed waits until sub's callback goroutine is gone. A drain ends
// after a flush, which waits for a reconnect (up to nats.go's 10 s) if the
// connection drops meanwhile: then nothing can be answered anyway, so the
// drain is cut short.
func (r *RPC) waitClosed(sub *nats.Subscription, done <-chan struct{}) {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			if !r.nc.IsConnected() {
				_ = sub.Unsubscribe()
			}
		}
	}
}

// RPCStats counts requests seen by an RPC.
type RPCStats struct {
	Requests   uint64 // every message received, including the ones below
	Failed     uint64 // answered with an error code (including Overloaded)
	Overloaded uint64 // refused: too many in flight for the actor
	NoReply    uint64 // ignored: no reply subject
	BadSubject uint64 // answered not_found: not a well-formed RPC subject
}

// Stats returns the counters since NewRPC.
func (r *RPC) Stats() RPCStats {
	return RPCStats{
		Requests:   r.requests.Load(),
		Failed:     r.failed.Load(),
		Overloaded: r.overloaded.Load(),
		NoReply:    r.noReply.Load(),
		BadSubject: r.badSubject.Load(),
	}
}

// onRequest runs on the subscription's goroutine: it checks the request
// and hands it to a goroutine of its own, or refuses it.
func (r *RPC) onRequest(s *served, m *nats.Msg) {
	r.requests.Add(1)
	if m.Reply == "" {
		r.noReply.Add(1)
		if r.logEvery.allow() {
			r.log.Warn("request without reply subject ignored", "actor", s.actor, "subject", m.Subject)
		}
		return
	}
	operation, ok := s.operation(m.Subject)
	if !ok {
		r.badSubject.Add(1)
		r.replyError(m.Reply, codeNotFound, "malformed rpc subject")
		return
	}
	if r.closing.Load() {
		r.replyError(m.Reply, codeCanceled, "host "+r.hostID+" is shutting down")
		return
	}
	var timeout time.Duration
	hasTimeout := false
	if v := m.Header.Get(HeaderTimeout); v != "" {
		if timeout, hasTimeout = parseTimeout(v); hasTimeout && timeout <= 0 {
			r.replyError(m.Reply, codeTimeout, "deadline already passed on arrival")
			return
		}
	}
	select {
	case s.slots <- struct{}{}:
	default:
		r.overloaded.Add(1)
		r.replyError(m.Reply, codeOverloaded, fmt.Sprintf("actor %s: %d requests in flight on host %s", s.actor, cap(s.slots), r.hostID))
		return
	}
	go r.invoke(s, m, operation, timeout, hasTimeout)
}

// operation returns the operation of a subject delivered to s's
// subscriptions, and false if the subject is not a well-formed RPC subject.
// It is ParseRPC without allocations: the subscription has matched
// everything but the operation.
func (s *served) operation(subject string) (string, bool) {
	for _, p := range s.prefix {
		if op, ok := strings.CutPrefix(subject, p); ok {
			return op, checkOperation(op) == nil
		}
	}
	return "", false
}

// invoke calls the actor and replies. It holds one of s's slots.
func (r *RPC) invoke(s *served, m *nats.Msg, operation string, timeout time.Duration, hasTimeout bool) {
	defer func() { <-s.slots }()
	ctx := r.base
	if hasTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	resp, err := r.callInvoker(ctx, s.actor, operation, m.Data)
	if err != nil {
		code, msg := codeOf(err)
		if code == codeInternal && r.logEvery.allow() {
			r.log.Error("invoke failed", "actor", s.actor, "operation", operation, "err", err)
		}
		r.replyError(m.Reply, code, msg)
		return
	}
	err = r.nc.PublishMsg(&nats.Msg{Subject: m.Reply, Data: resp, Header: r.okHdr})
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		r.replyError(m.Reply, codeLimit, fmt.Sprintf("actor %s: response of %d bytes exceeds the max payload (%d)", s.actor, len(resp), r.nc.MaxPayload()))
	case err != nil && r.logEvery.allow():
		r.log.Warn("reply failed", "actor", s.actor, "operation", operation, "err", err)
	}
}

// callInvoker calls the invoker; a panic there fails the request, not the
// host.
func (r *RPC) callInvoker(ctx context.Context, actor, operation string, payload []byte) (resp []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("invoker panicked: %v", p)
		}
	}()
	return r.inv.Invoke(ctx, actor, operation, payload)
}

func (r *RPC) replyError(reply, code, msg string) {
	r.failed.Add(1)
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage]
	}
	m := &nats.Msg{Subject: reply, Header: nats.Header{
		HeaderHost:      []string{r.hostID},
		HeaderErrorCode: []string{code},
		HeaderError:     []string{msg},
	}}
	if err := r.nc.PublishMsg(m); err != nil && r.logEvery.allow() {
		r.log.Warn("error reply failed", "code", code, "err", err)
	}
}

// codeOf returns the stable code of an invoker error and the message safe
// to send to a remote caller. An error without a code is "internal" and its
// text stays on this host (it may hold paths).
func codeOf(err error) (code, msg string) {
	var c interface{ ErrorCode() string }
	switch {
	case errors.As(err, &c) && c.ErrorCode() != "":
		return c.ErrorCode(), err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return codeTimeout, "deadline exceeded"
	case errors.Is(err, context.Canceled):
		return codeCanceled, "canceled"
	}
	return codeInternal, "internal error"
}

// parseTimeout decodes a HeaderTimeout value. ok is false if it is not a Go
// duration; a negative duration is 0 (already expired); the result is
// capped at MaxCallTimeout.
func parseTimeout(v string) (d time.Duration, ok bool) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, false
	}
	return min(max(d, 0), MaxCallTimeout), true
}

// rateLimit allows one event per second: per-message logs use it.
type rateLimit struct{ next atomic.Int64 }

func (l *rateLimit) allow() bool {
	now := time.Now().UnixNano()
	next := l.next.Load()
	return now >= next && l.next.CompareAndSwap(next, now+int64(time.Second))
}

// RemoteError is a failed call to an actor on the lattice. Code is one of
// the stable codes (guest_error, trap, timeout, canceled, limit, overloaded,
// not_found, denied, internal); Host is the host that answered, "" when
// none did (no responders, local deadline).
type RemoteError struct {
	Code    string
	Message string
	Host    string
	cause   error // the local error behind it, if any (context, no responders)
}

// Sentinels for errors.Is: each matches every RemoteError of its code.
var (
	ErrRemoteGuest      = &RemoteError{Code: "guest_error"}
	ErrRemoteTrap       = &RemoteError{Code: "trap"}
	ErrRemoteTimeout    = &RemoteError{Code: codeTimeout}
	ErrRemoteCanceled   = &RemoteError{Code: codeCanceled}
	ErrRemoteLimit      = &RemoteError{Code: codeLimit}
	ErrRemoteOverloaded = &RemoteError{Code: codeOverloaded}
	ErrRemoteNotFound   = &RemoteError{Code: codeNotFound}
	ErrRemoteDenied     = &RemoteError{Code: "denied"}
	ErrRemoteInternal   = &RemoteError{Code: codeInternal}
)

func (e *RemoteError) Error() string {
	s := "mesh: call: " + e.Code
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Host != "" {
		s += " (host " + e.Host + ")"
	}
	return s
}

// ErrorCode returns the stable code.
func (e *RemoteError) ErrorCode() string { return e.Code }

// Unwrap returns the local cause (a context error, nats.ErrNoResponders), if any.
func (e *RemoteError) Unwrap() error { return e.cause }

// Is matches a sentinel (a RemoteError with only a Code) of the same code.
func (e *RemoteError) Is(target error) bool {
	t, ok := target.(*RemoteError)
	return ok && t.Message == "" && t.Host == "" && t.cause == nil && t.Code == e.Code
}

// Call calls operation on actor wherever it runs on the lattice and returns
// the response and the id of the host that answered. ctx's deadline travels
// with the request (HeaderTimeout); without one the call waits for as long
// as the actor's own limit allows. Failures are *RemoteError: an error
// reply, no host serving the actor (not_found), ctx's end (timeout,
// canceled), a payload over the connection's max payload (limit); other
// errors are the connection's.
func Call(ctx context.Context, nc *nats.Conn, lattice, actor, operation string, payload []byte) (resp []byte, host string, err error) {
	if err := checkCall(lattice, "", actor, operation); err != nil {
		return nil, "", err
	}
	return call(ctx, nc, RPCSubject(lattice, actor, operation), lattice, "", actor, payload)
}

// CallHost is Call on one host only.
func CallHost(ctx context.Context, nc *nats.Conn, lattice, hostID, actor, operation string, payload []byte) (resp []byte, host string, err error) {
	if err := checkCall(lattice, hostID, actor, operation); err != nil {
		return nil, "", err
	}
	return call(ctx, nc, PinnedRPCSubject(lattice, hostID, actor, operation), lattice, hostID, actor, payload)
}

func call(ctx context.Context, nc *nats.Conn, subject, lattice, hostID, actor string, payload []byte) ([]byte, string, error) {
	m := &nats.Msg{Subject: subject, Data: payload}
	if d, ok := ctx.Deadline(); ok {
		left := time.Until(d).Truncate(time.Microsecond)
		if left <= 0 {
			return nil, "", &RemoteError{Code: codeTimeout, Message: "deadline passed before the call", cause: context.DeadlineExceeded}
		}
		m.Header = nats.Header{HeaderTimeout: []string{left.String()}}
	}
	reply, err := nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			msg := fmt.Sprintf("no host serves actor %s on lattice %s", actor, lattice)
			if hostID != "" {
				msg = fmt.Sprintf("host %s does not serve actor %s on lattice %s (or is unreachable)", hostID, actor, lattice)
			}
			return nil, "", &RemoteError{Code: codeNotFound, Message: msg, cause: err}
		case errors.Is(err, context.DeadlineExceeded):
			return nil, "", &RemoteError{Code: codeTimeout, Message: "no reply from actor " + actor + " before the deadline", cause: err}
		case errors.Is(err, context.Canceled):
			return nil, "", &RemoteError{Code: codeCanceled, Message: "call canceled", cause: err}
		case errors.Is(err, nats.ErrMaxPayload):
			return nil, "", &RemoteError{Code: codeLimit, Message: fmt.Sprintf("request of %d bytes exceeds the max payload (%d)", len(payload), nc.MaxPayload()), cause: err}
		}
		return nil, "", fmt.Errorf("mesh: call actor %s: %w", actor, err)
	}
	host := reply.Header.Get(HeaderHost)
	if code := reply.Header.Get(HeaderErrorCode); code != "" {
		return nil, host, &RemoteError{Code: code, Message: reply.Header.Get(HeaderError), Host: host}
	}
	return reply.Data, host, nil
}

// checkCall rejects what would not make one well-formed RPC subject.
func checkCall(lattice, hostID, actor, operation string) error {
	if err := ValidateToken("lattice", lattice); err != nil {
		return err
	}
	if hostID != "" {
		if err := ValidateToken("host", hostID); err != nil {
			return err
		}
	}
	if err := ValidateToken("actor", actor); err != nil {
		return err
	}
	return checkOperation(operation)
}

// checkOperation accepts one or more non-empty dot-separated tokens without
// wildcards or whitespace.
func checkOperation(op string) error {
	prev := byte('.')
	for i := 0; i < len(op); i++ {
		c := op[i]
		switch {
		case c == '.' && prev == '.', c == '*', c == '>', c == ' ', c == '\t', c == '\r', c == '\n':
			return fmt.Errorf("mesh: operation %q: want dot-separated tokens without wildcards or whitespace", op)
		}
		prev = c
	}
	if prev == '.' {
		return fmt.Errorf("mesh: operation %q: want dot-separated tokens without wildcards or whitespace", op)
	}
	return nil
}
