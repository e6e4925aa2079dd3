package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-edge/trellis/agent/actor"
	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/gpio"
	"github.com/trellis-edge/trellis/capabilities/httpserver"
	"github.com/trellis-edge/trellis/capabilities/kv"
	"github.com/trellis-edge/trellis/capabilities/logging"
	"github.com/trellis-edge/trellis/capabilities/messaging"
	"github.com/trellis-edge/trellis/capabilities/numbergen"
	"github.com/trellis-edge/trellis/capabilities/sensor"
	"github.com/trellis-edge/trellis/capabilities/timer"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
	"github.com/trellis-edge/trellis/mesh"
	"github.com/trellis-edge/trellis/store"
)

// host is the agent as the control API sees it (mesh.Host).
type host Agent

var _ mesh.Host = (*host)(nil)

func (h *host) agent() *Agent { return (*Agent)(h) }

// Inventory implements mesh.Host.
func (h *host) Inventory(ctx context.Context) mesh.Inventory { return h.agent().inventory(ctx) }

func (a *Agent) inventory(context.Context) mesh.Inventory {
	a.mu.Lock()
	labels := maps.Clone(a.labels)
	a.mu.Unlock()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	inv := mesh.Inventory{
		Host: mesh.HostInfo{
			ID:        a.hostID,
			Name:      a.cfg.Name,
			Lattice:   a.cfg.Lattice,
			Labels:    labels,
			Version:   a.opts.Version,
			Arch:      runtime.GOOS + "/" + runtime.GOARCH,
			Engine:    actor.EngineName(),
			StartedAt: a.started.UTC(),
			Uptime:    mesh.Duration(time.Since(a.started).Round(time.Second)),
			Memory:    mesh.MemoryInfo{RSS: rss(), GoHeap: ms.HeapInuse, GoTotal: ms.Sys},
		},
		Actors:    []mesh.ActorInfo{},
		Timestamp: time.Now().UTC(),
	}
	inv.Host.Telemetry = a.telemetryStatus()
	for _, act := range a.rt.Actors() {
		s := act.Stats()
		info := mesh.ActorInfo{
			Name: act.Name(), Digest: act.Digest(), MaxInstances: act.Limits().MaxInstances,
			Instances: s.Instances, Idle: s.Idle, Calls: s.Calls, Failures: s.Failures,
		}
		if rec, err := a.store.Actor(act.Name()); err == nil {
			info.Revision = rec.Revision
		}
		inv.Actors = append(inv.Actors, info)
	}
	return inv
}

// telemetryStatus reports the telemetry buffer; nil without JetStream.
func (a *Agent) telemetryStatus() *mesh.TelemetryStatus {
	if a.js == nil {
		return nil
	}
	st := &mesh.TelemetryStatus{}
	if a.tm != nil {
		st.Rejected = a.tm.Stats().Rejected
	}
	if a.fwd == nil {
		// No hub: everything stays on the device. Ask the stream.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if s, err := a.js.Stream(ctx, mesh.TelemetryStream); err == nil {
			if info, err := s.Info(ctx); err == nil {
				st.Backlog = info.State.Msgs
				if info.State.Msgs > 0 {
					st.Oldest = info.State.FirstTime.UTC()
				}
			}
		}
		return st
	}
	f := a.fwd.Stats()
	st.Backlog, st.Dropped, st.Forwarded, st.LastError = f.Backlog, f.Dropped, f.Forwarded, f.LastError
	if !f.Oldest.IsZero() {
		st.Oldest = f.Oldest.UTC()
	}
	st.Offline = mesh.Duration(f.Offline.Round(time.Second))
	return st
}

// rss reads the resident set size from /proc (0 where there is none).
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// StartActor implements mesh.Host: the module is stored, started, served on
// the lattice, and recorded so it is restored at the next start.
func (h *host) StartActor(ctx context.Context, req mesh.StartActor) error {
	a := h.agent()
	a.mu.Lock()
	defer a.mu.Unlock()
	limits := limitsFromWire(req.Limits)
	if err := limits.Validate(); err != nil {
		return err
	}
	digest, err := a.store.PutArtifact(req.Module)
	if err != nil {
		return err
	}
	if _, running := a.rt.Actor(req.Name); running {
		return fmt.Errorf("actor %s is already running on this host (update it instead)", req.Name)
	}
	grants, err := json.Marshal(req.Grants)
	if err != nil {
		return err
	}
	if err := a.startActor(ctx, req.Name, req.Module, limits, req.Grants); err != nil {
		a.failed(ctx, req.Name, err)
		return err
	}
	if err := a.store.PutActor(store.Actor{Name: req.Name, Artifact: digest, Limits: limitsToStore(limits), Grants: grants}); err != nil {
		a.rpc.Unserve(req.Name)
		_ = a.rt.Stop(ctx, req.Name)
		a.caps.RemoveGrants(req.Name)
		return fmt.Errorf("recording actor %s: %w", req.Name, err)
	}
	a.log.Info("actor started", "actor", req.Name, "sha256", digest)
	_ = a.events.Publish(ctx, mesh.EventActorStarted, map[string]any{"actor": req.Name, "digest": digest.String()})
	return nil
}

// UpdateActor implements mesh.Host: the new version is compiled and started
// before the old one is drained; if it fails, the old one keeps serving.
func (h *host) UpdateActor(ctx context.Context, req mesh.StartActor) error {
	a := h.agent()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.update(ctx, req.Name, req.Module, limitsFromWire(req.Limits), req.Grants)
}

func (a *Agent) update(ctx context.Context, name string, wasm []byte, limits actor.Limits, grants capabilities.Grants) error {
	if err := limits.Validate(); err != nil {
		return err
	}
	if _, ok := a.rt.Actor(name); !ok {
		return fmt.Errorf("actor %s is not running on this host", name)
	}
	digest, err := a.store.PutArtifact(wasm)
	if err != nil {
		return err
	}
	encoded, err := json.Marshal(grants)
	if err != nil {
		return err
	}
	caps, err := a.cfg.Policy.admit(name, wasm, time.Now())
	if err != nil {
		a.failed(ctx, name, err) // the old version keeps serving
		return err
	}
	previous, _ := a.caps.Grants(name)
	if err := a.grant(name, grants); err != nil {
		return err
	}
	if _, err := a.rt.Update(ctx, name, wasm, limits); err != nil {
		_ = a.caps.SetGrants(name, previous) // the old version keeps serving, with its grants
		a.failed(ctx, name, err)
		return err
	}
	a.caps.SetClaims(name, caps)
	if err := a.store.PutActor(store.Actor{Name: name, Artifact: digest, Limits: limitsToStore(limits), Grants: encoded}); err != nil {
		return fmt.Errorf("recording actor %s: %w", name, err)
	}
	a.log.Info("actor updated", "actor", name, "sha256", digest)
	_ = a.events.Publish(ctx, mesh.EventActorUpdated, map[string]any{"actor": name, "digest": digest.String()})
	return nil
}

// StopActor implements mesh.Host.
func (h *host) StopActor(ctx context.Context, name string) error {
	a := h.agent()
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.rt.Actor(name); !ok {
		return fmt.Errorf("actor %s is not running on this host", name)
	}
	a.rpc.Unserve(name)
	if err := a.rt.Stop(ctx, name); err != nil {
		return err
	}
	a.caps.RemoveGrants(name)
	if err := a.store.DeleteActor(name); err != nil {
		return fmt.Errorf("forgetting actor %s: %w", name, err)
	}
	a.log.Info("actor stopped", "actor", name)
	_ = a.events.Publish(ctx, mesh.EventActorStopped, map[string]any{"actor": name})
	return nil
}

// ScaleActor implements mesh.Host: the actor restarts with a new
// max_instances from its stored module (compiled code comes from the cache).
func (h *host) ScaleActor(ctx context.Context, name string, maxInstances int) error {
	a := h.agent()
	a.mu.Lock()
	defer a.mu.Unlock()
	rec, err := a.store.Actor(name)
	if err != nil {
		return fmt.Errorf("actor %s: %w", name, err)
	}
	wasm, err := a.store.Artifact(rec.Artifact)
	if err != nil {
		return err
	}
	limits := limitsFromStore(rec.Limits)
	limits.MaxInstances = maxInstances
	grants, err := storedGrants(rec)
	if err != nil {
		return err
	}
	return a.update(ctx, name, wasm, limits, grants)
}

// PutLabels implements mesh.Host.
func (h *host) PutLabels(_ context.Context, labels map[string]string) error {
	return h.agent().setLabels(func() error { return h.store.PutLabels(labels) })
}

// DeleteLabels implements mesh.Host.
func (h *host) DeleteLabels(_ context.Context, keys []string) error {
	return h.agent().setLabels(func() error { return h.store.DeleteLabels(keys) })
}

func (a *Agent) setLabels(write func() error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := write(); err != nil {
		return err
	}
	labels, err := a.store.Labels()
	if err != nil {
		return err
	}
	a.labels = labels
	return nil
}

func (a *Agent) failed(ctx context.Context, name string, err error) {
	a.log.Warn("actor failed", "actor", name, "err", err)
	_ = a.events.Publish(ctx, mesh.EventActorFailed, map[string]any{"actor": name, "error": err.Error()})
}

// hostCalls serves the host calls the runtime does not serve itself (the
// log and local actors): granted capabilities first, then actors elsewhere
// on the lattice. Anything else is denied.
type hostCalls struct {
	caps    *capabilities.Dispatcher
	nc      *nats.Conn
	lattice string
}

func (d *hostCalls) Dispatch(ctx context.Context, call actor.HostCall) ([]byte, error) {
	// A capability, or a namespace that cannot be an actor name (so the
	// dispatcher denies and reports it).
	if d.caps.Handles(call.Namespace) || actor.ValidateName(call.Namespace) != nil {
		resp, err := d.caps.Dispatch(ctx, capabilities.Call{
			Actor: call.Caller, Binding: call.Binding, Contract: call.Namespace,
			Operation: call.Operation, Payload: call.Payload,
		})
		if errors.Is(err, capabilities.ErrDenied) {
			return nil, &actor.CallError{Code: actor.CodeDenied, Message: err.Error()}
		}
		return resp, err
	}
	resp, _, err := mesh.Call(ctx, d.nc, d.lattice, call.Namespace, call.Operation, call.Payload)
	var re *mesh.RemoteError
	if errors.As(err, &re) {
		return nil, &actor.CallError{Code: actor.Code(re.Code), Actor: call.Namespace, Operation: call.Operation, Message: re.Message}
	}
	return resp, err
}

// invoke calls a local actor's operation: how device events (GPIO edges,
// messages, timer ticks, HTTP requests) reach actors. An actor's grants,
// and so its bindings, are set before it starts (its initialisation may
// call capabilities): an event for an actor that is starting waits for
// the start, within ctx, instead of failing with not_found.
func (a *Agent) invoke(ctx context.Context, name, operation string, payload []byte) ([]byte, error) {
	if _, ok := a.rt.Actor(name); !ok {
		a.startMu.Lock()
		started, starting := a.starting[name]
		a.startMu.Unlock()
		if starting {
			select {
			case <-started:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return a.rt.Invoke(ctx, name, operation, payload)
}

// EventCapabilityDenied is published when an actor calls a capability it
// has no grant for.
const EventCapabilityDenied = "dev.trellis.capability.denied"

// newCapabilities returns the dispatcher with this device's providers.
func (a *Agent) newCapabilities() *capabilities.Dispatcher {
	d := capabilities.NewDispatcher(capabilities.DispatcherOptions{
		Denied: func(ctx context.Context, call capabilities.Call, reason string) {
			a.log.Warn("capability denied", "actor", call.Actor, "namespace", call.Contract, "operation", call.Operation)
			if a.events != nil {
				_ = a.events.Publish(ctx, EventCapabilityDenied, map[string]string{
					"actor": call.Actor, "namespace": call.Contract, "operation": call.Operation, "reason": reason,
				})
			}
		},
	})
	d.Register(capabilities.Numbergen, numbergen.Handler{})
	for _, ns := range numbergen.Namespaces {
		d.Register(ns, numbergen.NewWasmCloud(numbergen.Handler{}))
	}
	logs := logging.New(a.log.With("subsystem", "actor-log"))
	for _, ns := range logging.Namespaces {
		d.Register(ns, logs)
	}
	d.Register(capabilities.KV, kv.Handler{Store: a.store})
	for _, ns := range []string{"wasmcloud:keyvalue", "wascc:keyvalue"} {
		d.Register(ns, kv.WasmCloud{Store: a.store})
	}
	// Device providers come from the devices config (configureDevices);
	// until then a granted call says the device has none.
	a.dev = &devices{
		gpio: gpio.NewHandler(nil, func(ctx context.Context, actor, op string, payload []byte) error {
			_, err := a.invoke(ctx, actor, op, payload)
			return err
		}),
		sensors: sensor.NewHandler(nil),
	}
	// HTTP ingress: routes come from grants (the dispatcher binds them).
	a.http = httpserver.New(httpserver.Options{Invoke: a.invoke, Logger: a.log.With("subsystem", "http-ingress")})
	for _, ns := range httpserver.Namespaces() {
		d.Register(ns, a.http)
	}
	// Messaging on the lattice, and telemetry (subscriptions from grants
	// and from actors' Subscribe calls, kept in the store).
	a.msg = messaging.New(messaging.Options{Conn: a.nc, Store: a.store, Invoke: a.invoke,
		Lattice: a.cfg.Lattice, Host: a.hostID, Logger: a.log.With("subsystem", "messaging")})
	for _, ns := range []string{capabilities.Messaging, wasmcloud.Messaging, wasmcloud.WaSCCMessaging} {
		d.Register(ns, a.msg)
	}
	a.tm = messaging.NewTelemetry(a.nc, a.cfg.Lattice, a.hostID)
	if a.js != nil {
		a.tm.WithJetStream(a.js)
	}
	d.Register(capabilities.Telemetry, a.tm)
	// Timers set by actors (kept in the store) and schedules from grants.
	a.timers = timer.New(timer.Options{Store: a.store, Invoke: a.invoke, Logger: a.log.With("subsystem", "timer")})
	d.Register(capabilities.Timer, a.timers)
	d.Register(capabilities.GPIO, a.dev.gpio)
	d.Register(capabilities.Sensor, a.dev.sensors)
	return d
}

// Limit conversions between the runtime, the store and the wire.

func limitsFromWire(l mesh.ActorLimits) actor.Limits {
	return actor.Limits{
		MaxInstances: l.MaxInstances, MemoryPages: l.MemoryPages, CallTimeout: time.Duration(l.CallTimeout),
		MaxRequest: l.MaxRequest, MaxResponse: l.MaxResponse, MaxHostPayload: l.MaxHostPayload, MaxHostCalls: l.MaxHostCalls,
	}
}

// WireLimits returns actor limits as the control API carries them.
func WireLimits(l actor.Limits) mesh.ActorLimits {
	return mesh.ActorLimits{
		MaxInstances: l.MaxInstances, MemoryPages: l.MemoryPages, CallTimeout: mesh.Duration(l.CallTimeout),
		MaxRequest: l.MaxRequest, MaxResponse: l.MaxResponse, MaxHostPayload: l.MaxHostPayload, MaxHostCalls: l.MaxHostCalls,
	}
}

// store.Limits mirrors actor.Limits field for field (the store may not
// import the runtime), so these are conversions the compiler checks.
func limitsFromStore(l store.Limits) actor.Limits { return actor.Limits(l) }

func limitsToStore(l actor.Limits) store.Limits { return store.Limits(l) }

// tlsConfig loads the PEM files of a TLS connection; nil when none is set.
func tlsConfig(t TLSConfig) (*tls.Config, error) {
	if t.IsZero() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("hub_tls.ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("hub_tls.ca %s: no PEM certificates in it", t.CA)
		}
	}
	if t.Cert != "" || t.Key != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("hub_tls.cert/key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
