// Package gpio is the guest side of trellis:gpio: reading, driving and
// watching the GPIO lines configured on the device, by the names the
// device gives them. The actor needs a grant for each line and use, such
// as `gpio: [{line: RELAY, direction: out}, {line: BUTTON, direction: in}]`:
// in to Read and Watch, out to Write (and read back), pwm for PWM. Any
// other use fails with an error that says "denied".
//
// Watch asks the host to invoke one of the actor's operations on every
// edge of an input line; HandleEdges registers that operation and decodes
// the edge for it:
//
//	func init() {
//		gpio.HandleEdges("Button", func(e gpio.Event) error {
//			return gpio.Write("LED", e.Level)
//		})
//		sdk.Handle("Start", func([]byte) ([]byte, error) {
//			return nil, gpio.Watch("BUTTON", gpio.Both, "Button")
//		})
//	}
//
// Errors the host returns are *sdk.HostError; an answer that does not
// decode is an error naming the key at fault.
package gpio

import (
	"errors"
	"strconv"
	"time"

	"github.com/trellis-edge/trellis/sdk"
	"github.com/trellis-edge/trellis/sdk/internal/msgpack"
	"github.com/trellis-edge/trellis/sdk/internal/wire"
)

// Namespace is the contract's namespace.
const Namespace = "trellis:gpio"

// Edge selects the transitions Watch reports.
type Edge string

// The edges.
const (
	Rising  Edge = "rising"  // low to high
	Falling Edge = "falling" // high to low
	Both    Edge = "both"
)

// Read returns the level of line: true is high. An output line reads back
// the level last written.
func Read(line string) (bool, error) {
	b := msgpack.AppendMapHeader(nil, 1)
	b = msgpack.AppendString(msgpack.AppendString(b, "line"), line)
	resp, err := wire.Call(Namespace, "Read", b)
	if err != nil {
		return false, err
	}
	var level bool
	seen := false
	err = wire.DecodeMap("sdk/gpio: Read response", resp, func(d *msgpack.Decoder, k string) (err error) {
		if k == "level" {
			seen = true
			level, err = decodeLevel(d)
			return err
		}
		return d.Skip()
	})
	if err == nil && !seen {
		err = wire.Invalid("sdk/gpio: Read response", "no level")
	}
	return level, err
}

// Write drives line to level: true is high.
func Write(line string, level bool) error {
	b := msgpack.AppendMapHeader(nil, 2)
	b = msgpack.AppendString(msgpack.AppendString(b, "line"), line)
	b = msgpack.AppendBool(msgpack.AppendString(b, "level"), level)
	_, err := wire.Call(Namespace, "Write", b)
	return err
}

// PWM drives line with a square wave of freq hertz that is high for the
// fraction duty (0 to 1) of each period.
func PWM(line string, duty, freq float64) error {
	b := msgpack.AppendMapHeader(nil, 3)
	b = msgpack.AppendString(msgpack.AppendString(b, "line"), line)
	b = msgpack.AppendFloat64(msgpack.AppendString(b, "duty"), duty)
	b = msgpack.AppendFloat64(msgpack.AppendString(b, "freq"), freq)
	_, err := wire.Call(Namespace, "PWM", b)
	return err
}

// Watch asks the host to invoke the actor's operation with an Event on
// every edge of kind edge on line, in order. Register operation with
// HandleEdges. Edges that come faster than the actor handles them queue up
// to a bound, past which the host drops them.
func Watch(line string, edge Edge, operation string) error {
	b := msgpack.AppendMapHeader(nil, 3)
	b = msgpack.AppendString(msgpack.AppendString(b, "line"), line)
	b = msgpack.AppendString(msgpack.AppendString(b, "edge"), string(edge))
	b = msgpack.AppendString(msgpack.AppendString(b, "operation"), operation)
	_, err := wire.Call(Namespace, "Watch", b)
	return err
}

// Event is one edge on a watched line.
type Event struct {
	Line  string
	Level bool      // the level after the edge: true for a rising edge
	Time  time.Time // when the host saw it
}

const eventPayload = "sdk/gpio: edge event"

// DecodeEvent decodes the payload with which the host invokes a Watch
// operation: {line, level, time}.
func DecodeEvent(payload []byte) (Event, error) {
	var e Event
	var seenLine, seenLevel bool
	err := wire.DecodeMap(eventPayload, payload, func(d *msgpack.Decoder, k string) (err error) {
		switch k {
		case "line":
			seenLine = true
			e.Line, err = d.String()
		case "level":
			seenLevel = true
			e.Level, err = decodeLevel(d)
		case "time":
			var ns int64
			if ns, err = d.Int(); err == nil && ns != 0 {
				e.Time = time.Unix(0, ns)
			}
		default:
			err = d.Skip()
		}
		return err
	})
	switch {
	case err != nil:
		return Event{}, err
	case !seenLine:
		return Event{}, wire.Invalid(eventPayload, "no line")
	case !seenLevel:
		return Event{}, wire.Invalid(eventPayload, "no level")
	}
	return e, nil
}

// HandleEdges registers operation (with sdk.Handle, so call it from an
// init function) as the receiver of Watch events: each payload is decoded
// into an Event for f. A payload that does not decode, or an error from f,
// is the operation's error, which the host logs.
func HandleEdges(operation string, f func(Event) error) {
	sdk.Handle(operation, func(payload []byte) ([]byte, error) {
		e, err := DecodeEvent(payload)
		if err != nil {
			return nil, err
		}
		return nil, f(e)
	})
}

// decodeLevel reads a bool, or the integers 0 and 1 (which the host also
// accepts from guests).
func decodeLevel(d *msgpack.Decoder) (bool, error) {
	if t, err := d.Peek(); err != nil || t != msgpack.Int {
		return d.Bool()
	}
	n, err := d.Int()
	if err != nil {
		return false, err
	}
	if n != 0 && n != 1 {
		return false, errors.New("want a bool, 0 or 1, got " + strconv.FormatInt(n, 10))
	}
	return n == 1, nil
}
