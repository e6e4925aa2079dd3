package capabilities

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Grants are what one actor may reach. The zero value grants nothing:
// capabilities are denied by default. trellis:log and trellis:numbergen
// need no grant (they touch nothing outside the actor).
type Grants struct {
	// GPIO lines and how the actor may use each.
	GPIO []GPIOGrant `json:"gpio,omitempty" yaml:"gpio,omitempty"`
	// Sensors the actor may read, by configured sensor name.
	Sensors []string `json:"sensors,omitempty" yaml:"sensors,omitempty"`
	// I2C devices (bus and address) a sensor of the actor may use.
	I2C []I2CGrant `json:"i2c,omitempty" yaml:"i2c,omitempty"`
	// OneWire device ids (for example 28-00000a1b2c3d).
	OneWire []string `json:"onewire,omitempty" yaml:"onewire,omitempty"`
	// KV grants the actor its own key-value bucket; never another's.
	KV bool `json:"kv,omitempty" yaml:"kv,omitempty"`
	// Publish and Subscribe are NATS subject patterns ('*' one token, '>' the rest).
	Publish   []string `json:"publish,omitempty" yaml:"publish,omitempty"`
	Subscribe []string `json:"subscribe,omitempty" yaml:"subscribe,omitempty"`
	// Telemetry topics the actor may publish (patterns, like Publish).
	Telemetry []string `json:"telemetry,omitempty" yaml:"telemetry,omitempty"`
	// HTTP routes to the actor.
	HTTP []HTTPGrant `json:"http,omitempty" yaml:"http,omitempty"`
	// Timers allows the actor to set timers on itself (trellis:timer).
	Timers bool `json:"timers,omitempty" yaml:"timers,omitempty"`

	// Bindings: device events the operator routes to the actor, as a
	// wasmCloud link definition does. They need no call from the actor, so
	// an unmodified wasmCloud actor can be bound.

	// Subscriptions deliver messages on a subject to an actor operation;
	// each subject must be covered by a Subscribe pattern.
	Subscriptions []Subscription `json:"subscriptions,omitempty" yaml:"subscriptions,omitempty"`
	// Schedule invokes actor operations periodically.
	Schedule []ScheduleEntry `json:"schedule,omitempty" yaml:"schedule,omitempty"`
}

// Wire formats of the invocations a binding makes: the native shape
// (equal to wasmCloud's wasmbus shape) or the 0.18/waSCC one.
const (
	FormatWasmbus = "wasmbus" // the default; also the trellis: native shape
	FormatLegacy  = "legacy"  // wasmCloud 0.18 and waSCC actors
)

// Subscription delivers each message on Subject to Operation.
type Subscription struct {
	Subject string `json:"subject" yaml:"subject"`       // a pattern, covered by a subscribe grant
	Queue   string `json:"queue,omitempty" yaml:"queue"` // optional queue group: one delivery per group
	// Operation defaults to MessageSubscriber.HandleMessage (wasmbus) or
	// HandleMessage (legacy).
	Operation string `json:"operation,omitempty" yaml:"operation"`
	Format    string `json:"format,omitempty" yaml:"format"`
}

// ScheduleEntry invokes Operation every Every (the first tick one period
// after the actor starts).
type ScheduleEntry struct {
	Name      string   `json:"name" yaml:"name"`
	Every     Duration `json:"every" yaml:"every"`
	Operation string   `json:"operation" yaml:"operation"`
}

// Duration is a time.Duration written as text ("30s", "1m30s") in JSON and YAML.
type Duration time.Duration

// String formats d as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want a number with a unit such as 30s or 5m", b)
	}
	*d = Duration(v)
	return nil
}

// MinSchedulePeriod is the shortest period a schedule or a periodic timer may have.
const MinSchedulePeriod = 10 * time.Millisecond

// Direction is how an actor may use a GPIO line.
type Direction string

// GPIO directions.
const (
	DirIn  Direction = "in"  // read and watch edges
	DirOut Direction = "out" // write (and read back)
	DirPWM Direction = "pwm" // PWM output
)

// GPIOGrant is one GPIO line.
type GPIOGrant struct {
	Line      string    `json:"line" yaml:"line"`
	Direction Direction `json:"direction" yaml:"direction"`
}

// I2CGrant is one I2C device.
type I2CGrant struct {
	Bus     string `json:"bus" yaml:"bus"`         // e.g. "1" for /dev/i2c-1
	Address uint16 `json:"address" yaml:"address"` // 7-bit address, e.g. 0x76
}

// HTTPGrant routes requests for a path prefix on a listen address to the
// actor.
type HTTPGrant struct {
	Listen     string `json:"listen" yaml:"listen"`           // host:port
	PathPrefix string `json:"path_prefix" yaml:"path_prefix"` // "/api/"
	// Operation defaults to HttpServer.HandleRequest (wasmbus, and the
	// native trellis:http) or HandleRequest (legacy).
	Operation string `json:"operation,omitempty" yaml:"operation"`
	Format    string `json:"format,omitempty" yaml:"format"` // wasmbus (default) or legacy
}

// Allows reports whether the grants let the actor use contract at all; the
// contract's handler checks the fine grain.
func (g Grants) Allows(contract string) bool {
	switch contract {
	case Log, Numbergen:
		return true
	case GPIO:
		return len(g.GPIO) > 0
	case Sensor:
		return len(g.Sensors) > 0
	case KV:
		return g.KV
	case Messaging:
		return len(g.Publish) > 0 || len(g.Subscribe) > 0
	case Telemetry:
		return len(g.Telemetry) > 0
	case HTTP:
		return len(g.HTTP) > 0
	case Timer:
		return g.Timers
	}
	return false
}

// GPIOAllows reports whether the actor may use line in direction dir. An
// out grant also allows reading the line back.
func (g Grants) GPIOAllows(line string, dir Direction) bool {
	for _, gg := range g.GPIO {
		if gg.Line == line && (gg.Direction == dir || dir == DirIn && gg.Direction != DirIn) {
			return true
		}
	}
	return false
}

// CanPublish reports whether a granted publish pattern matches subject.
func (g Grants) CanPublish(subject string) bool { return matchAny(g.Publish, subject) }

// CanSubscribe reports whether a granted subscribe pattern covers pattern:
// a subscription may be narrower than its grant, never wider.
func (g Grants) CanSubscribe(pattern string) bool {
	for _, p := range g.Subscribe {
		if Covers(p, pattern) {
			return true
		}
	}
	return false
}

func matchAny(patterns []string, subject string) bool {
	for _, p := range patterns {
		if Covers(p, subject) {
			return true
		}
	}
	return false
}

// Covers reports whether every subject matched by sub is matched by
// pattern (with sub a plain subject, whether pattern matches it).
func Covers(pattern, sub string) bool {
	pt, st := strings.Split(pattern, "."), strings.Split(sub, ".")
	for i, p := range pt {
		if p == ">" {
			return len(st) > i
		}
		if i >= len(st) {
			return false
		}
		switch {
		case p == "*":
			if st[i] == ">" {
				return false
			}
		case p != st[i]:
			return false
		}
	}
	return len(pt) == len(st)
}

// ValidateSubject checks a subject or pattern: non-empty tokens, '>' only last,
// wildcards only as whole tokens, no spaces.
func ValidateSubject(s string, wildcards bool) error {
	if s == "" {
		return errors.New("empty subject")
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return fmt.Errorf("subject %q: empty token", s)
		case strings.ContainsAny(t, " \t\r\n"):
			return fmt.Errorf("subject %q: whitespace", s)
		case (t == "*" || t == ">") && !wildcards:
			return fmt.Errorf("subject %q: wildcards are not allowed here", s)
		case t == ">" && i != len(toks)-1:
			return fmt.Errorf("subject %q: '>' must be the last token", s)
		case t != "*" && t != ">" && strings.ContainsAny(t, "*>"):
			return fmt.Errorf("subject %q: wildcard inside token %q", s, t)
		}
	}
	return nil
}

// Validate checks one actor's grants on their own; every error names the
// field and the value.
func (g Grants) Validate() error {
	var errs []error
	bad := func(field string, i int, v any, format string, args ...any) {
		errs = append(errs, fmt.Errorf("grants: %s[%d] %q: %s", field, i, fmt.Sprint(v), fmt.Sprintf(format, args...)))
	}
	for i, gg := range g.GPIO {
		if gg.Line == "" || strings.ContainsAny(gg.Line, " \t/") {
			bad("gpio", i, gg.Line, "want a line name such as GPIO17")
		}
		if !slices.Contains([]Direction{DirIn, DirOut, DirPWM}, gg.Direction) {
			bad("gpio", i, gg.Direction, "direction: want in, out or pwm")
		}
		for j := range i {
			if g.GPIO[j].Line == gg.Line {
				bad("gpio", i, gg.Line, "granted twice (first at gpio[%d])", j)
			}
		}
	}
	for i, s := range g.Sensors {
		if s == "" {
			bad("sensors", i, s, "empty sensor name")
		}
	}
	for i, d := range g.I2C {
		if _, err := strconv.ParseUint(d.Bus, 10, 8); err != nil {
			bad("i2c", i, d.Bus, "bus: want a bus number such as 1")
		}
		if d.Address < 0x03 || d.Address > 0x77 {
			bad("i2c", i, fmt.Sprintf("%#x", d.Address), "address: want a 7-bit address from 0x03 to 0x77")
		}
	}
	for i, id := range g.OneWire {
		if len(id) != 15 || id[2] != '-' {
			bad("onewire", i, id, "want a device id such as 28-00000a1b2c3d")
		}
	}
	for field, pats := range map[string][]string{"publish": g.Publish, "subscribe": g.Subscribe, "telemetry": g.Telemetry} {
		for i, p := range pats {
			if err := ValidateSubject(p, true); err != nil {
				bad(field, i, p, "%v", err)
			}
		}
	}
	for i, h := range g.HTTP {
		if _, port, err := net.SplitHostPort(h.Listen); err != nil {
			bad("http", i, h.Listen, "listen: want host:port such as 127.0.0.1:8080")
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad("http", i, h.Listen, "listen: port %q is not 0 to 65535", port)
		}
		if !strings.HasPrefix(h.PathPrefix, "/") {
			bad("http", i, h.PathPrefix, "path_prefix: want a path starting with /")
		}
		if !validFormat(h.Format) {
			bad("http", i, h.Format, "format: want wasmbus or legacy")
		}
	}
	for i, s := range g.Subscriptions {
		switch {
		case ValidateSubject(s.Subject, true) != nil:
			bad("subscriptions", i, s.Subject, "%v", ValidateSubject(s.Subject, true))
		case !g.CanSubscribe(s.Subject):
			bad("subscriptions", i, s.Subject, "subject: not covered by a subscribe grant (subscribe: [%s])", strings.Join(g.Subscribe, ", "))
		}
		if s.Queue != "" && ValidateSubject(s.Queue, false) != nil || strings.Contains(s.Queue, ".") {
			bad("subscriptions", i, s.Queue, "queue: want one token such as workers")
		}
		if !validFormat(s.Format) {
			bad("subscriptions", i, s.Format, "format: want wasmbus or legacy")
		}
	}
	for i, e := range g.Schedule {
		if e.Name == "" || strings.ContainsAny(e.Name, " \t\r\n") {
			bad("schedule", i, e.Name, "name: want a name without spaces")
		}
		if time.Duration(e.Every) < MinSchedulePeriod {
			bad("schedule", i, e.Every, "every: want at least %s", MinSchedulePeriod)
		}
		if e.Operation == "" {
			bad("schedule", i, e.Name, "operation: want the actor operation to invoke")
		}
		for j := range i {
			if g.Schedule[j].Name == e.Name {
				bad("schedule", i, e.Name, "name used twice (first at schedule[%d])", j)
			}
		}
	}
	return errors.Join(errs...)
}

func validFormat(f string) bool { return f == "" || f == FormatWasmbus || f == FormatLegacy }

// ValidateFleet checks the grants of every actor on one host together:
// lines must exist (when lines is not nil), no output line may be claimed
// by two actors, and no two HTTP routes on one listen address may overlap.
// These are errors when actors are configured, not at their first call.
func ValidateFleet(grants map[string]Grants, lines []string) error {
	var errs []error
	actors := make([]string, 0, len(grants))
	for a := range grants {
		actors = append(actors, a)
	}
	slices.Sort(actors)
	outputs := map[string]string{}
	type route struct{ actor, listen, prefix string }
	var routes []route
	for _, a := range actors {
		g := grants[a]
		if err := g.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("actor %s: %w", a, err))
			continue
		}
		for _, gg := range g.GPIO {
			if lines != nil && !slices.Contains(lines, gg.Line) {
				errs = append(errs, fmt.Errorf("actor %s: grants: gpio line %q does not exist (lines: %s)", a, gg.Line, strings.Join(lines, ", ")))
			}
			if gg.Direction == DirIn {
				continue
			}
			if other, ok := outputs[gg.Line]; ok {
				errs = append(errs, fmt.Errorf("actor %s: grants: gpio line %q is already an output of actor %s", a, gg.Line, other))
				continue
			}
			outputs[gg.Line] = a
		}
		for _, h := range g.HTTP {
			for _, r := range routes {
				if sameListen(r.listen, h.Listen) && (strings.HasPrefix(r.prefix, h.PathPrefix) || strings.HasPrefix(h.PathPrefix, r.prefix)) {
					errs = append(errs, fmt.Errorf("actor %s: grants: http %s%s overlaps actor %s's route %s%s", a, h.Listen, h.PathPrefix, r.actor, r.listen, r.prefix))
				}
			}
			routes = append(routes, route{a, h.Listen, h.PathPrefix})
		}
	}
	return errors.Join(errs...)
}

// sameListen reports whether two listen addresses can collide: the same
// port, and the same host or a wildcard host on either side.
func sameListen(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || ap != bp || ap == "0" { // port 0: each route gets a port of its own
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ah == bh || wild(ah) || wild(bh)
}
