// Package httpserver is local HTTP ingress to actors: the trellis:http
// contract and its wasmCloud 0.x compatibility namespaces
// (wasmcloud:httpserver, wascc:http_server). An actor's http grants are
// routes, {listen, path_prefix, operation, format}; each request under a
// route's prefix invokes the actor's operation with wasmCloud's HttpRequest
// and writes the HttpResponse the actor answers.
//
// The Server is a capabilities.Binder: the dispatcher binds an actor's
// routes whenever its grants are set and unbinds them when the actor stops.
// Actors make no host calls on these namespaces; the Server is registered
// under them so that the dispatcher finds it and binds it.
//
// It imports capabilities and capabilities/wasmcloud; the agent wires it in
// and nothing below the agent imports it.
package httpserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
)

// Defaults applied to the zero fields of Options.
const (
	DefaultMaxBody           = 1 << 20 // bytes of request body
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = time.Minute
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultShutdownTimeout   = 5 * time.Second
)

// Options configure a Server. The zero value of a field means its default.
type Options struct {
	// Invoke calls an actor's operation; the agent provides it. Without it
	// every routed request is answered 503.
	Invoke capabilities.Invoker
	// Logger receives listener and invocation failures, rate-limited.
	// Nil discards them.
	Logger *slog.Logger
	// MaxBody is the largest request body passed to an actor; a larger one
	// is answered 413 without invoking the actor.
	MaxBody int64
	// ReadHeaderTimeout bounds reading a request's header.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response once the actor has answered.
	// The actor's call deadline bounds the invocation itself.
	WriteTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection waits for its next
	// request.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps a request's header.
	MaxHeaderBytes int
	// ShutdownTimeout is how long a listener whose last route went waits
	// for its requests in flight before it cuts them off.
	ShutdownTimeout time.Duration
	// Started, when set, is told of each route Bind adds or changes, with
	// the address it is served on (the actual port for a listen port of 0).
	// It is called after Bind has made the change, before Bind returns,
	// and must not call back into the Server's Bind or Unbind.
	Started func(route Route, addr net.Addr)
}

func (o Options) withDefaults() Options {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	def(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&o.ReadTimeout, DefaultReadTimeout)
	def(&o.WriteTimeout, DefaultWriteTimeout)
	def(&o.IdleTimeout, DefaultIdleTimeout)
	def(&o.ShutdownTimeout, DefaultShutdownTimeout)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Route is one HTTP route to an actor, as granted, with its defaults applied.
type Route struct {
	Actor      string
	Listen     string // host:port as granted; port 0 is a listener of the route's own
	PathPrefix string // a plain string prefix of the request path
	Operation  string // the actor operation a request invokes
	Format     string // capabilities.FormatWasmbus or capabilities.FormatLegacy
}

// RouteInfo is a route and the address it is served on.
type RouteInfo struct {
	Route
	// Addr is the bound address, host:port, with the actual port when the
	// route listens on port 0.
	Addr string
}

// Stats count the requests a Server has answered, by class of outcome.
type Stats struct {
	Requests    uint64 // every request received, whatever its outcome
	NoRoute     uint64 // 404: no route for the path
	BadRequest  uint64 // 400: a body that could not be read, a query that is not UTF-8
	TooLarge    uint64 // 413: a body over MaxBody, or over the actor's request limit
	Unavailable uint64 // 503: the actor is overloaded or not running
	Timeout     uint64 // 504: the actor's call timed out
	Failed      uint64 // 500: any other failure, a recovered panic included
	BadResponse uint64 // 502: the actor's answer is not a valid HttpResponse
}

// Namespaces returns the namespaces the agent registers the Server under:
// trellis:http and its compatibility aliases.
func Namespaces() []string {
	return []string{capabilities.HTTP, wasmcloud.HTTPServer, wasmcloud.WaSCCHTTPServer}
}

// Server serves the HTTP routes granted to actors. It is safe for
// concurrent use. Build it with New; it listens only once routes are bound.
type Server struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	listeners map[string]*listener           // by listenerKey
	actors    map[string]map[routeKey]*route // by actor
	closed    bool
	// goroutines counts serve loops and shutdowns; Add happens only under
	// mu while !closed, so Close's Wait never races an Add.
	goroutines sync.WaitGroup

	// hurry ends graceful shutdowns early: Close cancels it when its ctx ends.
	hurry       context.Context
	hurryCancel context.CancelFunc

	active activeCount // handlers running

	requests, noRoute, badRequest, tooLarge, unavailable, timeout, failed, badResponse atomic.Uint64

	logLimit logLimiter
}

// routeKey identifies one of an actor's routes across Binds.
// routeKey identifies an actor's route: its address and prefix, and on
// port 0 (a listener of the route's own) also its operation and format,
// so that one actor may have the same prefix on two free ports.
type routeKey struct{ listen, prefix, variant string }

func keyOf(r Route) routeKey {
	k := routeKey{listen: normalListen(r.Listen), prefix: r.PathPrefix}
	if _, port, err := net.SplitHostPort(k.listen); err == nil && port == "0" {
		k.variant = r.Operation + "\x00" + r.Format
	}
	return k
}

// route is a bound route; immutable once in a listener's table.
type route struct {
	Route
	era  wasmcloud.Era
	lkey string // its listener
}

// listener is one net.Listener and the http.Server on it, shared by the
// routes on its address (or owned by one route on port 0).
type listener struct {
	key    string
	ln     net.Listener
	srv    *http.Server
	cancel context.CancelFunc // ends the base context of its requests
	done   chan struct{}      // closed when Serve returns

	routes []*route                 // guarded by Server.mu
	table  atomic.Pointer[[]*route] // what requests see: longest prefix first
}

// New returns a Server with no routes.
func New(opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{
		opts:      opts,
		log:       opts.Logger.With("subsystem", "httpserver"),
		listeners: map[string]*listener{},
		actors:    map[string]map[routeKey]*route{},
	}
	s.hurry, s.hurryCancel = context.WithCancel(context.Background())
	s.active.cond.L = &s.active.mu
	return s
}

// Handle implements capabilities.Handler. Actors receive requests on these
// namespaces and make no calls on them: every operation is unknown.
func (s *Server) Handle(_ context.Context, call capabilities.Call) ([]byte, error) {
	return nil, fmt.Errorf("%w: %s %q: HTTP requests are delivered to the actor; it makes no calls on this namespace",
		capabilities.ErrUnknownOperation, call.Contract, call.Operation)
}

// resolve turns an actor's http grants into routes with their defaults,
// checked as the grants' own Validate checks them.
func resolve(actor string, grants []capabilities.HTTPGrant) (map[routeKey]Route, []routeKey, error) {
	if err := (capabilities.Grants{HTTP: grants}).Validate(); err != nil {
		return nil, nil, fmt.Errorf("httpserver: actor %s: %w", actor, err)
	}
	want := make(map[routeKey]Route, len(grants))
	var order []routeKey
	for i, g := range grants {
		r := Route{Actor: actor, Listen: g.Listen, PathPrefix: g.PathPrefix, Operation: g.Operation, Format: g.Format}
		if r.Format == "" {
			r.Format = capabilities.FormatWasmbus
		}
		if r.Operation == "" {
			r.Operation = wasmcloud.OpHandleRequest
			if r.Format == capabilities.FormatLegacy {
				r.Operation = wasmcloud.OpLegacyHandleRequest
			}
		}
		k := keyOf(r)
		if prev, ok := want[k]; ok {
			if prev != r {
				return nil, nil, fmt.Errorf("httpserver: actor %s: grants: http[%d] %s%s: granted twice with different operation or format",
					actor, i, g.Listen, g.PathPrefix)
			}
			continue
		}
		want[k] = r
		order = append(order, k)
	}
	return want, order, nil
}

// normalListen spells a listen address one way (lower-case host, port
// without leading zeros), so that routes on one address share its listener.
func normalListen(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if n, err := strconv.Atoi(port); err == nil {
		port = strconv.Itoa(n)
	}
	return net.JoinHostPort(strings.ToLower(host), port)
}

// listenerKey names the listener a route is served on: its address, or
// for port 0 a listener of the route's own.
func listenerKey(actor string, k routeKey) string {
	if _, port, err := net.SplitHostPort(k.listen); err == nil && port == "0" {
		return "own\x00" + actor + "\x00" + k.listen + "\x00" + k.prefix + "\x00" + k.variant
	}
	return k.listen
}

func eraOf(format string) wasmcloud.Era {
	if format == capabilities.FormatLegacy {
		return wasmcloud.Era018
	}
	return wasmcloud.EraWasmbus
}

// Bind implements capabilities.Binder: the actor's routes become exactly
// g.HTTP. New routes are added (opening listeners as needed), routes no
// longer granted are removed (closing a listener when its last route goes),
// and routes granted again unchanged keep their listener and port. On an
// error (a listen that fails, a prefix another actor holds on the same
// listener) nothing changes: the actor keeps the routes it had.
func (s *Server) Bind(actor string, g capabilities.Grants) error {
	want, order, err := resolve(actor, g.HTTP)
	if err != nil {
		return err
	}
	type startedRoute struct {
		route Route
		addr  net.Addr
	}
	var started []startedRoute
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		if len(want) == 0 {
			return nil
		}
		return fmt.Errorf("httpserver: actor %s: %w: server closed", actor, capabilities.ErrUnavailable)
	}
	have := s.actors[actor]
	if len(have) == 0 && len(want) == 0 {
		s.mu.Unlock()
		return nil
	}

	// Plan: which routes are new or changed, and check them against the
	// routes other actors hold before anything is opened.
	var adds []*route
	for _, k := range order {
		w := want[k]
		if old, ok := have[k]; ok && old.Route == w {
			continue
		}
		r := &route{Route: w, era: eraOf(w.Format), lkey: listenerKey(actor, k)}
		if l, ok := s.listeners[r.lkey]; ok {
			for _, o := range l.routes {
				if o.Actor != actor && (strings.HasPrefix(o.PathPrefix, w.PathPrefix) || strings.HasPrefix(w.PathPrefix, o.PathPrefix)) {
					s.mu.Unlock()
					return fmt.Errorf("httpserver: actor %s: route %s%s: %w: it overlaps actor %s's route %s%s",
						actor, w.Listen, w.PathPrefix, capabilities.ErrDenied, o.Actor, o.Listen, o.PathPrefix)
				}
			}
		}
		adds = append(adds, r)
	}

	// Open the listeners the new routes need; on a failure close them again.
	opened := map[string]net.Listener{}
	for _, r := range adds {
		if _, ok := s.listeners[r.lkey]; ok {
			continue
		}
		if _, ok := opened[r.lkey]; ok {
			continue
		}
		ln, err := net.Listen("tcp", r.Listen)
		if err != nil {
			for _, o := range opened {
				_ = o.Close()
			}
			s.mu.Unlock()
			return fmt.Errorf("httpserver: actor %s: route %s%s: %w: listen on %s: %w",
				actor, r.Listen, r.PathPrefix, capabilities.ErrUnavailable, r.Listen, err)
		}
		opened[r.lkey] = ln
	}

	// Commit.
	for key, ln := range opened {
		s.listeners[key] = s.serve(key, ln)
	}
	touched := map[*listener]bool{}
	next := make(map[routeKey]*route, len(want))
	for k, r := range have {
		if w, ok := want[k]; ok && r.Route == w {
			next[k] = r
			continue
		}
		l := s.listeners[r.lkey]
		l.routes = slices.DeleteFunc(l.routes, func(o *route) bool { return o == r })
		touched[l] = true
	}
	for _, r := range adds {
		l := s.listeners[r.lkey]
		l.routes = append(l.routes, r)
		touched[l] = true
		next[keyOf(r.Route)] = r
		started = append(started, startedRoute{r.Route, l.ln.Addr()})
	}
	if len(next) == 0 {
		delete(s.actors, actor)
	} else {
		s.actors[actor] = next
	}
	for l := range touched {
		if len(l.routes) == 0 {
			s.retire(l)
			continue
		}
		l.publish()
	}
	s.mu.Unlock()

	if s.opts.Started != nil {
		for _, st := range started {
			s.opts.Started(st.route, st.addr)
		}
	}
	return nil
}

// Unbind implements capabilities.Binder: the actor's routes are removed and
// listeners left without routes are closed.
func (s *Server) Unbind(actor string) {
	_ = s.Bind(actor, capabilities.Grants{}) // removing routes cannot fail
}

// serve starts an http.Server on ln. Called with s.mu held and !s.closed.
func (s *Server) serve(key string, ln net.Listener) *listener {
	base, cancel := context.WithCancel(context.Background())
	l := &listener{key: key, ln: ln, cancel: cancel, done: make(chan struct{})}
	l.table.Store(&[]*route{})
	l.srv = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.handle(l, w, r) }),
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    s.opts.MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          s.errorLog(ln.Addr().String()),
	}
	s.goroutines.Add(1)
	go func() {
		defer s.goroutines.Done()
		defer close(l.done)
		err := l.srv.Serve(ln)
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.log.Error("listener failed", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return l
}

// publish makes the listener's routes what its requests see.
func (l *listener) publish() {
	t := slices.Clone(l.routes)
	slices.SortFunc(t, func(a, b *route) int {
		if c := cmp.Compare(len(b.PathPrefix), len(a.PathPrefix)); c != 0 {
			return c
		}
		return cmp.Compare(a.PathPrefix, b.PathPrefix)
	})
	l.table.Store(&t)
}

// match returns the route with the longest prefix of path, or nil.
func (l *listener) match(path string) *route {
	for _, r := range *l.table.Load() {
		if strings.HasPrefix(path, r.PathPrefix) {
			return r
		}
	}
	return nil
}

// retire closes a listener that lost its last route: its port is free when
// retire returns; requests in flight get ShutdownTimeout to finish. Called
// with s.mu held and !s.closed.
func (s *Server) retire(l *listener) {
	delete(s.listeners, l.key)
	l.table.Store(&[]*route{})
	_ = l.ln.Close()
	s.goroutines.Add(1)
	go func() {
		defer s.goroutines.Done()
		ctx, cancel := context.WithTimeout(s.hurry, s.opts.ShutdownTimeout)
		defer cancel()
		if s.shutdown(ctx, l) {
			s.log.Warn("listener closed with requests in flight cut off", "addr", l.ln.Addr().String())
		}
	}()
}

// shutdown stops a listener gracefully, cutting its requests off when ctx
// ends, and returns once its serve loop has. It reports whether requests
// were cut off.
func (s *Server) shutdown(ctx context.Context, l *listener) (cutOff bool) {
	_ = l.ln.Close() // Serve may not have taken it yet; Shutdown closes only what it has
	if err := l.srv.Shutdown(ctx); err != nil && errors.Is(err, ctx.Err()) {
		cutOff = true
		l.cancel() // requests in flight see their context end
		_ = l.srv.Close()
	}
	l.cancel()
	<-l.done
	return cutOff
}

// Routes returns every bound route and its address, sorted by actor,
// listen address and prefix.
func (s *Server) Routes() []RouteInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []RouteInfo
	for _, rs := range s.actors {
		for _, r := range rs {
			out = append(out, RouteInfo{Route: r.Route, Addr: s.listeners[r.lkey].ln.Addr().String()})
		}
	}
	slices.SortFunc(out, func(a, b RouteInfo) int {
		return cmp.Or(cmp.Compare(a.Actor, b.Actor), cmp.Compare(a.Listen, b.Listen), cmp.Compare(a.PathPrefix, b.PathPrefix))
	})
	return out
}

// Stats returns the Server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Requests:    s.requests.Load(),
		NoRoute:     s.noRoute.Load(),
		BadRequest:  s.badRequest.Load(),
		TooLarge:    s.tooLarge.Load(),
		Unavailable: s.unavailable.Load(),
		Timeout:     s.timeout.Load(),
		Failed:      s.failed.Load(),
		BadResponse: s.badResponse.Load(),
	}
}

// Close shuts every listener down: no new connections are taken, and
// requests in flight may finish until ctx ends, when they are cut off
// (their invocations see their context end). It returns once every serve
// loop and handler has returned; it returns ctx's error when requests had
// to be cut off. Bind after Close fails. Close may be called more than once.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	ls := make([]*listener, 0, len(s.listeners))
	if !s.closed {
		s.closed = true
		for _, l := range s.listeners {
			ls = append(ls, l)
			s.goroutines.Add(1)
		}
		s.listeners = map[string]*listener{}
		s.actors = map[string]map[routeKey]*route{}
	}
	s.mu.Unlock()

	stop := context.AfterFunc(ctx, s.hurryCancel)
	defer stop()
	var cutOff atomic.Bool
	for _, l := range ls {
		go func() {
			defer s.goroutines.Done()
			if s.shutdown(s.hurry, l) {
				cutOff.Store(true)
			}
		}()
	}
	s.goroutines.Wait()
	s.active.wait()
	if cutOff.Load() {
		return fmt.Errorf("httpserver: close: requests in flight cut off: %w", cmp.Or(ctx.Err(), context.Canceled))
	}
	return nil
}

// activeCount counts running handlers. Unlike a WaitGroup it may go up from
// zero while Close waits: a connection can deliver one last request as it
// is being closed.
type activeCount struct {
	mu   sync.Mutex
	cond sync.Cond
	n    int
}

func (a *activeCount) enter() {
	a.mu.Lock()
	a.n++
	a.mu.Unlock()
}

func (a *activeCount) leave() {
	a.mu.Lock()
	a.n--
	if a.n == 0 {
		a.cond.Broadcast()
	}
	a.mu.Unlock()
}

func (a *activeCount) wait() {
	a.mu.Lock()
	for a.n > 0 {
		a.cond.Wait()
	}
	a.mu.Unlock()
}
