package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trellis-edge/trellis/agent/actor"
	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/httpserver"
	"github.com/trellis-edge/trellis/capabilities/messaging"
	"github.com/trellis-edge/trellis/capabilities/timer"
	"github.com/trellis-edge/trellis/mesh"
	"github.com/trellis-edge/trellis/store"
)

// JetStreamDir is the JetStream store folder under the data dir.
const JetStreamDir = "jetstream"

// stepTimeout bounds each step of the agent's shutdown.
const stepTimeout = 10 * time.Second

// Options are what the agent gets from its process rather than its config.
type Options struct {
	Version string       // trellis version, reported in the inventory
	Logger  *slog.Logger // nil discards
	// Ready, if set, is called once the agent serves: with the device bus
	// URL (the real port when the config asked for port 0) and the host id.
	Ready func(clientURL, hostID string)
}

// Agent is one device agent: store, actor runtime, embedded NATS server,
// actor RPC, control API and events. New builds nothing that runs; Run
// starts everything and stops it all when its context ends.
type Agent struct {
	cfg  Config
	opts Options
	log  *slog.Logger

	// Set by Run.
	store  *store.Store
	rt     *actor.Runtime
	srv    *mesh.Server
	nc     *nats.Conn
	rpc    *mesh.RPC
	ctl    *mesh.Control
	events *mesh.Events
	caps   *capabilities.Dispatcher
	dev    *devices
	http   *httpserver.Server
	msg    *messaging.Handler
	timers *timer.Handler
	js     jetstream.JetStream // the device's own JetStream
	tm     *messaging.Telemetry
	fwd    *mesh.Forwarder

	auth *mesh.Authorizer // signed control commands; nil when no operator keys

	startMu  sync.Mutex
	starting map[string]chan struct{} // actors between their grants and their start; closed when started (or failed)
	hostID   string
	httpAddr string
	started  time.Time

	mu     sync.Mutex // serializes actor lifecycle changes and label writes
	labels map[string]string
}

// New validates cfg (with defaults filled in) and returns an agent ready to Run.
func New(cfg Config, opts Options) (*Agent, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	return &Agent{cfg: cfg, opts: opts, log: log.With("subsystem", "agent")}, nil
}

// Run starts the agent and blocks until ctx ends, then stops every part in
// reverse order. If a part fails to start, the parts already started are
// stopped and the error is returned.
func (a *Agent) Run(ctx context.Context) (err error) {
	// Parts are stopped in reverse order, each within stepTimeout: a part
	// that hangs is reported and passed over, so Run always returns (systemd
	// waits for it, and a device must be able to restart).
	type step struct {
		name string
		fn   func()
	}
	var stops []step
	onStop := func(name string, fn func()) { stops = append(stops, step{name, fn}) }
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			done := make(chan struct{})
			go func() { defer close(done); stops[i].fn() }()
			select {
			case <-done:
			case <-time.After(stepTimeout):
				a.log.Error("shutdown step did not finish; going on", "step", stops[i].name, "waited", stepTimeout)
			}
		}
	}()
	a.started = time.Now()
	if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("agent: data dir: %w", err)
	}

	// Store and identity.
	if a.store, err = store.Open(a.cfg.DataDir, nil); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	onStop("store", func() { _ = a.store.Close() })
	// The store opened and verified: keep a copy to recover from if the
	// file is damaged later (docs/data-dir.md).
	if lg, wrote, err := a.store.SnapshotLastGood(); err != nil {
		a.log.Warn("store: last good copy not written; the store itself is fine", "err", err)
	} else if wrote {
		a.log.Info("store: last good copy written", "path", lg.Path, "transaction", lg.TxID, "bytes", lg.Size)
	}
	kp, err := a.store.Identity()
	if err != nil {
		return fmt.Errorf("agent: identity: %w", err)
	}
	if a.hostID, err = kp.PublicKey(); err != nil {
		return fmt.Errorf("agent: identity: %w", err)
	}
	kp.Wipe()
	if len(a.cfg.Labels) > 0 {
		if err := a.store.PutLabels(a.cfg.Labels); err != nil {
			return fmt.Errorf("agent: labels: %w", err)
		}
	}
	if a.labels, err = a.store.Labels(); err != nil {
		return fmt.Errorf("agent: labels: %w", err)
	}
	log := a.log.With("host", a.hostID)
	a.log = log

	// The device bus: an embedded nats-server, a leaf of every hub.
	hubTLS, err := tlsConfig(a.cfg.HubTLS)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.srv, err = mesh.StartServer(ctx, mesh.ServerOptions{
		Name:           a.cfg.Name + "-" + a.hostID[:8],
		Listen:         a.cfg.Listen,
		StoreDir:       filepath.Join(a.cfg.DataDir, JetStreamDir),
		Domain:         a.hostID,
		Hubs:           a.cfg.Hubs,
		HubCredentials: a.cfg.HubCredentials,
		HubTLS:         hubTLS,
		Logger:         log,
	})
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("agent: %w (another program uses %s: choose another --listen address, or port 0 for a free one)", err, a.cfg.Listen)
	}
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	onStop("nats server", func() { _ = a.srv.Shutdown(context.Background()) })
	if a.nc, err = a.srv.Connect(nats.Name("trellis-agent")); err != nil {
		return fmt.Errorf("agent: connect to the device bus: %w", err)
	}
	onStop("bus connection", a.nc.Close)

	// Telemetry: a stream on the device's own JetStream keeps every message
	// until the hub has it; the forwarder sends them up in order.
	if err := a.startTelemetry(ctx, onStop); err != nil {
		return err
	}

	// The actor runtime: host calls go to granted capabilities, and to
	// actors that are not local over the lattice.
	a.caps = a.newCapabilities()
	a.rt, err = actor.New(actor.Options{
		CacheDir:     CompileCachePath(a.cfg.DataDir),
		Logger:       a.log,
		Capabilities: &hostCalls{caps: a.caps, nc: a.nc, lattice: a.cfg.Lattice},
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	onStop("actor runtime", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.rt.Close(ctx)
	})
	onStop("devices", a.dev.close)
	onStop("messaging", a.msg.Close)
	onStop("timers", a.timers.Close)
	onStop("http ingress", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.http.Close(ctx)
	})
	a.configureDevices(ctx, a.cfg.Devices)
	a.rpc = mesh.NewRPC(a.nc, a.cfg.Lattice, a.hostID, a.rt, a.log)
	onStop("actor rpc", a.rpc.Close)
	a.events = mesh.NewEvents(a.nc, a.cfg.Lattice, a.hostID, a.log)

	a.restore(ctx)
	if err := a.applyConfigActors(ctx); err != nil {
		return err
	}

	if len(a.cfg.Policy.OperatorKeys) > 0 {
		if a.auth, err = mesh.NewAuthorizer(a.cfg.Policy.OperatorKeys, 0); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	}
	if a.ctl, err = mesh.ServeControl(a.nc, a.cfg.Lattice, a.hostID, a.opts.Version, (*host)(a), a.log); err != nil {
		return fmt.Errorf("agent: control api: %w", err)
	}
	onStop("control api", func() { _ = a.ctl.Stop() })

	if a.cfg.HTTPEnabled() {
		addr, stop, err := a.serveHTTP()
		if err != nil {
			return err
		}
		a.httpAddr = addr
		onStop("http", stop)
	}

	_ = a.events.Publish(ctx, mesh.EventHostStarted, a.inventory(ctx))
	onStop("host stopping event", func() {
		_ = a.events.Publish(context.Background(), mesh.EventHostStopping, a.inventory(context.Background()))
	})
	hbCtx, hbStop := context.WithCancel(ctx)
	var hb sync.WaitGroup
	hb.Go(func() { a.events.RunHeartbeat(hbCtx, a.cfg.HeartbeatInterval, a.inventory) })
	onStop("heartbeat", func() { hbStop(); hb.Wait() })

	log.Info("agent serving", "name", a.cfg.Name, "lattice", a.cfg.Lattice, "listen", a.srv.ClientURL(),
		"hubs", len(a.cfg.Hubs), "actors", len(a.rt.Actors()), "engine", actor.EngineName(), "http", a.httpAddr)
	if a.opts.Ready != nil {
		a.opts.Ready(a.srv.ClientURL(), a.hostID)
	}
	<-ctx.Done()
	log.Info("agent stopping")
	return nil
}

// startTelemetry makes the device's telemetry stream and runs its
// forwarder to the hub (when there is one).
func (a *Agent) startTelemetry(ctx context.Context, onStop func(string, func())) error {
	if !a.srv.JetStream() {
		return nil
	}
	js, err := jetstream.New(a.nc)
	if err != nil {
		return fmt.Errorf("agent: jetstream: %w", err)
	}
	if _, err := mesh.EnsureDeviceTelemetry(ctx, js, a.cfg.Lattice, a.hostID, a.cfg.Telemetry.limits()); err != nil {
		return fmt.Errorf("agent: telemetry stream: %w", err)
	}
	a.js = js
	if len(a.cfg.Hubs) == 0 {
		return nil // kept on the device until a config with hubs
	}
	a.fwd, err = mesh.NewForwarder(mesh.ForwarderOptions{Server: a.srv, Lattice: a.cfg.Lattice, Host: a.hostID, Logger: a.log})
	if err != nil {
		return fmt.Errorf("agent: telemetry forwarder: %w", err)
	}
	fctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.fwd.Run(fctx); err != nil {
			a.log.Error("telemetry forwarder stopped", "err", err)
		}
	})
	onStop("telemetry forwarder", func() { stop(); wg.Wait() })
	return nil
}

// restore starts every actor the store says was running. One that fails is
// reported and skipped: the others still start.
func (a *Agent) restore(ctx context.Context) {
	recs, err := a.store.Actors()
	if err != nil {
		a.log.Error("reading actors from the store", "err", err)
	}
	for _, rec := range recs {
		wasm, err := a.store.Artifact(rec.Artifact)
		var grants capabilities.Grants
		if err == nil {
			grants, err = storedGrants(rec)
		}
		if err == nil {
			err = a.startActor(ctx, rec.Name, wasm, limitsFromStore(rec.Limits), grants)
		}
		if err != nil {
			a.log.Error("restoring actor", "actor", rec.Name, "err", err)
			_ = a.events.Publish(ctx, mesh.EventActorFailed, map[string]string{"actor": rec.Name, "error": err.Error()})
			continue
		}
		a.log.Info("actor restored", "actor", rec.Name, "revision", rec.Revision)
	}
}

// applyConfigActors starts (or updates) the actors named in the config and
// on the command line, and records them in the store.
func (a *Agent) applyConfigActors(ctx context.Context) error {
	for _, ac := range a.cfg.Actors {
		wasm, err := os.ReadFile(ac.Module)
		if err != nil {
			return fmt.Errorf("agent: actor %s: %w", ac.Name, err)
		}
		if existing, ok := a.rt.Actor(ac.Name); ok && existing.Digest() == store.DigestOf(wasm).String() && existing.Limits() == ac.Limits.WithDefaults() {
			if g, _ := a.caps.Grants(ac.Name); reflect.DeepEqual(g, ac.Grants) {
				continue // restored from the store, unchanged
			}
		}
		req := mesh.StartActor{Name: ac.Name, Module: wasm, Limits: WireLimits(ac.Limits), Grants: ac.Grants}
		if _, ok := a.rt.Actor(ac.Name); ok {
			err = (*host)(a).UpdateActor(ctx, req)
		} else {
			err = (*host)(a).StartActor(ctx, req)
		}
		if err != nil {
			return fmt.Errorf("agent: actor %s (%s): %w", ac.Name, ac.Module, err)
		}
	}
	return nil
}

// startActor grants an actor its capabilities (checked against the other
// actors' grants), starts it in the runtime and serves it on the lattice.
func (a *Agent) startActor(ctx context.Context, name string, wasm []byte, limits actor.Limits, grants capabilities.Grants) error {
	started := make(chan struct{})
	a.startMu.Lock()
	if a.starting == nil {
		a.starting = map[string]chan struct{}{}
	}
	a.starting[name] = started
	a.startMu.Unlock()
	defer func() {
		a.startMu.Lock()
		delete(a.starting, name)
		a.startMu.Unlock()
		close(started)
	}()
	caps, err := a.cfg.Policy.admit(name, wasm, time.Now())
	if err != nil {
		return err
	}
	a.caps.SetClaims(name, caps)
	if err := a.grant(name, grants); err != nil {
		return err
	}
	if _, err := a.rt.Start(ctx, name, wasm, limits); err != nil {
		a.caps.ReleaseGrants(name)
		return err
	}
	if err := a.rpc.Serve(name); err != nil {
		_ = a.rt.Stop(ctx, name)
		a.caps.ReleaseGrants(name)
		return err
	}
	return nil
}

// grant checks an actor's grants together with every other actor's (one
// output line, one HTTP route each) and sets them.
func (a *Agent) grant(name string, g capabilities.Grants) error {
	fleet := map[string]capabilities.Grants{name: g}
	for _, act := range a.rt.Actors() {
		if other, ok := a.caps.Grants(act.Name()); ok && act.Name() != name {
			fleet[act.Name()] = other
		}
	}
	if err := capabilities.ValidateFleet(fleet, nil); err != nil {
		return err
	}
	return a.caps.SetGrants(name, g)
}

// storedGrants decodes the grants kept in an actor's record.
func storedGrants(rec store.Actor) (capabilities.Grants, error) {
	var g capabilities.Grants
	if len(rec.Grants) == 0 {
		return g, nil
	}
	if err := json.Unmarshal(rec.Grants, &g); err != nil {
		return g, fmt.Errorf("actor %s: stored grants: %w", rec.Name, err)
	}
	return g, nil
}

// HostID returns the host's id (its public nkey) once Run has started.
func (a *Agent) HostID() string { return a.hostID }

// Connect opens an in-process connection to the device bus (no TCP), as
// the agent's own parts use; for programs that embed the agent. Run must
// have started.
func (a *Agent) Connect(opts ...nats.Option) (*nats.Conn, error) { return a.srv.Connect(opts...) }

// HTTPRoutes returns the actors' HTTP ingress routes with the addresses
// they listen on (the real port when a grant asked for port 0).
func (a *Agent) HTTPRoutes() []httpserver.RouteInfo { return a.http.Routes() }

// HTTPAddr returns the address of /healthz and /metrics once Run has
// started ("" when disabled).
func (a *Agent) HTTPAddr() string { return a.httpAddr }

// Reload applies a new configuration to a running agent, as SIGHUP does
// for `trellis agent`: the devices section replaces the GPIO provider and
// the sensors (a section left out means none), the config's actors are
// started or updated (actors started through the control API are kept),
// and labels are put. Listen addresses, hubs, the data dir and the lattice
// need a restart and are not changed. Actors keep running throughout.
func (a *Agent) Reload(ctx context.Context, cfg Config) error {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if a.rt == nil {
		return errors.New("agent: reload: the agent is not running")
	}
	devs := cfg.Devices
	if devs.GPIO == nil {
		devs.GPIO = &mesh.GPIOConfig{Provider: mesh.GPIONone}
	}
	if devs.Sensors == nil {
		devs.Sensors = []mesh.SensorConfig{}
	}
	var errs []error
	if err := a.applyDevices(ctx, devs); err != nil {
		errs = append(errs, err)
	}
	if a.js != nil && cfg.Telemetry != a.cfg.Telemetry {
		if _, err := mesh.EnsureDeviceTelemetry(ctx, a.js, a.cfg.Lattice, a.hostID, cfg.Telemetry.limits()); err != nil {
			errs = append(errs, fmt.Errorf("telemetry: %w", err))
		} else {
			a.cfg.Telemetry = cfg.Telemetry
		}
	}
	a.cfg.Actors, a.cfg.Devices = cfg.Actors, cfg.Devices
	if err := a.applyConfigActors(ctx); err != nil {
		errs = append(errs, err)
	}
	if len(cfg.Labels) > 0 {
		if err := (*host)(a).PutLabels(ctx, cfg.Labels); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("agent: reload: %w", err)
	}
	a.log.Info("config reloaded", "actors", len(cfg.Actors), "gpio", devs.GPIO.Provider, "sensors", len(devs.Sensors))
	return nil
}
