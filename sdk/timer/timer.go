// Package timer is the guest side of trellis:timer: timers an actor sets
// on itself, which invoke one of its operations once or periodically. The
// actor needs the grant `timers: true`; without it every call fails with
// an error that says "denied". The host keeps timers across restarts (a
// one-shot timer that fell due while the device was off fires once, late)
// and removes them when the actor is stopped. An actor has at most 256.
//
// An operator can also invoke an operation periodically without the actor
// asking, with a schedule in the grants (no timers grant needed):
//
//	schedule: [{name: tick, every: 5s, operation: Tick}]
//
// Either way the operation receives a Tick; HandleTicks registers it:
//
//	func init() {
//		timer.HandleTicks("Tick", func(t timer.Tick) error {
//			sdk.Info("tick " + t.Name)
//			return nil
//		})
//		sdk.Handle("Start", func([]byte) ([]byte, error) {
//			return nil, timer.Set(timer.Spec{Name: "tick", Operation: "Tick", Every: time.Minute})
//		})
//	}
//
// Errors the host returns are *sdk.HostError; an answer that does not
// decode is an error naming the key at fault.
package timer

import (
	"time"

	"github.com/trellis-edge/trellis/sdk"
	"github.com/trellis-edge/trellis/sdk/internal/msgpack"
	"github.com/trellis-edge/trellis/sdk/internal/wire"
)

// Namespace is the contract's namespace.
const Namespace = "trellis:timer"

// Spec is a timer to set.
type Spec struct {
	// Name identifies the timer among the actor's; setting a name that
	// exists replaces that timer.
	Name string
	// Operation is the actor's operation each firing invokes with a Tick.
	Operation string
	// After is when the timer first fires. 0 means one period for a
	// periodic timer, and now for a one-shot timer.
	After time.Duration
	// Every is the period; 0 makes a one-shot timer. A period is at least
	// 10 ms.
	Every time.Duration
	// Payload is passed to every firing in Tick.Payload.
	Payload []byte
}

// Set sets the timer s. Durations are sent in whole milliseconds (rounded
// down).
func Set(s Spec) error {
	b := msgpack.AppendMapHeader(nil, 5)
	b = msgpack.AppendString(msgpack.AppendString(b, "name"), s.Name)
	b = msgpack.AppendString(msgpack.AppendString(b, "operation"), s.Operation)
	b = msgpack.AppendInt(msgpack.AppendString(b, "after"), s.After.Milliseconds())
	b = msgpack.AppendInt(msgpack.AppendString(b, "every"), s.Every.Milliseconds())
	b = msgpack.AppendBin(msgpack.AppendString(b, "payload"), s.Payload)
	_, err := wire.Call(Namespace, "Set", b)
	return err
}

// Cancel removes the timer name and reports whether it existed.
func Cancel(name string) (existed bool, err error) {
	b := msgpack.AppendMapHeader(nil, 1)
	b = msgpack.AppendString(msgpack.AppendString(b, "name"), name)
	resp, err := wire.Call(Namespace, "Cancel", b)
	if err != nil {
		return false, err
	}
	err = wire.DecodeMap("sdk/timer: Cancel response", resp, func(d *msgpack.Decoder, k string) (err error) {
		if k == "existed" {
			existed, err = d.Bool()
			return err
		}
		return d.Skip()
	})
	return existed, err
}

// Timer is a timer the actor has set.
type Timer struct {
	Name      string
	Operation string
	Next      time.Time     // when it fires next
	Every     time.Duration // its period; 0 for a one-shot timer
}

// List returns the actor's timers.
func List() ([]Timer, error) {
	resp, err := wire.Call(Namespace, "List", msgpack.AppendMapHeader(nil, 0))
	if err != nil {
		return nil, err
	}
	var ts []Timer
	err = wire.DecodeMap("sdk/timer: List response", resp, func(d *msgpack.Decoder, k string) error {
		if k != "timers" {
			return d.Skip()
		}
		n, err := d.ArrayLen()
		if err != nil {
			return err
		}
		ts = make([]Timer, 0, n) // n is bounded by the response's size
		for range n {
			var t Timer
			err := d.Map(func(k string) (err error) {
				switch k {
				case "name":
					t.Name, err = d.String()
				case "operation":
					t.Operation, err = d.String()
				case "next":
					var ns int64
					if ns, err = d.Int(); err == nil && ns != 0 {
						t.Next = time.Unix(0, ns)
					}
				case "every":
					var ms int64
					ms, err = d.Int()
					t.Every = durationMs(ms)
				default:
					err = d.Skip()
				}
				return err
			})
			if err != nil {
				return err
			}
			ts = append(ts, t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ts, nil
}

// durationMs converts ms milliseconds to a Duration, saturating.
func durationMs(ms int64) time.Duration {
	const max = int64(1<<63-1) / int64(time.Millisecond)
	switch {
	case ms > max:
		return time.Duration(1<<63 - 1)
	case ms < -max:
		return -time.Duration(1<<63 - 1)
	}
	return time.Duration(ms) * time.Millisecond
}

// Tick is a timer's or a schedule's firing.
type Tick struct {
	Name    string    // the timer's or the schedule entry's name
	Time    time.Time // when it was due
	Payload []byte    // the timer's payload; nil for a schedule
}

const tickPayload = "sdk/timer: tick"

// DecodeTick decodes the payload with which the host invokes a timer's
// operation: {name, time, payload}. An empty payload is a Tick with
// nothing set, so that an operation can be tried with `trellis run` and no
// payload.
func DecodeTick(payload []byte) (Tick, error) {
	var t Tick
	if len(payload) == 0 {
		return t, nil
	}
	err := wire.DecodeMap(tickPayload, payload, func(d *msgpack.Decoder, k string) (err error) {
		switch k {
		case "name":
			t.Name, err = d.String()
		case "time":
			var ns int64
			if ns, err = d.Int(); err == nil && ns != 0 {
				t.Time = time.Unix(0, ns)
			}
		case "payload":
			t.Payload, err = d.Bytes()
		default:
			err = d.Skip()
		}
		return err
	})
	if err != nil {
		return Tick{}, err
	}
	return t, nil
}

// HandleTicks registers operation (with sdk.Handle, so call it from an
// init function) as the receiver of a timer's or a schedule's firings:
// each payload is decoded into a Tick for f. A payload that does not
// decode, or an error from f, is the operation's error, which the host
// logs.
func HandleTicks(operation string, f func(Tick) error) {
	sdk.Handle(operation, func(payload []byte) ([]byte, error) {
		t, err := DecodeTick(payload)
		if err != nil {
			return nil, err
		}
		return nil, f(t)
	})
}
