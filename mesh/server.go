package mesh

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Defaults of ServerOptions.
const (
	DefaultListen            = "127.0.0.1:4222"
	DefaultMaxPayload        = 8 << 20 // control requests carry wasm modules
	DefaultReconnectInterval = 250 * time.Millisecond
)

// startTimeout bounds the wait for the listeners when ctx has no deadline.
const startTimeout = 30 * time.Second

// ServerOptions configure the embedded nats-server. The zero value is a
// server on DefaultListen without JetStream and without uplink.
//
// An agent sets Hubs, StoreDir and Domain (its own JetStream domain, e.g. the
// host name); a development hub sets LeafListen and Domain "hub".
type ServerOptions struct {
	// Name is the server_name. It must stay the same across restarts when
	// JetStream is on (StoreDir set), so it is required then.
	Name string
	// Listen is host:port for clients; port 0 picks a free port (see
	// ClientURL). Empty means DefaultListen.
	Listen string
	// DontListen opens no client port: only Connect works (tests, or an
	// agent that wants no local bus).
	DontListen bool
	// StoreDir is the JetStream store directory; empty disables JetStream.
	StoreDir string
	// Domain is the JetStream domain. A leaf (Hubs set) with JetStream
	// needs one, distinct from the hub's.
	Domain string
	// Hubs are the URLs of the hub's leafnode listeners (nats-leaf:// or
	// tls://). They form one remote: the server connects to one of them and
	// moves to the next when it fails, reconnecting forever.
	Hubs []string
	// HubCredentials is a .creds file for the leaf remote.
	HubCredentials string
	// HubTLS is the TLS configuration of the leaf remote; nil uses the
	// system roots when a URL is tls://.
	HubTLS *tls.Config
	// LeafListen is host:port of the leafnode listener (hubs only); port 0
	// picks a free port (see LeafURL). Empty means no listener.
	LeafListen string
	// LeafTLS makes the leafnode listener TLS only (LeafURL is then
	// tls://); its ClientAuth decides whether leaves must present a
	// certificate (see DevTLS).
	LeafTLS *tls.Config
	// MaxPayload is the largest message in bytes; 0 means DefaultMaxPayload.
	MaxPayload int32
	// ReconnectInterval is the pause between leaf reconnect attempts; 0
	// means DefaultReconnectInterval.
	ReconnectInterval time.Duration
	// Logger receives nats-server's logs; nil discards them.
	Logger *slog.Logger
	// NoAdvertise: a hub does not advertise its leafnode URLs to leaves,
	// and a leaf ignores URLs advertised by its hub and uses Hubs only
	// (for hubs behind NAT or a proxy).
	NoAdvertise bool
}

// Server is a running embedded nats-server.
type Server struct {
	ns        *server.Server
	name      string
	clientURL string
	leafURL   string
	hasJS     bool

	shutdownOnce sync.Once
	done         chan struct{} // closed when shutdown has completed
}

// StartServer starts a nats-server and returns once it accepts connections.
// ctx bounds the start; the server itself lives until Shutdown.
func StartServer(ctx context.Context, opts ServerOptions) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mesh: start server %s: %w", opts.label(), err)
	}
	nopts, err := opts.natsOptions()
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(nopts)
	if err != nil {
		return nil, fmt.Errorf("mesh: server %s: %w", opts.label(), err)
	}
	logger := newNATSLogger(opts.Logger, opts.Name)
	ns.SetLoggerV2(logger, logger.enabled(slog.LevelDebug), logger.enabled(levelTrace), false)

	// Start is synchronous: listeners are open (or have failed, reported
	// through Fatalf) and JetStream is enabled when it returns.
	ns.Start()
	fail := func(err error) (*Server, error) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("mesh: start server %s: %w", opts.label(), err)
	}
	if err := logger.fatal(); err != nil {
		return fail(err)
	}
	wait := startTimeout
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	for end := time.Now().Add(wait); !ns.ReadyForConnections(50 * time.Millisecond); {
		if err := logger.fatal(); err != nil {
			return fail(err)
		}
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		if time.Now().After(end) {
			return fail(fmt.Errorf("not ready for connections after %s", wait))
		}
	}

	s := &Server{
		ns:    ns,
		name:  opts.Name,
		hasJS: nopts.JetStream,
		done:  make(chan struct{}),
	}
	if a, ok := ns.Addr().(*net.TCPAddr); ok && !opts.DontListen {
		s.clientURL = "nats://" + net.JoinHostPort(dialHost(nopts.Host, a.IP), strconv.Itoa(a.Port))
	}
	if opts.LeafListen != "" {
		// Start wrote the port it bound back into the options it was given
		// (in this goroutine), which is how nats-server reports port 0.
		scheme := "nats-leaf://"
		if nopts.LeafNode.TLSConfig != nil {
			scheme = "tls://"
		}
		s.leafURL = scheme + net.JoinHostPort(dialHost(nopts.LeafNode.Host, nil), strconv.Itoa(nopts.LeafNode.Port))
	}
	return s, nil
}

// label names the server in errors.
func (o ServerOptions) label() string {
	if o.Name == "" {
		return "(unnamed)"
	}
	return o.Name
}

// natsOptions validates o and translates it to nats-server's options.
func (o ServerOptions) natsOptions() (*server.Options, error) {
	fail := func(format string, args ...any) (*server.Options, error) {
		return nil, fmt.Errorf("mesh: server %s: "+format, append([]any{o.label()}, args...)...)
	}
	n := &server.Options{
		ServerName: o.Name,
		DontListen: o.DontListen,
		NoSigs:     true, // the process's signals belong to main
		MaxPayload: o.MaxPayload,
	}
	if n.MaxPayload == 0 {
		n.MaxPayload = DefaultMaxPayload
	}
	if n.MaxPayload < 0 {
		return fail("max payload %d: want > 0", o.MaxPayload)
	}
	listen := o.Listen
	if listen == "" {
		listen = DefaultListen
	}
	var err error
	if n.Host, n.Port, err = splitListen(listen); err != nil {
		return fail("listen: %w", err)
	}
	if o.StoreDir != "" {
		if o.Name == "" {
			return fail("JetStream (store dir %s) needs a fixed server name", o.StoreDir)
		}
		if len(o.Hubs) > 0 && o.Domain == "" {
			return fail("JetStream on a leaf needs its own domain")
		}
		n.JetStream, n.StoreDir, n.JetStreamDomain = true, o.StoreDir, o.Domain
	} else if o.Domain != "" {
		return fail("domain %q without a store dir: JetStream is off", o.Domain)
	}
	if o.LeafListen != "" {
		if n.LeafNode.Host, n.LeafNode.Port, err = splitListen(o.LeafListen); err != nil {
			return fail("leaf listen: %w", err)
		}
		if o.LeafTLS != nil {
			n.LeafNode.TLSConfig = o.LeafTLS
			n.LeafNode.TLSTimeout = 5
		}
	} else if o.LeafTLS != nil {
		return fail("leaf TLS without a leaf listener")
	}
	n.LeafNode.NoAdvertise = o.NoAdvertise
	n.LeafNode.ReconnectInterval = o.ReconnectInterval
	if n.LeafNode.ReconnectInterval == 0 {
		n.LeafNode.ReconnectInterval = DefaultReconnectInterval
	}
	if len(o.Hubs) > 0 {
		remote := &server.RemoteLeafOpts{
			Credentials:             o.HubCredentials,
			TLSConfig:               o.HubTLS,
			TLS:                     o.HubTLS != nil,
			IgnoreDiscoveredServers: o.NoAdvertise,
		}
		for _, h := range o.Hubs {
			u, err := url.Parse(h)
			if err != nil {
				return fail("hub %q: %w", h, err)
			}
			switch u.Scheme {
			case "nats-leaf":
			case "tls":
				remote.TLS = true // never fall back to plain text
			default:
				return fail("hub %q: want a nats-leaf:// or tls:// URL", h)
			}
			if u.Hostname() == "" {
				return fail("hub %q: no host", h)
			}
			remote.URLs = append(remote.URLs, u)
		}
		n.LeafNode.Remotes = []*server.RemoteLeafOpts{remote}
	} else if o.HubCredentials != "" || o.HubTLS != nil {
		return fail("hub credentials or TLS without hubs")
	}
	return n, nil
}

// splitListen parses host:port for a nats-server listener; port 0 becomes
// nats-server's "random port".
func splitListen(hostport string) (string, int, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%q: bad port", hostport)
	}
	if host == "" {
		host = "0.0.0.0" // ":4222" means every interface, as in net.Listen
	}
	if port == 0 {
		return host, server.RANDOM_PORT, nil
	}
	return host, int(port), nil
}

// dialHost is the host to dial for a listener bound to host: a wildcard
// address is reached through loopback.
func dialHost(host string, bound net.IP) string {
	ip := net.ParseIP(host)
	if ip == nil && bound != nil {
		ip = bound
	}
	if ip == nil || !ip.IsUnspecified() {
		return host
	}
	if ip.To4() != nil {
		return "127.0.0.1"
	}
	return "::1"
}

// Name returns the server_name.
func (s *Server) Name() string { return s.name }

// ClientURL returns the nats:// URL of the client listener, with the port
// actually bound; "" with DontListen.
func (s *Server) ClientURL() string { return s.clientURL }

// LeafURL returns the nats-leaf:// URL of the leafnode listener, with the
// port actually bound; "" unless LeafListen was set.
func (s *Server) LeafURL() string { return s.leafURL }

// JetStream reports whether JetStream is enabled.
func (s *Server) JetStream() bool { return s.hasJS }

// Connect opens an in-process connection (no TCP). nats.InProcessServer is
// set first; opts may add a name, handlers and so on.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	all := append([]nats.Option{nats.InProcessServer(s.ns), nats.Name(s.name)}, opts...)
	nc, err := nats.Connect("", all...)
	if err != nil {
		return nil, fmt.Errorf("mesh: connect to server %s: %w", s.name, err)
	}
	return nc, nil
}

// LeafNodes returns the number of leafnode connections: for an agent 1 while
// its uplink is up, for a hub the number of connected leaves.
func (s *Server) LeafNodes() int { return s.ns.NumLeafNodes() }

// LeafConnected reports whether at least one leafnode connection is up.
func (s *Server) LeafConnected() bool { return s.ns.NumLeafNodes() > 0 }

// Shutdown stops the server: it closes every connection, flushes JetStream
// and waits for the server's goroutines. If ctx ends first it returns
// ctx's error; the shutdown goes on, and a later call waits for it again.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		go func() {
			defer close(s.done)
			s.ns.Shutdown()
			s.ns.WaitForShutdown()
		}()
	})
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mesh: shutdown server %s: %w", s.name, ctx.Err())
	}
}

// levelTrace is below slog.LevelDebug: nats-server traces every protocol
// message.
const levelTrace = slog.LevelDebug - 4

// natsLogger adapts slog to nats-server's Logger. Fatalf does not exit: it
// records the first fatal error so that StartServer can return it.
type natsLogger struct {
	log *slog.Logger

	mu       sync.Mutex
	fatalErr error
}

func newNATSLogger(l *slog.Logger, name string) *natsLogger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &natsLogger{log: l.With("subsystem", "nats", "server", name)}
}

func (l *natsLogger) enabled(level slog.Level) bool {
	return l.log.Enabled(context.Background(), level)
}

func (l *natsLogger) logf(level slog.Level, format string, v []any) {
	if l.enabled(level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

func (l *natsLogger) Noticef(format string, v ...any) { l.logf(slog.LevelInfo, format, v) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v) }
func (l *natsLogger) Tracef(format string, v ...any)  { l.logf(levelTrace, format, v) }

// Fatalf logs at error level and records the error; nats-server has given
// up on the subsystem concerned (usually a listener) and returned.
func (l *natsLogger) Fatalf(format string, v ...any) {
	l.logf(slog.LevelError, format, v)
	err := &fatalError{msg: fmt.Sprintf(format, v...)}
	for _, a := range v {
		if e, ok := a.(error); ok {
			err.err = e // so that errors.Is(err, syscall.EADDRINUSE) works
			break
		}
	}
	// The listen errors name the address already ("listen tcp
	// 127.0.0.1:4222: bind: address already in use"); say which listener.
	if err.err != nil && strings.HasPrefix(format, "Error listening on ") {
		what := "client listener"
		if strings.Contains(format, "leafnode") {
			what = "leafnode listener"
		}
		err.msg = what + ": " + err.err.Error()
	}
	l.mu.Lock()
	if l.fatalErr == nil {
		l.fatalErr = err
	}
	l.mu.Unlock()
}

func (l *natsLogger) fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatalErr
}

// fatalError is nats-server's fatal message with the error it was about.
type fatalError struct {
	msg string
	err error
}

func (e *fatalError) Error() string { return e.msg }
func (e *fatalError) Unwrap() error { return e.err }

var _ server.Logger = (*natsLogger)(nil)
