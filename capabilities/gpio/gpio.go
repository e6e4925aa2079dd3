// Package gpio is the trellis:gpio contract: digital lines that an actor
// reads, drives, watches for edges and drives with PWM where the line has it.
//
// It owns the contract's value types (Level, Edge, Duty, Hertz, Event), the
// Provider and Line interfaces that providers implement, the sentinel errors
// callers branch on, and the msgpack payloads of the operations (payload.go).
// It imports no hardware library: the real provider over periph.io lives in
// capabilities/periphhost, the simulated one in capabilities/gpio/gpiosim.
// Anything may import this package; it imports only the capabilities core.
package gpio

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/trellis-edge/trellis/capabilities"
)

// Level is the logical level of a line.
type Level bool

// Levels.
const (
	Low  Level = false
	High Level = true
)

// String returns "low" or "high".
func (l Level) String() string {
	if l {
		return "high"
	}
	return "low"
}

// ParseLevel parses "high", "low", "1" or "0" (case-insensitive), as typed at
// the command line.
func ParseLevel(s string) (Level, error) {
	switch strings.ToLower(s) {
	case "high", "1":
		return High, nil
	case "low", "0":
		return Low, nil
	}
	return Low, fmt.Errorf("gpio: level %q: want high, low, 1 or 0", s)
}

// Edge is the kind of transition a watch reports. The zero value is no edge
// and is not valid for Watch.
type Edge uint8

// Edges. EdgeBoth is EdgeRising|EdgeFalling.
const (
	EdgeRising  Edge = 1 << iota // low to high
	EdgeFalling                  // high to low
	EdgeBoth    = EdgeRising | EdgeFalling
)

// String returns "rising", "falling", "both", or "Edge(n)" for an invalid value.
func (e Edge) String() string {
	switch e {
	case EdgeRising:
		return "rising"
	case EdgeFalling:
		return "falling"
	case EdgeBoth:
		return "both"
	}
	return "Edge(" + strconv.Itoa(int(e)) + ")"
}

// Valid reports whether e is rising, falling or both.
func (e Edge) Valid() bool { return e >= EdgeRising && e <= EdgeBoth }

// Includes reports whether a transition to level to is an edge of kind e:
// a rising edge ends high, a falling edge ends low.
func (e Edge) Includes(to Level) bool {
	if to == High {
		return e&EdgeRising != 0
	}
	return e&EdgeFalling != 0
}

// ParseEdge parses "rising", "falling" or "both": the spelling on the wire
// and at the command line.
func ParseEdge(s string) (Edge, error) {
	switch s {
	case "rising":
		return EdgeRising, nil
	case "falling":
		return EdgeFalling, nil
	case "both":
		return EdgeBoth, nil
	}
	return 0, fmt.Errorf("gpio: edge %q: want rising, falling or both", s)
}

// Duty is a PWM duty cycle: the fraction of each period the line is high,
// from 0 to 1.
type Duty float64

// Valid reports whether d is within [0, 1] (NaN is not).
func (d Duty) Valid() bool { return d >= 0 && d <= 1 }

// Hertz is a frequency.
type Hertz float64

// MaxFreq bounds PWM frequencies. No GPIO PWM comes near it; it keeps a
// conversion to periph's micro-hertz integers from overflowing.
const MaxFreq Hertz = 1e9

// Valid reports whether f is a usable PWM frequency: above 0, at most
// MaxFreq. Zero is not "the pin's default": periph's DMA PWM divides by it.
func (f Hertz) Valid() bool { return f > 0 && f <= MaxFreq }

// Event is one edge seen on a watched line: the level the line went to and
// when the provider saw it.
type Event struct {
	Line  string
	Level Level
	Time  time.Time
}

// Provider is a set of named lines: real pins on a device, or simulated
// ones. The agent chooses one by config and may swap it while actors run.
// Concrete providers also have Close, which ends every watch and waits for
// the goroutines that deliver them.
type Provider interface {
	// Line returns the named line. An unknown name is an *UnknownLineError
	// (errors.Is ErrUnknownLine) that names it and lists the lines there are.
	Line(name string) (Line, error)
	// Lines returns the names of the lines, sorted.
	Lines() []string
}

// Line is one digital line. A line's direction follows its last use, as
// periph's pins do: Write and PWM make it an output, Watch makes it an input
// (Read leaves it as it is). Every method honours ctx and returns
// ErrUnavailable once the provider is closed.
type Line interface {
	// Read returns the line's level. An output reads back the level written;
	// a line generating PWM returns ErrDirection.
	Read(ctx context.Context) (Level, error)
	// Write drives the line to l, making it an output. A line with live
	// watches returns ErrDirection: switching it would silently end them.
	Write(ctx context.Context, l Level) error
	// Watch makes the line an input and calls fn for each edge of kind edge
	// until ctx is done or the provider is closed. It returns once the line
	// is watching. fn is called in order, from one goroutine the provider
	// owns, never concurrently for one watch; it should return promptly:
	// like hardware, a provider may drop edges while fn runs. After ctx is
	// done fn is not called again (a call already under way finishes).
	Watch(ctx context.Context, edge Edge, fn func(Event)) error
	// PWM drives the line with a duty cycle at freq. A line without PWM
	// returns ErrUnsupported; a watched line returns ErrDirection.
	PWM(ctx context.Context, duty Duty, freq Hertz) error
}

// Sentinel errors, for errors.Is.
var (
	// ErrUnknownLine is a line name the provider does not have.
	ErrUnknownLine = errors.New("gpio: unknown line")
	// ErrUnsupported is an operation the line cannot do (PWM on a plain pin).
	ErrUnsupported = errors.New("gpio: unsupported")
	// ErrDirection is an operation that conflicts with how the line is used
	// now: writing a watched input, reading a PWM output, setting a
	// simulated output from outside.
	ErrDirection = errors.New("gpio: line in use in the other direction")
	// ErrUnavailable is a closed provider; it is capabilities.ErrUnavailable,
	// so the dispatcher reports it as such.
	ErrUnavailable = capabilities.ErrUnavailable
)

// maxListed bounds the lines named in an UnknownLineError.
const maxListed = 16

// UnknownLineError is a line name the provider does not have, with the
// names it does have.
type UnknownLineError struct {
	Name  string
	Lines []string // the provider's lines, sorted
}

// Error names the line and lists what exists (the first few of many).
func (e *UnknownLineError) Error() string {
	var b strings.Builder
	b.WriteString("gpio: unknown line ")
	b.WriteString(strconv.Quote(e.Name))
	switch {
	case len(e.Lines) == 0:
		b.WriteString(" (there are no lines)")
	case len(e.Lines) <= maxListed:
		b.WriteString(" (lines: ")
		b.WriteString(strings.Join(e.Lines, ", "))
		b.WriteString(")")
	default:
		b.WriteString(" (lines: ")
		b.WriteString(strings.Join(e.Lines[:maxListed], ", "))
		b.WriteString(", and ")
		b.WriteString(strconv.Itoa(len(e.Lines) - maxListed))
		b.WriteString(" more)")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrUnknownLine) true.
func (e *UnknownLineError) Is(target error) bool { return target == ErrUnknownLine }
