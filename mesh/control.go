package mesh

// The control API: every agent serves it on trellis.<lattice>.ctl.… as a
// nats.go micro service, so `nats micro ls` and `nats micro info
// trellis-agent` discover every agent of every lattice.
//
//	trellis.<lattice>.ctl.ping                         every host answers (no queue group)
//	trellis.<lattice>.ctl.host.<host>.inventory        {}             → Inventory
//	trellis.<lattice>.ctl.host.<host>.actor.start      StartActor
//	trellis.<lattice>.ctl.host.<host>.actor.update     StartActor
//	trellis.<lattice>.ctl.host.<host>.actor.stop       StopActor
//	trellis.<lattice>.ctl.host.<host>.actor.scale      ScaleActor
//	trellis.<lattice>.ctl.host.<host>.labels.put       Labels         (keys and values set)
//	trellis.<lattice>.ctl.host.<host>.labels.delete    Labels         (keys deleted, values ignored)
//
// Every reply body is a JSON Reply. A failed request is answered with
// success false and a message that names the offending field or value; the
// same reply also carries micro's error headers (Nats-Service-Error-Code:
// one of the CtlCode… codes, Nats-Service-Error: the message) so that
// `nats micro stats` counts it. Clients parse the Reply; ControlRequest turns
// success false into a *ControlError.
//
// Requests are decoded strictly (unknown fields, trailing data, a body that is
// not a JSON object, more than MaxControlRequest bytes: all rejected) and
// validated before the Host is called; the Host never sees invalid input.
// ping and inventory take an empty body, "{}" or "null". A message without a
// reply subject is ignored: the control API acts only on requests.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Host is what the control API needs from the agent.
type Host interface {
	// Inventory reports the host and its running actors.
	Inventory(ctx context.Context) Inventory
	// StartActor starts an actor that is not running.
	StartActor(ctx context.Context, req StartActor) error
	// UpdateActor replaces a running actor: the new version is compiled and
	// started before the old one is drained; if it fails, the old one keeps
	// serving.
	UpdateActor(ctx context.Context, req StartActor) error
	// StopActor stops an actor.
	StopActor(ctx context.Context, name string) error
	// ScaleActor changes how many instances an actor may run at once.
	ScaleActor(ctx context.Context, name string, maxInstances int) error
	// PutLabels sets host labels.
	PutLabels(ctx context.Context, labels map[string]string) error
	// DeleteLabels removes host labels; missing keys are not an error.
	DeleteLabels(ctx context.Context, keys []string) error
}

// ControlServiceName is the micro service name every agent registers.
const ControlServiceName = "trellis-agent"

// Limits of control requests.
const (
	MaxControlRequest = 16 << 20 // bytes of one request body
	MaxActorInstances = 1024     // upper bound of max_instances
	MaxLabels         = 64       // labels in one request
	maxMemoryPages    = 65536    // 4 GiB: the wasm32 maximum
)

// Control operations: the last tokens of a host's control subjects
// (HostCtlSubject); CtlPing is lattice-wide (CtlSubject(lattice, CtlPing)).
const (
	CtlPing         = "ping"
	CtlInventory    = "inventory"
	CtlActorStart   = "actor.start"
	CtlActorUpdate  = "actor.update"
	CtlActorStop    = "actor.stop"
	CtlActorScale   = "actor.scale"
	CtlLabelsPut    = "labels.put"
	CtlLabelsDelete = "labels.delete"
)

// Error codes of failed control replies (header Nats-Service-Error-Code and
// ControlError.Code). They follow micro's HTTP-like convention.
const (
	CtlCodeBadRequest = "400" // the request did not decode or validate; the host was not called
	CtlCodeTooLarge   = "413" // the request exceeds MaxControlRequest; the host was not called
	CtlCodeFailed     = "500" // the host was called and returned an error
	CtlCodeStopping   = "503" // the control API is stopping; the host was not called
)

// HostCtlSubject is the subject of one host's control operation op (one of
// the Ctl… constants other than CtlPing).
func HostCtlSubject(lattice, hostID, op string) string {
	return CtlSubject(lattice, tokenHost, hostID, op)
}

// Control is a running control API. Stop it with Stop.
type Control struct {
	svc    micro.Service
	host   Host
	log    *slog.Logger
	cancel context.CancelFunc // cancels the context of in-flight host calls

	lattice, hostID string

	mu       sync.Mutex
	stopped  bool
	inflight sync.WaitGroup // host calls in progress
}

// ServeControl registers the control API of host hostID on nc; when it
// returns, the server has the subscriptions (if nc is connected). version is
// the trellis version; micro requires semver, so a version that is not one
// (such as "dev") is registered as 0.0.0-dev and kept verbatim in the
// metadata key "trellis_version". The service metadata also carries
// "host_id", "host_name" and "lattice".
//
// micro installs its own closed and error handlers on nc (chaining to the
// ones already set): set nc's handlers before calling ServeControl.
func ServeControl(nc *nats.Conn, lattice, hostID, version string, host Host, log *slog.Logger) (*Control, error) {
	if nc == nil || host == nil {
		return nil, errors.New("mesh: serve control: nil connection or host")
	}
	if err := ValidateToken("lattice", lattice); err != nil {
		return nil, fmt.Errorf("mesh: serve control: %w", err)
	}
	if err := ValidateToken("host id", hostID); err != nil {
		return nil, fmt.Errorf("mesh: serve control: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("subsystem", "control", "host", hostID)

	ctx, cancel := context.WithCancel(context.Background())
	c := &Control{host: host, log: log, cancel: cancel, lattice: lattice, hostID: hostID}

	meta := map[string]string{"host_id": hostID, "lattice": lattice, "trellis_version": version}
	if name := host.Inventory(ctx).Host.Name; name != "" {
		meta["host_name"] = name
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        ControlServiceName,
		Version:     microVersion(version),
		Description: "Trellis edge agent control API",
		Metadata:    meta,
		ErrorHandler: func(_ micro.Service, err *micro.NATSError) {
			log.Warn("control subscription error", "subject", err.Subject, "err", err.Description)
		},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mesh: serve control: %w", err)
	}
	c.svc = svc

	endpoints := []endpoint{
		// Every host answers a ping: a queue group would pick one.
		{"ping", CtlSubject(lattice, CtlPing), c.inventory, []micro.EndpointOpt{micro.WithEndpointQueueGroupDisabled()}},
		{"inventory", HostCtlSubject(lattice, hostID, CtlInventory), c.inventory, nil},
		{"actor-start", HostCtlSubject(lattice, hostID, CtlActorStart), c.startActor, nil},
		{"actor-update", HostCtlSubject(lattice, hostID, CtlActorUpdate), c.updateActor, nil},
		{"actor-stop", HostCtlSubject(lattice, hostID, CtlActorStop), c.stopActor, nil},
		{"actor-scale", HostCtlSubject(lattice, hostID, CtlActorScale), c.scaleActor, nil},
		{"labels-put", HostCtlSubject(lattice, hostID, CtlLabelsPut), c.putLabels, nil},
		{"labels-delete", HostCtlSubject(lattice, hostID, CtlLabelsDelete), c.deleteLabels, nil},
	}
	if dh, ok := host.(DeviceHost); ok {
		endpoints = append(endpoints, c.deviceEndpoints(dh)...)
	}
	var auth *Authorizer
	if ca, ok := host.(ControlAuthorizer); ok {
		auth = ca.ControlAuthorizer()
	}
	for _, ep := range endpoints {
		opts := append([]micro.EndpointOpt{micro.WithEndpointSubject(ep.subject)}, ep.opts...)
		handle := ep.handle
		if auth != nil && !slices.Contains(readOnly, ep.name) {
			handle = c.authorized(auth, ep.subject, handle)
		}
		h := micro.ContextHandler(ctx, func(ctx context.Context, r micro.Request) { c.serve(ctx, r, handle) })
		if err := svc.AddEndpoint(ep.name, h, opts...); err != nil {
			_ = c.Stop()
			return nil, fmt.Errorf("mesh: serve control: endpoint %s: %w", ep.name, err)
		}
	}
	// Once the server has the subscriptions, a request sent after
	// ServeControl returns (on any connection) finds them. Without a
	// connection they are sent when it comes back.
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		log.Warn("control subscriptions not confirmed by the server", "err", err)
	}
	return c, nil
}

// endpoint is one control operation.
type endpoint struct {
	name    string
	subject string
	handle  func(context.Context, []byte) (Reply, error)
	opts    []micro.EndpointOpt
}

// readOnly are the operations that change nothing: open to every identity
// that may reach them, signed or not.
var readOnly = []string{"ping", "inventory", "device-get"}

// authorized wraps a changing operation: only signed commands reach it.
func (c *Control) authorized(a *Authorizer, subject string, handle func(context.Context, []byte) (Reply, error)) func(context.Context, []byte) (Reply, error) {
	return func(ctx context.Context, data []byte) (Reply, error) {
		h, _ := ctx.Value(headersKey{}).(map[string][]string)
		if err := a.Check(subject, h, data); err != nil {
			c.log.Warn("control command refused", "subject", subject, "err", err)
			return Reply{}, err
		}
		return handle(ctx, data)
	}
}

// headersKey carries a request's headers to authorized.
type headersKey struct{}

// Stop unregisters the service, cancels the context of host calls in
// progress and waits for them to return. After Stop the Host is not called
// again; requests still queued are answered with CtlCodeStopping. Stop is
// idempotent; a Host method must not call it (it would wait for itself).
func (c *Control) Stop() error {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.cancel()
	var err error
	if c.svc != nil {
		if err = c.svc.Stop(); err != nil {
			err = fmt.Errorf("mesh: stop control: %w", err)
		}
	}
	c.inflight.Wait()
	return err
}

// enter reserves an in-flight host call; false once stopping.
func (c *Control) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false
	}
	c.inflight.Add(1)
	return true
}

// badRequest marks an error as the requester's fault (CtlCodeBadRequest).
type badRequest struct{ err error }

func (e *badRequest) Error() string { return e.err.Error() }
func (e *badRequest) Unwrap() error { return e.err }

// serve checks the size, runs handle and sends its Reply.
func (c *Control) serve(ctx context.Context, r micro.Request, handle func(context.Context, []byte) (Reply, error)) {
	if r.Reply() == "" {
		c.log.Debug("control message without reply subject ignored", "subject", r.Subject())
		return
	}
	data := r.Data()
	if len(data) > MaxControlRequest {
		c.fail(r, CtlCodeTooLarge, fmt.Sprintf("request of %d bytes exceeds the limit of %d bytes", len(data), MaxControlRequest))
		return
	}
	if !c.enter() {
		c.fail(r, CtlCodeStopping, "host is stopping")
		return
	}
	ctx = context.WithValue(ctx, headersKey{}, map[string][]string(r.Headers()))
	reply, err := handle(ctx, data)
	c.inflight.Done()
	var bad *badRequest
	switch {
	case errors.Is(err, ErrUnauthorized):
		c.fail(r, CtlCodeUnauthorized, err.Error())
	case errors.As(err, &bad):
		c.fail(r, CtlCodeBadRequest, "invalid request: "+bad.Error())
	case err != nil:
		c.fail(r, CtlCodeFailed, err.Error())
	default:
		reply.Success = true
		if err := r.RespondJSON(reply); err != nil {
			c.log.Warn("control reply failed", "subject", r.Subject(), "err", err)
		}
	}
}

// fail answers with a Reply of success false and micro's error headers.
func (c *Control) fail(r micro.Request, code, message string) {
	c.log.Debug("control request failed", "subject", r.Subject(), "code", code, "message", message)
	body, err := json.Marshal(Reply{Success: false, Message: message})
	if err != nil { // a string always marshals
		body = []byte(`{"success":false}`)
	}
	if err := r.Error(code, headerSafe(message), body); err != nil {
		c.log.Warn("control reply failed", "subject", r.Subject(), "err", err)
	}
}

// headerSafe makes s a valid, bounded header value.
func headerSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 1024 {
		s = strings.ToValidUTF8(s[:1024], "")
	}
	if strings.TrimSpace(s) == "" {
		s = "error"
	}
	return s
}

func (c *Control) inventory(ctx context.Context, data []byte) (Reply, error) {
	if err := decodeEmptyRequest(data); err != nil {
		return Reply{}, &badRequest{err}
	}
	return Reply{Response: c.host.Inventory(ctx)}, nil
}

func (c *Control) startActor(ctx context.Context, data []byte) (Reply, error) {
	req, err := decodeStartActorRequest(data)
	if err != nil {
		return Reply{}, &badRequest{err}
	}
	if err := c.host.StartActor(ctx, req); err != nil {
		return Reply{}, err
	}
	return Reply{Message: fmt.Sprintf("actor %q started", req.Name)}, nil
}

func (c *Control) updateActor(ctx context.Context, data []byte) (Reply, error) {
	req, err := decodeStartActorRequest(data)
	if err != nil {
		return Reply{}, &badRequest{err}
	}
	if err := c.host.UpdateActor(ctx, req); err != nil {
		return Reply{}, err
	}
	return Reply{Message: fmt.Sprintf("actor %q updated", req.Name)}, nil
}

func (c *Control) stopActor(ctx context.Context, data []byte) (Reply, error) {
	req, err := decodeStopActorRequest(data)
	if err != nil {
		return Reply{}, &badRequest{err}
	}
	if err := c.host.StopActor(ctx, req.Name); err != nil {
		return Reply{}, err
	}
	return Reply{Message: fmt.Sprintf("actor %q stopped", req.Name)}, nil
}

func (c *Control) scaleActor(ctx context.Context, data []byte) (Reply, error) {
	req, err := decodeScaleActorRequest(data)
	if err != nil {
		return Reply{}, &badRequest{err}
	}
	if err := c.host.ScaleActor(ctx, req.Name, req.MaxInstances); err != nil {
		return Reply{}, err
	}
	return Reply{Message: fmt.Sprintf("actor %q scaled to %d instances", req.Name, req.MaxInstances)}, nil
}

func (c *Control) putLabels(ctx context.Context, data []byte) (Reply, error) {
	req, err := decodeLabelsRequest(data, true)
	if err != nil {
		return Reply{}, &badRequest{err}
	}
	if err := c.host.PutLabels(ctx, req.Labels); err != nil {
		return Reply{}, err
	}
	return Reply{Message: fmt.Sprintf("%d labels put", len(req.Labels))}, nil
}

func (c *Control) deleteLabels(ctx context.Context, data []byte) (Reply, error) {
	req, err := decodeLabelsRequest(data, false)
	if err != nil {
		return Reply{}, &badRequest{err}
	}
	keys := make([]string, 0, len(req.Labels))
	for k := range req.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if err := c.host.DeleteLabels(ctx, keys); err != nil {
		return Reply{}, err
	}
	return Reply{Message: fmt.Sprintf("%d labels deleted", len(keys))}, nil
}

// semverRE is the expression semver.org suggests (and micro enforces).
var semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// microVersion maps a trellis version to the semver micro requires:
// "v1.2.3" → "1.2.3"; anything that is not semver ("dev", "(devel)") →
// "0.0.0-dev".
func microVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	if semverRE.MatchString(v) {
		return v
	}
	return "0.0.0-dev"
}

// Request decoders. Each decodes strictly and validates; the Host is called
// only with what they return.

func decodeEmptyRequest(data []byte) error {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return nil
	}
	var empty struct{}
	return decodeStrict(trimmed, &empty)
}

func decodeStartActorRequest(data []byte) (StartActor, error) {
	var req StartActor
	if err := decodeStrict(data, &req); err != nil {
		return StartActor{}, err
	}
	if err := checkActorName(req.Name); err != nil {
		return StartActor{}, err
	}
	if len(req.Module) == 0 {
		return StartActor{}, errors.New("module: empty")
	}
	if !bytes.HasPrefix(req.Module, []byte("\x00asm")) {
		return StartActor{}, fmt.Errorf("module: %d bytes that do not start with the wasm magic \\0asm", len(req.Module))
	}
	if err := checkLimits(req.Limits); err != nil {
		return StartActor{}, err
	}
	if err := req.Grants.Validate(); err != nil {
		return StartActor{}, err
	}
	return req, nil
}

func decodeStopActorRequest(data []byte) (StopActor, error) {
	var req StopActor
	if err := decodeStrict(data, &req); err != nil {
		return StopActor{}, err
	}
	if err := checkActorName(req.Name); err != nil {
		return StopActor{}, err
	}
	return req, nil
}

func decodeScaleActorRequest(data []byte) (ScaleActor, error) {
	var req ScaleActor
	if err := decodeStrict(data, &req); err != nil {
		return ScaleActor{}, err
	}
	if err := checkActorName(req.Name); err != nil {
		return ScaleActor{}, err
	}
	if req.MaxInstances < 1 || req.MaxInstances > MaxActorInstances {
		return ScaleActor{}, fmt.Errorf("max_instances %d: want 1 to %d", req.MaxInstances, MaxActorInstances)
	}
	return req, nil
}

// decodeLabelsRequest decodes Labels for a put (keys and values checked)
// or a delete (keys checked, values ignored).
func decodeLabelsRequest(data []byte, put bool) (Labels, error) {
	var req Labels
	if err := decodeStrict(data, &req); err != nil {
		return Labels{}, err
	}
	if len(req.Labels) == 0 {
		return Labels{}, errors.New("labels: want at least one")
	}
	if len(req.Labels) > MaxLabels {
		return Labels{}, fmt.Errorf("labels: %d of them: want at most %d", len(req.Labels), MaxLabels)
	}
	keys := make([]string, 0, len(req.Labels))
	for k := range req.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the first bad one, deterministically
	for _, k := range keys {
		if err := checkLabel("key", k, 1, 64, true); err != nil {
			return Labels{}, err
		}
		if put {
			if err := checkLabel(fmt.Sprintf("value of %q", k), req.Labels[k], 0, 128, false); err != nil {
				return Labels{}, err
			}
		}
	}
	return req, nil
}

// decodeStrict decodes one JSON object into v: no unknown fields, no
// trailing data. Its errors name the field or the offset and never include
// Go type names of the agent.
func decodeStrict(data []byte, v any) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("body: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("body: trailing data after the JSON object at offset %d", dec.InputOffset())
	}
	return nil
}

func describeJSONError(err error) error {
	var (
		syntax  *json.SyntaxError
		typ     *json.UnmarshalTypeError
		base64E base64.CorruptInputError
	)
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("body: invalid JSON at offset %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Errorf("body: JSON %s where an object is expected", typ.Value)
		}
		return fmt.Errorf("%s: JSON %s where %s is expected", typ.Field, typ.Value, jsonKind(typ.Type.Kind().String()))
	case errors.As(err, &base64E):
		return fmt.Errorf("module: invalid base64 at byte %d", int64(base64E))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errors.New("body: truncated JSON")
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	return fmt.Errorf("body: %s", msg)
}

func jsonKind(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"):
		return "an integer"
	case strings.HasPrefix(goKind, "float"):
		return "a number"
	case goKind == "string":
		return "a string"
	case goKind == "bool":
		return "a boolean"
	case goKind == "map", goKind == "struct":
		return "an object"
	case goKind == "slice", goKind == "array":
		return "an array or base64 string"
	}
	return "another type"
}

// checkActorName applies ValidateToken's rules in lower case: an actor name
// is 1–64 of a–z 0–9 '-' '_'.
func checkActorName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("name %q: want 1 to 64 characters", name)
	}
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("name %q: character %q at %d: want a-z, 0-9, '-' or '_'", name, c, i)
		}
	}
	return nil
}

// checkLabel checks a label key (also '.' and '/' allowed, must start with a
// letter or digit) or value (A–Z a–z 0–9 '-' '_' '.'), so that labels
// survive selectors such as "site=berlin,model=pi4".
func checkLabel(kind, s string, minLen, maxLen int, key bool) error {
	if len(s) < minLen || len(s) > maxLen {
		return fmt.Errorf("label %s %q: want %d to %d characters", kind, s, minLen, maxLen)
	}
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if key && c == '/' {
			ok = true
		}
		if key && i == 0 && !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Errorf("label %s %q: want a letter or digit first", kind, s)
		}
		if !ok {
			return fmt.Errorf("label %s %q: character %q at %d not allowed", kind, s, c, i)
		}
	}
	return nil
}

func checkLimits(l ActorLimits) error {
	switch {
	case l.MaxInstances < 0 || l.MaxInstances > MaxActorInstances:
		return fmt.Errorf("limits.max_instances %d: want 0 (default) or 1 to %d", l.MaxInstances, MaxActorInstances)
	case l.MemoryPages > maxMemoryPages:
		return fmt.Errorf("limits.memory_pages %d: want at most %d", l.MemoryPages, maxMemoryPages)
	case l.CallTimeout < 0:
		return fmt.Errorf("limits.call_timeout %s: want 0 (default) or positive", time.Duration(l.CallTimeout))
	case l.MaxRequest < 0:
		return fmt.Errorf("limits.max_request %d: want 0 (default) or positive", l.MaxRequest)
	case l.MaxResponse < 0:
		return fmt.Errorf("limits.max_response %d: want 0 (default) or positive", l.MaxResponse)
	case l.MaxHostPayload < 0:
		return fmt.Errorf("limits.max_host_payload %d: want 0 (default) or positive", l.MaxHostPayload)
	case l.MaxHostCalls < 0:
		return fmt.Errorf("limits.max_host_calls %d: want 0 (default) or positive", l.MaxHostCalls)
	}
	return nil
}

// Client side.

// ControlError is a control reply with success false.
type ControlError struct {
	Subject string
	Code    string // a CtlCode… value; "" if the reply had none
	Message string
}

func (e *ControlError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("mesh: control %s: %s", e.Subject, e.Message)
	}
	return fmt.Sprintf("mesh: control %s: %s %s", e.Subject, e.Code, e.Message)
}

// ControlRequest sends req (JSON; nil for an empty body) to subject and
// decodes the Reply's response into resp (may be nil). A reply with success
// false is a *ControlError; no agent listening is nats.ErrNoResponders.
// Replies are decoded leniently, so that newer agents may add fields.
func ControlRequest(ctx context.Context, nc *nats.Conn, subject string, req any, resp any) error {
	var body []byte
	if req != nil {
		var err error
		if body, err = json.Marshal(req); err != nil {
			return fmt.Errorf("mesh: control %s: encode request: %w", subject, err)
		}
	}
	msg, err := requestMsg(ctx, nc, subject, body)
	if err != nil {
		return fmt.Errorf("mesh: control %s: %w", subject, err)
	}
	return decodeReply(subject, msg, resp)
}

// decodeReply decodes the reply msg to a request on subject into resp.
func decodeReply(subject string, msg *nats.Msg, resp any) error {
	var raw json.RawMessage
	reply := Reply{Response: &raw}
	decodeErr := json.Unmarshal(msg.Data, &reply)
	code := msg.Header.Get(micro.ErrorCodeHeader)
	switch {
	case decodeErr != nil && code != "":
		return &ControlError{Subject: subject, Code: code, Message: msg.Header.Get(micro.ErrorHeader)}
	case decodeErr != nil:
		return fmt.Errorf("mesh: control %s: decode reply: %w", subject, decodeErr)
	case !reply.Success:
		m := reply.Message
		if m == "" {
			m = msg.Header.Get(micro.ErrorHeader)
		}
		if m == "" {
			m = "failed without a message"
		}
		return &ControlError{Subject: subject, Code: code, Message: m}
	}
	if resp == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, resp); err != nil {
		return fmt.Errorf("mesh: control %s: decode response: %w", subject, err)
	}
	return nil
}

// HostInventory asks one host for its inventory.
func HostInventory(ctx context.Context, nc *nats.Conn, lattice, hostID string) (Inventory, error) {
	var inv Inventory
	err := ControlRequest(ctx, nc, HostCtlSubject(lattice, hostID, CtlInventory), nil, &inv)
	return inv, err
}

// DefaultPingWait is Ping's wait when none is given.
const DefaultPingWait = 500 * time.Millisecond

// Ping asks every host of lattice for its inventory and collects replies
// until wait (default DefaultPingWait) passes after the request or the last
// reply, or ctx ends. With no host listening it returns at once with none.
// Inventories are sorted by host name, then id. When ctx ends, or when some
// replies cannot be decoded, it returns what it has together with an error.
func Ping(ctx context.Context, nc *nats.Conn, lattice string, wait time.Duration) ([]Inventory, error) {
	if wait <= 0 {
		wait = DefaultPingWait
	}
	subject := CtlSubject(lattice, CtlPing)
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("mesh: ping %s: %w", lattice, err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, fmt.Errorf("mesh: ping %s: %w", lattice, err)
	}
	var (
		invs []Inventory
		errs []error
	)
	for {
		wctx, cancel := context.WithTimeout(ctx, wait)
		msg, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			switch {
			case errors.Is(err, nats.ErrNoResponders):
			case ctx.Err() != nil:
				errs = append(errs, fmt.Errorf("mesh: ping %s: %w", lattice, ctx.Err()))
			case errors.Is(err, context.DeadlineExceeded):
			default:
				errs = append(errs, fmt.Errorf("mesh: ping %s: %w", lattice, err))
			}
			break
		}
		var inv Inventory
		if err := decodeReply(subject, msg, &inv); err != nil {
			errs = append(errs, err)
			continue
		}
		invs = append(invs, inv)
	}
	slices.SortFunc(invs, func(a, b Inventory) int {
		if c := strings.Compare(a.Host.Name, b.Host.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Host.ID, b.Host.ID)
	})
	return invs, errors.Join(errs...)
}
