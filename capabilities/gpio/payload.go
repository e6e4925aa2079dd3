package gpio

// The contract's operations and their msgpack payloads (map keys exactly as
// shown; every key is required, unknown and repeated keys are errors):
//
//	Read   {line: str}                                → {level: bool}
//	Write  {line: str, level: bool}                   → nil
//	Watch  {line: str, edge: str, operation: str}     → nil
//	PWM    {line: str, duty: float, freq: float}      → nil
//
// level is a bool (0 and 1 are accepted too); edge is "rising", "falling"
// or "both"; duty is 0..1; freq is in hertz, above 0 and at most MaxFreq
// (integers are accepted for both).
//
// Watch registers the calling actor for edges on the line: each edge then
// invokes the actor's operation with an Event,
//
//	{line: str, level: bool, time: int}               (time: Unix nanoseconds)
//
// The decoders are for untrusted guest memory: they never panic, reject
// trailing bytes, and fail with a *PayloadError that names the field.

import (
	"bytes"
	"errors"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/capabilities"
)

// Operation names.
const (
	OpRead  = "Read"
	OpWrite = "Write"
	OpWatch = "Watch"
	OpPWM   = "PWM"
)

// Limits on the strings in payloads.
const (
	MaxLineName  = 64  // bytes of a line name
	MaxOperation = 128 // bytes of a Watch operation name
)

// Map keys.
const (
	keyLine      = "line"
	keyLevel     = "level"
	keyEdge      = "edge"
	keyOperation = "operation"
	keyDuty      = "duty"
	keyFreq      = "freq"
	keyTime      = "time"
)

// ReadRequest is the input of Read.
type ReadRequest struct {
	Line string
}

// ReadResponse is the output of Read.
type ReadResponse struct {
	Level Level
}

// WriteRequest is the input of Write.
type WriteRequest struct {
	Line  string
	Level Level
}

// WatchRequest is the input of Watch: on each edge of kind Edge on Line the
// actor's Operation is invoked with an Event.
type WatchRequest struct {
	Line      string
	Edge      Edge
	Operation string
}

// PWMRequest is the input of PWM.
type PWMRequest struct {
	Line string
	Duty Duty
	Freq Hertz
}

// PayloadError is a payload that does not decode: its Package is "gpio",
// its Op the operation, or "Event". It unwraps to
// capabilities.ErrBadPayload.
type PayloadError = capabilities.PayloadError

// MarshalMsgpack encodes {line}.
func (r ReadRequest) MarshalMsgpack() ([]byte, error) {
	return encodeMap(1, func(e *msgpack.Encoder) error {
		return encodeString(e, keyLine, r.Line)
	})
}

// UnmarshalMsgpack decodes {line}.
func (r *ReadRequest) UnmarshalMsgpack(b []byte) error {
	var v ReadRequest
	err := decodeMap(OpRead, b, []string{keyLine}, func(d *capabilities.FieldDecoder, key string) {
		v.Line, _ = d.String(MaxLineName, ValidLineName)
	})
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalMsgpack encodes {level}.
func (r ReadResponse) MarshalMsgpack() ([]byte, error) {
	return encodeMap(1, func(e *msgpack.Encoder) error {
		return encodeBool(e, keyLevel, bool(r.Level))
	})
}

// UnmarshalMsgpack decodes {level}.
func (r *ReadResponse) UnmarshalMsgpack(b []byte) error {
	var v ReadResponse
	err := decodeMap(OpRead+" response", b, []string{keyLevel}, func(d *capabilities.FieldDecoder, key string) {
		v.Level = level(d)
	})
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalMsgpack encodes {line, level}.
func (r WriteRequest) MarshalMsgpack() ([]byte, error) {
	return encodeMap(2, func(e *msgpack.Encoder) error {
		return errors.Join(encodeString(e, keyLine, r.Line), encodeBool(e, keyLevel, bool(r.Level)))
	})
}

// UnmarshalMsgpack decodes {line, level}.
func (r *WriteRequest) UnmarshalMsgpack(b []byte) error {
	var v WriteRequest
	err := decodeMap(OpWrite, b, []string{keyLine, keyLevel}, func(d *capabilities.FieldDecoder, key string) {
		switch key {
		case keyLine:
			v.Line, _ = d.String(MaxLineName, ValidLineName)
		case keyLevel:
			v.Level = level(d)
		}
	})
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalMsgpack encodes {line, edge, operation}.
func (r WatchRequest) MarshalMsgpack() ([]byte, error) {
	return encodeMap(3, func(e *msgpack.Encoder) error {
		return errors.Join(
			encodeString(e, keyLine, r.Line),
			encodeString(e, keyEdge, r.Edge.String()),
			encodeString(e, keyOperation, r.Operation))
	})
}

// UnmarshalMsgpack decodes {line, edge, operation}.
func (r *WatchRequest) UnmarshalMsgpack(b []byte) error {
	var v WatchRequest
	err := decodeMap(OpWatch, b, []string{keyLine, keyEdge, keyOperation}, func(d *capabilities.FieldDecoder, key string) {
		switch key {
		case keyLine:
			v.Line, _ = d.String(MaxLineName, ValidLineName)
		case keyEdge:
			v.Edge = edge(d)
		case keyOperation:
			v.Operation, _ = d.String(MaxOperation, validOperation)
		}
	})
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalMsgpack encodes {line, duty, freq}.
func (r PWMRequest) MarshalMsgpack() ([]byte, error) {
	return encodeMap(3, func(e *msgpack.Encoder) error {
		return errors.Join(
			encodeString(e, keyLine, r.Line),
			encodeFloat(e, keyDuty, float64(r.Duty)),
			encodeFloat(e, keyFreq, float64(r.Freq)))
	})
}

// UnmarshalMsgpack decodes {line, duty, freq}.
func (r *PWMRequest) UnmarshalMsgpack(b []byte) error {
	var v PWMRequest
	err := decodeMap(OpPWM, b, []string{keyLine, keyDuty, keyFreq}, func(d *capabilities.FieldDecoder, key string) {
		switch key {
		case keyLine:
			v.Line, _ = d.String(MaxLineName, ValidLineName)
		case keyDuty:
			if f, ok := d.Float64(); ok && !Duty(f).Valid() {
				d.Fail("want 0 to 1, got " + strconv.FormatFloat(f, 'g', -1, 64))
			} else {
				v.Duty = Duty(f)
			}
		case keyFreq:
			if f, ok := d.Float64(); ok && !Hertz(f).Valid() {
				d.Fail("want hertz above 0 and at most " + strconv.FormatFloat(float64(MaxFreq), 'g', -1, 64) + ", got " + strconv.FormatFloat(f, 'g', -1, 64))
			} else {
				v.Freq = Hertz(f)
			}
		}
	})
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalMsgpack encodes {line, level, time}, time in Unix nanoseconds
// (defined for the years 1678 to 2262, as time.Time.UnixNano is).
func (ev Event) MarshalMsgpack() ([]byte, error) {
	return encodeMap(3, func(e *msgpack.Encoder) error {
		return errors.Join(
			encodeString(e, keyLine, ev.Line),
			encodeBool(e, keyLevel, bool(ev.Level)),
			e.EncodeString(keyTime), e.EncodeInt(ev.Time.UnixNano()))
	})
}

// UnmarshalMsgpack decodes {line, level, time}.
func (ev *Event) UnmarshalMsgpack(b []byte) error {
	var v Event
	err := decodeMap("Event", b, []string{keyLine, keyLevel, keyTime}, func(d *capabilities.FieldDecoder, key string) {
		switch key {
		case keyLine:
			v.Line, _ = d.String(MaxLineName, ValidLineName)
		case keyLevel:
			v.Level = level(d)
		case keyTime:
			n, _ := d.Int64()
			v.Time = time.Unix(0, n)
		}
	})
	if err != nil {
		return err
	}
	*ev = v
	return nil
}

// ValidLineName reports why name cannot be a line name, or "" if it can:
// 1 to MaxLineName bytes of printable ASCII, no spaces or slashes (the
// grants' rule, and safe to echo in errors and subjects).
func ValidLineName(name string) string {
	if name == "" {
		return "empty"
	}
	if len(name) > MaxLineName {
		return "longer than " + strconv.Itoa(MaxLineName) + " bytes"
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == '/' {
			return "want printable ASCII without spaces or slashes, got " + strconv.QuoteToASCII(name)
		}
	}
	return ""
}

// validOperation reports why op cannot be the name of an actor operation,
// or "" if it can.
func validOperation(op string) string {
	return capabilities.ValidText(op, MaxOperation, func(r rune) bool {
		return r == ' ' || unicode.IsControl(r) || r == utf8.RuneError
	}, "no spaces or control characters")
}

// Encoding. The encoder writes to a bytes.Buffer, which does not fail.

func encodeMap(n int, fields func(*msgpack.Encoder) error) ([]byte, error) {
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	if err := errors.Join(e.EncodeMapLen(n), fields(e)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encodeString(e *msgpack.Encoder, key, v string) error {
	return errors.Join(e.EncodeString(key), e.EncodeString(v))
}

func encodeBool(e *msgpack.Encoder, key string, v bool) error {
	return errors.Join(e.EncodeString(key), e.EncodeBool(v))
}

func encodeFloat(e *msgpack.Encoder, key string, v float64) error {
	return errors.Join(e.EncodeString(key), e.EncodeFloat64(v))
}

// Decoding: capabilities.DecodeStrictMap, with every key required.

// decodeMap decodes b, the payload of op, as a map with exactly the keys
// fields.
func decodeMap(op string, b []byte, fields []string, field func(d *capabilities.FieldDecoder, key string)) error {
	return capabilities.DecodeStrictMap("gpio", op, b, fields, nil, field)
}

// edge reads an edge name: rising, falling or both.
func edge(d *capabilities.FieldDecoder) Edge {
	s, ok := d.String(16, nil)
	if !ok {
		return 0
	}
	e, err := ParseEdge(s)
	if err != nil {
		d.Fail("want rising, falling or both, got " + strconv.QuoteToASCII(s))
		return 0
	}
	return e
}

// level reads a bool, or the integers 0 and 1.
func level(d *capabilities.FieldDecoder) Level {
	k, ok := d.Peek()
	switch {
	case !ok:
		return Low
	case k == capabilities.KindBool:
		v, _ := d.Bool()
		return Level(v)
	case k == capabilities.KindInt:
		n, ok := d.Int64()
		if ok && n != 0 && n != 1 {
			d.Fail("want a bool, 0 or 1, got " + strconv.FormatInt(n, 10))
		}
		return n == 1
	}
	d.Fail("want a bool, 0 or 1, got " + k.String())
	return Low
}
