package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/trellis-edge/trellis/agent/actor"
	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/mesh"
	"github.com/trellis-edge/trellis/store"
)

// Defaults of the zero fields of Config, applied by WithDefaults.
const (
	DefaultDataDir           = "/var/lib/trellis"
	DefaultListen            = "127.0.0.1:4222"
	DefaultLattice           = mesh.DefaultLattice
	DefaultHeartbeatInterval = 15 * time.Second
	DefaultLogLevel          = "info"
	DefaultHTTPAddr          = "127.0.0.1:9422" // not 9090: that is Prometheus's own port
	// DefaultHubPort is the port of a hub URL that names none: the leaf
	// node port of nats-server.
	DefaultHubPort = 7422
	// HTTPOff as Config.HTTPAddr disables the /healthz and /metrics listener.
	HTTPOff = "off"
	// MinHeartbeatInterval is the shortest heartbeat interval accepted.
	MinHeartbeatInterval = time.Second
	// fallbackName is the host name when the OS hostname is unusable.
	fallbackName = "trellis"
	maxNameLen   = 64
)

// Config is the agent's configuration: what `trellis agent` reads from its
// --config file (YAML), with its flags merged on top by the command. The zero
// value of every field means its default (see WithDefaults); a Config is a
// plain value with no hidden state, so a flag can set any field directly.
type Config struct {
	// DataDir holds the store, the compilation cache and JetStream's files.
	DataDir string `yaml:"data"`
	// Listen is the embedded NATS server's client address (host:port; port 0
	// picks a free port).
	Listen string `yaml:"listen"`
	// Hubs are the hub's leaf node URLs: nats-leaf://host:port, tls://host:port
	// or nats://host:port (the same as nats-leaf://); the port defaults to
	// 7422. See HubURLs.
	Hubs []string `yaml:"hubs"`
	// HubCredentials is the path of a NATS .creds file for the hub.
	HubCredentials string `yaml:"hub_credentials"`
	// HubTLS are the files of the hub connection's TLS; all optional.
	HubTLS TLSConfig `yaml:"hub_tls"`
	// Lattice is the lattice id: the second token of every Trellis subject.
	Lattice string `yaml:"lattice"`
	// Name is the host's display name; the OS hostname by default.
	Name string `yaml:"name"`
	// Labels are the host's labels, matched by deployments' selectors.
	Labels map[string]string `yaml:"labels"`
	// Actors are started at boot from module files, beside those the store
	// restores.
	Actors []ActorConfig `yaml:"actors"`
	// HeartbeatInterval is how often the host publishes its heartbeat event.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// LogLevel is a slog level: debug, info, warn or error (or "warn+2").
	LogLevel string `yaml:"log_level"`
	// HTTPAddr serves /healthz and /metrics; HTTPOff disables it. In a YAML
	// file an explicitly empty value (`http: ""` or `http:`) also means off;
	// in a Config built in code "" means the default, like every zero field.
	HTTPAddr string `yaml:"http"`
	// Devices are the device's GPIO provider and sensors (trellis:gpio,
	// trellis:sensor); none by default.
	Devices mesh.Devices `yaml:"devices"`
	// Telemetry bounds the device's telemetry buffer (the backlog kept
	// while the hub is unreachable).
	Telemetry TelemetryConfig `yaml:"telemetry"`
	// Policy says which actor modules run: signed or not, by whom.
	Policy PolicyConfig `yaml:"policy"`
}

// TelemetryConfig bounds the device's telemetry buffer. Zero fields mean
// the defaults.
type TelemetryConfig struct {
	// MaxAge drops messages older than this, forwarded or not.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxBytes bounds the buffer on disk.
	MaxBytes int64 `yaml:"max_bytes"`
	// WhenFull is what a full buffer does: TelemetryDropOldest (the
	// default) or TelemetryReject (the publisher gets an error).
	WhenFull string `yaml:"when_full"`
}

// Telemetry buffer policies and defaults: the mesh's.
const (
	TelemetryDropOldest      = mesh.TelemetryDropOldest
	TelemetryReject          = mesh.TelemetryReject
	DefaultTelemetryMaxAge   = mesh.DefaultTelemetryMaxAge
	DefaultTelemetryMaxBytes = mesh.DefaultTelemetryMaxBytes
)

// limits returns the config as the mesh's stream limits.
func (t TelemetryConfig) limits() mesh.TelemetryLimits {
	return mesh.TelemetryLimits{MaxAge: t.MaxAge, MaxBytes: t.MaxBytes, WhenFull: t.WhenFull}
}

// TLSConfig names the PEM files of a TLS connection.
type TLSConfig struct {
	CA   string `yaml:"ca"`   // CA bundle to verify the server with; system roots if empty
	Cert string `yaml:"cert"` // client certificate, with Key
	Key  string `yaml:"key"`  // client private key, with Cert
}

// IsZero reports whether no TLS file is set.
func (t TLSConfig) IsZero() bool { return t == TLSConfig{} }

// ActorConfig is an actor started from a module file.
type ActorConfig struct {
	Name   string              `yaml:"name"`   // actor name, see actor.ValidateName
	Module string              `yaml:"module"` // path of the .wasm file
	Limits actor.Limits        `yaml:"limits"` // zero fields mean the runtime's defaults
	Grants capabilities.Grants `yaml:"grants"` // deny by default: the zero value grants nothing
}

// FieldError is a problem with one field of a config. Validate and the
// parsers return these (joined with errors.Join when there are several), so
// that a caller can point at the field with errors.As.
type FieldError struct {
	// File is the config file, when it was loaded by LoadConfig.
	File string
	// Line is the line of the field in the YAML, or 0 when not known.
	Line int
	// Field is the field's path, such as "hubs[0]", "hub_tls.cert" or
	// "actors[1].limits.max_instance"; "" means the whole document.
	Field string
	// Value is the offending value as written, if any. URLs have their
	// password redacted.
	Value string
	// Err says what is wrong.
	Err error

	// lineKey is the path whose line Line should be, if not Field.
	lineKey string
	// lineInErr means Err already says the line, so Error does not.
	lineInErr bool
}

// Error formats e as `config: FILE:LINE: FIELD "VALUE": problem`, leaving out
// what is unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	switch {
	case e.File != "" && e.Line > 0 && !e.lineInErr:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		fmt.Fprintf(&b, "%s: ", e.File)
	case e.Line > 0 && !e.lineInErr:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	b.WriteString(e.Field)
	if e.Value != "" {
		if e.Field != "" {
			b.WriteByte(' ')
		}
		b.WriteString(quoteValue(e.Value))
	}
	if e.Field != "" || e.Value != "" {
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns Err.
func (e *FieldError) Unwrap() error { return e.Err }

// quoteValue quotes a value for an error message, truncated so that a huge
// value cannot flood a log.
func quoteValue(s string) string {
	const limit = 80
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "..."
	}
	return strconv.Quote(s)
}

// LoadConfig reads and parses the YAML config file at path, as ParseConfig
// does; errors name the file and line.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return parseConfig(data, path)
}

// ParseConfig parses a YAML config and validates it (see Validate). Decoding
// is strict: an unknown field, a value of the wrong type, a duplicate field
// or a second YAML document is an error that names the field's path and line,
// such as `actors[1].limits.max_instance`. Problems are reported together,
// joined with errors.Join, each a *FieldError with its line: first every
// decoding problem, then, once the file decodes, every invalid value. A
// YAML syntax error is reported alone. An empty document is the zero Config.
//
// Actor limits are read by actor.ParseLimits: durations such as "2s", sizes
// such as "64KiB".
func ParseConfig(data []byte) (Config, error) { return parseConfig(data, "") }

func parseConfig(data []byte, file string) (Config, error) {
	d := configDecoder{lines: make(map[string]int)}
	c, err := d.decode(data)
	if err != nil {
		if file != "" {
			return Config{}, fmt.Errorf("config: %s: %w", file, err)
		}
		return Config{}, fmt.Errorf("config: %w", err)
	}
	// Values are checked once every field decodes: before that, a skipped
	// list item would shift the indices Validate names.
	errs := d.errs
	if len(errs) == 0 {
		errs = c.validate()
	}
	if len(errs) == 0 {
		return c, nil
	}
	joined := make([]error, len(errs))
	for i, e := range errs {
		e.File = file
		if e.Line == 0 {
			e.Line = d.line(e)
		}
		joined[i] = e
	}
	return Config{}, errors.Join(joined...)
}

// line returns the line of e's field, or of the nearest enclosing field that
// was in the file (a missing field is reported on its parent's line).
func (d *configDecoder) line(e *FieldError) int {
	key := e.lineKey
	if key == "" {
		key = e.Field
	}
	for key != "" {
		if line, ok := d.lines[key]; ok {
			return line
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// WithDefaults returns c with every zero field set to its default. Name
// defaults to the OS hostname (or "trellis" if that is unusable as a name).
// Slices and maps are shared with c, not copied.
func (c Config) WithDefaults() Config {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&c.DataDir, DefaultDataDir)
	def(&c.Listen, DefaultListen)
	def(&c.Lattice, DefaultLattice)
	def(&c.LogLevel, DefaultLogLevel)
	def(&c.HTTPAddr, DefaultHTTPAddr)
	if c.Name == "" {
		c.Name = fallbackName
		if h, err := os.Hostname(); err == nil && nameProblem(h) == "" {
			c.Name = h
		}
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	def(&c.Telemetry.WhenFull, TelemetryDropOldest)
	if c.Telemetry.MaxAge == 0 {
		c.Telemetry.MaxAge = DefaultTelemetryMaxAge
	}
	if c.Telemetry.MaxBytes == 0 {
		c.Telemetry.MaxBytes = DefaultTelemetryMaxBytes
	}
	return c
}

// HTTPEnabled reports whether the /healthz and /metrics listener is on.
func (c Config) HTTPEnabled() bool { return c.HTTPAddr != HTTPOff }

// HubURLs returns Hubs as leaf node remote URLs: nats:// becomes
// nats-leaf://, and a URL without a port gets DefaultHubPort. It fails as
// Validate does on a bad URL.
func (c Config) HubURLs() ([]*url.URL, error) {
	urls := make([]*url.URL, 0, len(c.Hubs))
	var errs []error
	for i, h := range c.Hubs {
		u, err := leafURL(h)
		if err != nil {
			errs = append(errs, &FieldError{Field: fmt.Sprintf("hubs[%d]", i), Value: redactURL(h), Err: err})
			continue
		}
		urls = append(urls, u)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return urls, nil
}

// Validate checks every field; zero fields are valid (they mean defaults).
// It touches no file and no network. It reports every problem at once,
// joined with errors.Join; each is a *FieldError naming the field and value.
func (c Config) Validate() error {
	errs := c.validate()
	joined := make([]error, len(errs))
	for i, e := range errs {
		joined[i] = e
	}
	return errors.Join(joined...)
}

func (c Config) validate() []*FieldError {
	var errs []*FieldError
	bad := func(field, value string, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Value: value, Err: fmt.Errorf(format, args...)})
	}
	if strings.ContainsRune(c.DataDir, 0) {
		bad("data", c.DataDir, "contains a NUL byte")
	}
	if c.Listen != "" {
		if msg := hostPortProblem(c.Listen, 0); msg != "" {
			bad("listen", c.Listen, "%s; want host:port such as %s (port 0 picks a free port)", msg, DefaultListen)
		}
	}
	seen := make(map[string]int)
	for i, h := range c.Hubs {
		field := fmt.Sprintf("hubs[%d]", i)
		u, err := leafURL(h)
		if err != nil {
			errs = append(errs, &FieldError{Field: field, Value: redactURL(h), Err: err})
			continue
		}
		if first, dup := seen[u.String()]; dup {
			bad(field, redactURL(h), "the same hub as hubs[%d]", first)
			continue
		}
		seen[u.String()] = i
	}
	if c.HubCredentials != "" && len(c.Hubs) == 0 {
		bad("hub_credentials", c.HubCredentials, "set, but there are no hubs to use it with")
	}
	switch t := c.HubTLS; {
	case t.Cert != "" && t.Key == "":
		bad("hub_tls.key", "", "missing: hub_tls.cert %s needs its key", quoteValue(t.Cert))
	case t.Key != "" && t.Cert == "":
		bad("hub_tls.cert", "", "missing: hub_tls.key %s needs its certificate", quoteValue(t.Key))
	case !t.IsZero() && len(c.Hubs) == 0:
		bad("hub_tls", "", "set, but there are no hubs to use it with")
	}
	if c.Lattice != "" && mesh.ValidateToken("lattice", c.Lattice) != nil {
		bad("lattice", c.Lattice, "want 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'")
	}
	if c.Name != "" {
		if msg := nameProblem(c.Name); msg != "" {
			bad("name", c.Name, "%s", msg)
		}
	}
	if len(c.Labels) > store.MaxLabels {
		bad("labels", "", "%d labels, want at most %d", len(c.Labels), store.MaxLabels)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
		if err := store.ValidateLabel(k, c.Labels[k]); err != nil {
			errs = append(errs, &FieldError{Field: "labels", Err: err, lineKey: "labels." + k})
		}
	}
	names := make(map[string]int)
	for i, a := range c.Actors {
		field := fmt.Sprintf("actors[%d]", i)
		switch {
		case a.Name == "":
			bad(field+".name", "", "missing: every actor needs a name")
		case actor.ValidateName(a.Name) != nil:
			bad(field+".name", a.Name, "want 1 to 63 characters of a-z, 0-9, '-' and '_', starting with a letter or digit")
		default:
			if first, dup := names[a.Name]; dup {
				bad(field+".name", a.Name, "the same name as actors[%d]", first)
			} else {
				names[a.Name] = i
			}
		}
		if a.Module == "" {
			bad(field+".module", "", "missing: every actor needs the path of its .wasm module")
		}
		if err := a.Limits.Validate(); err != nil {
			errs = append(errs, &FieldError{Field: field, Err: err, lineKey: field + ".limits"})
		}
		if err := a.Grants.Validate(); err != nil {
			errs = append(errs, &FieldError{Field: field, Err: err, lineKey: field + ".grants"})
		}
	}
	fleet := make(map[string]capabilities.Grants, len(c.Actors))
	for _, a := range c.Actors {
		if a.Name != "" && a.Grants.Validate() == nil {
			fleet[a.Name] = a.Grants
		}
	}
	switch t := c.Telemetry; {
	case t.MaxAge < 0:
		bad("telemetry.max_age", t.MaxAge.String(), "must not be negative")
	case t.MaxBytes < 0:
		bad("telemetry.max_bytes", strconv.FormatInt(t.MaxBytes, 10), "must not be negative")
	case t.WhenFull != "" && t.WhenFull != TelemetryDropOldest && t.WhenFull != TelemetryReject:
		bad("telemetry.when_full", t.WhenFull, "want %s or %s", TelemetryDropOldest, TelemetryReject)
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, &FieldError{Field: "policy", Err: err, lineKey: "policy"})
	}
	if err := c.Devices.Validate(); err != nil {
		errs = append(errs, &FieldError{Field: "devices", Err: err, lineKey: "devices"})
	}
	if err := capabilities.ValidateFleet(fleet, c.Devices.KnownLines()); err != nil {
		errs = append(errs, &FieldError{Field: "actors", Err: err, lineKey: "actors"})
	}
	switch h := c.HeartbeatInterval; {
	case h < 0:
		bad("heartbeat_interval", h.String(), "must not be negative")
	case h > 0 && h < MinHeartbeatInterval:
		bad("heartbeat_interval", h.String(), "want at least %s", MinHeartbeatInterval)
	}
	if c.LogLevel != "" {
		var l slog.Level
		if l.UnmarshalText([]byte(c.LogLevel)) != nil {
			bad("log_level", c.LogLevel, "want debug, info, warn or error")
		}
	}
	if c.HTTPAddr != "" && c.HTTPAddr != HTTPOff {
		if msg := hostPortProblem(c.HTTPAddr, 0); msg != "" {
			bad("http", c.HTTPAddr, "%s; want host:port such as %s, or %q", msg, DefaultHTTPAddr, HTTPOff)
		}
	}
	return errs
}

// nameProblem says what is wrong with a host name, or "" if nothing is. The
// name may end up as a nats-server name, so it stays within hostname
// characters.
func nameProblem(name string) string {
	if name == "" || len(name) > maxNameLen {
		return fmt.Sprintf("has %d characters, want 1 to %d", len(name), maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Sprintf("has %q at %d, want A-Z, a-z, 0-9, '-', '_' or '.'", c, i)
		}
	}
	return ""
}

// hostPortProblem says what is wrong with a listen address, or "" if
// nothing is. The host may be empty (all interfaces), an IP or a hostname.
func hostPortProblem(addr string, minPort int) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "no port"
	}
	if p, err := strconv.Atoi(port); err != nil || p < minPort || p > 65535 {
		return fmt.Sprintf("port %q is not a number from %d to 65535", port, minPort)
	}
	if host == "" {
		return ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	if hostnameProblem(host) {
		return fmt.Sprintf("host %q is neither an IP address nor a hostname", host)
	}
	return ""
}

// hostnameProblem reports whether host is not a plausible DNS name.
func hostnameProblem(host string) bool {
	if len(host) > 253 {
		return true
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return true
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return true
			}
		}
	}
	return false
}

// hubSchemes are the accepted schemes of a hub URL.
var hubSchemes = []string{"nats-leaf", "tls", "nats"}

// leafURL parses and checks one hub URL and returns it as a leaf node
// remote URL (see HubURLs).
func leafURL(h string) (*url.URL, error) {
	const want = "want nats-leaf://, tls:// or nats:// URL"
	u, err := url.Parse(strings.TrimSpace(h))
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		// Only the cause: url.Error quotes the URL, password and all.
		return nil, fmt.Errorf("%s: %w", want, ue.Err)
	}
	if err != nil || !slices.Contains(hubSchemes, u.Scheme) || u.Opaque != "" {
		return nil, errors.New(want)
	}
	switch {
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("want host:port after ://, such as nats-leaf://hub1:7422")
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return nil, errors.New("want only scheme://host:port, without a path, query or fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
	}
	if strings.HasSuffix(u.Host, ":") {
		return nil, errors.New("empty port")
	}
	if _, err := netip.ParseAddr(u.Hostname()); err != nil && hostnameProblem(u.Hostname()) {
		return nil, fmt.Errorf("host %q is neither an IP address nor a hostname", u.Hostname())
	}
	u.Path = ""
	if u.Scheme == "nats" {
		u.Scheme = "nats-leaf"
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(DefaultHubPort))
	}
	return u, nil
}

// redactURL hides the password of a URL, even one that does not parse.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if at := strings.LastIndexByte(rest, '@'); ok && at >= 0 {
		return scheme + "://xxxxx@" + rest[at+1:]
	}
	return s
}

// configDecoder walks the YAML node tree, so that every error can name the
// field's path and line, which yaml.v3's own strict decoding cannot.
type configDecoder struct {
	errs  []*FieldError
	lines map[string]int // field path → line, for Validate's errors
}

// field is a known key of a YAML mapping and how to decode its value.
type field struct {
	name   string
	decode func(n *yaml.Node, path string)
}

// maxDecodeErrors is where decoding stops reporting, like a compiler.
const maxDecodeErrors = 20

func (d *configDecoder) fail(n *yaml.Node, path, value, format string, args ...any) {
	d.add(&FieldError{Line: n.Line, Field: path, Value: value, Err: fmt.Errorf(format, args...)})
}

// add records a decoding problem, up to maxDecodeErrors of them.
func (d *configDecoder) add(e *FieldError) {
	switch {
	case len(d.errs) < maxDecodeErrors:
		d.errs = append(d.errs, e)
	case len(d.errs) == maxDecodeErrors:
		d.errs = append(d.errs, &FieldError{Line: e.Line, Err: errors.New("too many errors")})
	}
}

// decode parses data into a Config. A syntax error is returned; problems
// with fields are collected in d.errs.
func (d *configDecoder) decode(data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return c, nil
		}
		return c, err
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		d.fail(&next, "", "", "a second YAML document (after ---): want one")
	} else if !errors.Is(err, io.EOF) {
		return c, err
	}
	if len(doc.Content) == 0 {
		return c, nil
	}
	d.mapping(doc.Content[0], "", []field{
		{"data", d.str(&c.DataDir)},
		{"listen", d.str(&c.Listen)},
		{"hubs", d.strs(&c.Hubs, "a list of hub URLs, such as [nats-leaf://hub1:7422]")},
		{"hub_credentials", d.str(&c.HubCredentials)},
		{"hub_tls", func(n *yaml.Node, path string) {
			d.mapping(n, path, []field{
				{"ca", d.str(&c.HubTLS.CA)},
				{"cert", d.str(&c.HubTLS.Cert)},
				{"key", d.str(&c.HubTLS.Key)},
			})
		}},
		{"lattice", d.str(&c.Lattice)},
		{"name", d.str(&c.Name)},
		{"labels", d.labels(&c.Labels)},
		{"actors", d.actors(&c.Actors)},
		{"devices", d.devices(&c.Devices)},
		{"policy", func(n *yaml.Node, path string) {
			d.mapping(n, path, []field{
				{"require_signed", d.boolean(&c.Policy.RequireSigned)},
				{"trusted_issuers", d.strs(&c.Policy.TrustedIssuers, "a list of account public keys (A…)")},
				{"operator_keys", d.strs(&c.Policy.OperatorKeys, "a list of operator, account or user public keys")},
			})
		}},
		{"telemetry", func(n *yaml.Node, path string) {
			d.mapping(n, path, []field{
				{"max_age", d.duration(&c.Telemetry.MaxAge)},
				{"max_bytes", d.size(&c.Telemetry.MaxBytes)},
				{"when_full", d.str(&c.Telemetry.WhenFull)},
			})
		}},
		{"heartbeat_interval", d.duration(&c.HeartbeatInterval)},
		{"log_level", d.str(&c.LogLevel)},
		{"http", func(n *yaml.Node, path string) {
			d.str(&c.HTTPAddr)(n, path)
			if c.HTTPAddr == "" {
				c.HTTPAddr = HTTPOff // present but empty: off, not the default
			}
		}},
	})
	return c, nil
}

// resolve follows an alias to its anchored node.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// isNull reports whether n is an empty or null value.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// mapping decodes a mapping whose keys must be among fields. A null value
// is an empty mapping.
func (d *configDecoder) mapping(n *yaml.Node, path string, fields []field) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		what := "a mapping of fields"
		if path == "" {
			what = "a mapping of settings such as data, listen and hubs"
		}
		d.fail(n, path, "", "want %s", what)
		return
	}
	names := fieldNames(fields)
	d.eachField(n, path, names, func(k, v *yaml.Node, p string) {
		j := slices.IndexFunc(fields, func(f field) bool { return f.name == k.Value })
		fields[j].decode(v, p)
	})
}

// eachField calls f with each key, value and path of mapping n whose key is
// one of known, and reports the rest: keys that are not names, duplicates,
// unknown fields (with a suggestion).
func (d *configDecoder) eachField(n *yaml.Node, path string, known []string, f func(k, v *yaml.Node, p string)) {
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "", "want a field name, not a %s", kindName(k))
			continue
		}
		p := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.fail(k, p, "", "duplicate field; first set on line %d", first)
			continue
		}
		seen[k.Value] = k.Line
		if !slices.Contains(known, k.Value) {
			d.fail(k, p, "", "unknown field%s", suggest(k.Value, known))
			continue
		}
		d.lines[p] = k.Line
		f(k, v, p)
	}
}

// join appends a field name to a path.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func fieldNames(fields []field) []string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	return names
}

// suggest names the closest known field, or lists them all.
func suggest(name string, known []string) string {
	if name == "<<" {
		return ": YAML merge keys are not supported"
	}
	lower := strings.ToLower(name)
	best, bestDist := "", 3
	for _, k := range known {
		// A distance of half the name or more is not a typo.
		if dist := editDistance(lower, k); dist < bestDist && 2*dist < len(lower) {
			best, bestDist = k, dist
		}
	}
	for _, k := range known {
		if best == "" && len(lower) >= 3 && (strings.HasPrefix(lower, k) || strings.HasPrefix(k, lower)) {
			best = k
		}
	}
	if best != "" {
		return "; did you mean " + best + "?"
	}
	return " (known: " + strings.Join(known, ", ") + ")"
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64 // not a typo of a field name
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	default:
		return "value"
	}
}

// scalar returns a scalar's text, "" for null, or ok=false (after
// recording an error) for anything else.
func (d *configDecoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	n = resolve(n)
	switch {
	case isNull(n):
		return "", true
	case n.Kind == yaml.ScalarNode:
		return n.Value, true
	}
	d.fail(n, path, "", "want %s, not a %s", want, kindName(n))
	return "", false
}

func (d *configDecoder) str(dst *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if s, ok := d.scalar(n, path, "a string"); ok {
			*dst = s
		}
	}
}

// boolean decodes true or false.
func (d *configDecoder) boolean(dst *bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		s, ok := d.scalar(n, path, "true or false")
		if !ok || s == "" {
			return
		}
		v, err := strconv.ParseBool(s)
		if err != nil {
			d.fail(n, path, s, "want true or false")
			return
		}
		*dst = v
	}
}

// size decodes a size in bytes: 4096, 64KiB, 1MB.
func (d *configDecoder) size(dst *int64) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		s, ok := d.scalar(n, path, "a size")
		if !ok || s == "" {
			return
		}
		v, err := actor.ParseSize(s)
		if err != nil {
			d.fail(n, path, s, "want a size such as 64MiB (at most 2GiB)")
			return
		}
		*dst = int64(v)
	}
}

func (d *configDecoder) duration(dst *time.Duration) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		s, ok := d.scalar(n, path, "a duration")
		if !ok || s == "" {
			return
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			d.fail(n, path, s, "want a duration such as 15s or 1m")
			return
		}
		*dst = v
	}
}

// strs decodes a list of strings; want describes it.
func (d *configDecoder) strs(dst *[]string, want string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		n = resolve(n)
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "", "want %s", want)
			return
		}
		out := make([]string, 0, len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = item.Line
			if s, ok := d.scalar(item, p, "a string"); ok {
				out = append(out, s)
			}
		}
		*dst = out
	}
}

func (d *configDecoder) labels(dst *map[string]string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		n = resolve(n)
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "", "want a mapping of label keys to values, such as {site: berlin}")
			return
		}
		out := make(map[string]string, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := resolve(n.Content[i])
			if k.Kind != yaml.ScalarNode {
				d.fail(k, path, "", "want a label key, not a %s", kindName(k))
				continue
			}
			p := path + "." + k.Value
			if _, dup := out[k.Value]; dup {
				d.fail(k, path, k.Value, "duplicate label; first set on line %d", d.lines[p])
				continue
			}
			d.lines[p] = k.Line
			if v, ok := d.scalar(n.Content[i+1], p, "a label value"); ok {
				out[k.Value] = v
			}
		}
		*dst = out
	}
}

func (d *configDecoder) actors(dst *[]ActorConfig) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		n = resolve(n)
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "", "want a list of actors, each with name, module and limits")
			return
		}
		out := make([]ActorConfig, len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = item.Line
			a := &out[i]
			d.mapping(item, p, []field{
				{"name", d.str(&a.Name)},
				{"module", d.str(&a.Module)},
				{"limits", d.limits(&a.Limits)},
				{"grants", d.grants(&a.Grants)},
			})
		}
		*dst = out
	}
}

// limitFields returns the YAML names of actor.Limits' fields, in order.
// grants decodes an actor's grants: the top-level keys strictly (unknown
// ones are errors with a suggestion), each value with yaml's own decoding,
// then Grants.Validate names any bad value.
func (d *configDecoder) grants(dst *capabilities.Grants) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		n = resolve(n)
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "", "want a mapping of grants such as {kv: true, gpio: [{line: GPIO17, direction: out}]}")
			return
		}
		t := reflect.TypeFor[capabilities.Grants]()
		known := make([]string, 0, t.NumField())
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			known = append(known, name)
		}
		var g capabilities.Grants
		v := reflect.ValueOf(&g).Elem()
		d.eachField(n, path, known, func(k, val *yaml.Node, p string) {
			field := v.Field(slices.Index(known, k.Value))
			if err := val.Decode(field.Addr().Interface()); err != nil {
				d.fail(val, p, "", "want %s", kindName(val)+" of the right shape: "+strings.TrimPrefix(err.Error(), "yaml: "))
			}
		})
		*dst = g
	}
}

// devices decodes the device configuration strictly (an unknown key at any
// depth is an error), with yaml's own decoding of each value; errors name
// the line of the file.
func (d *configDecoder) devices(dst *mesh.Devices) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		n = resolve(n)
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "", "want a mapping such as {gpio: {provider: sim, lines: [RELAY]}, sensors: [...]}")
			return
		}
		text, err := yaml.Marshal(n)
		if err != nil {
			d.fail(n, path, "", "%v", err)
			return
		}
		// Placed on its own line of the file, so that yaml's errors say
		// where the user wrote the value.
		text = append(bytes.Repeat([]byte{'\n'}, max(n.Line-1, 0)), text...)
		dec := yaml.NewDecoder(bytes.NewReader(text))
		dec.KnownFields(true)
		var out mesh.Devices
		if err := dec.Decode(&out); err != nil {
			d.add(&FieldError{Line: n.Line, Field: path, Err: errors.New(strings.TrimPrefix(err.Error(), "yaml: ")), lineInErr: true})
			return
		}
		*dst = out
	}
}

func limitFields() []string {
	t := reflect.TypeFor[actor.Limits]()
	names := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		names = append(names, name)
	}
	return names
}

// limits decodes an actor's limits with actor.ParseLimits, so that their
// syntax (durations, sizes with units) and ranges are the runtime's own.
// Each field is given to ParseLimits alone, and a field in error again on
// its line of the file, so that ParseLimits's error names where the user
// wrote it.
func (d *configDecoder) limits(dst *actor.Limits) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		n = resolve(n)
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "", "want a mapping of limits such as {max_instances: 4, call_timeout: 2s}")
			return
		}
		actorPath := strings.TrimSuffix(path, ".limits")
		known := limitFields()
		var l actor.Limits
		d.eachField(n, path, known, func(k, v *yaml.Node, p string) {
			v = resolve(v)
			if isNull(v) {
				return // the default, as for every other field
			}
			if v.Kind != yaml.ScalarNode {
				d.fail(v, p, "", "want a value, not a %s", kindName(v))
				return
			}
			one, err := parseLimit(k, v, 0)
			if err != nil {
				if len(d.errs) < maxDecodeErrors {
					// Again, for an error that says the line of the file.
					_, err = parseLimit(k, v, v.Line)
				}
				// ParseLimits's error names the field and value, and for a
				// value of the wrong type the line too.
				d.add(&FieldError{Line: k.Line, Field: actorPath, Err: err,
					lineInErr: strings.Contains(err.Error(), fmt.Sprintf("(line %d)", v.Line))})
				return
			}
			mergeLimits(&l, one)
		})
		*dst = l
	}
}

// parseLimit runs actor.ParseLimits on one field, placed on the given line,
// so that ParseLimits's error names the line of the config file; line 0 is
// line 1.
func parseLimit(k, v *yaml.Node, line int) (actor.Limits, error) {
	value := *v
	value.Anchor = ""
	doc := yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Value: k.Value},
		&value,
	}}
	text, err := yaml.Marshal(&doc)
	if err != nil {
		return actor.Limits{}, fmt.Errorf("limits: %s: %w", k.Value, err)
	}
	pad := max(line-1, 0)
	return actor.ParseLimits(append(bytes.Repeat([]byte{'\n'}, pad), text...))
}

// mergeLimits copies the non-zero fields of src into dst.
func mergeLimits(dst *actor.Limits, src actor.Limits) {
	d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src)
	for i := range s.NumField() {
		if !s.Field(i).IsZero() {
			d.Field(i).Set(s.Field(i))
		}
	}
}
