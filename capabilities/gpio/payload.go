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
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

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

// PayloadError is a payload that does not decode. It unwraps to
// capabilities.ErrBadPayload.
type PayloadError struct {
	Op     string // the operation, or "Event"
	Field  string // the map key at fault; "" for the payload as a whole
	Reason string
}

// Error says which operation and field, and why.
func (e *PayloadError) Error() string {
	if e.Field == "" {
		return "gpio: " + e.Op + " payload: " + e.Reason
	}
	return "gpio: " + e.Op + " payload: " + e.Field + ": " + e.Reason
}

// Unwrap returns capabilities.ErrBadPayload.
func (e *PayloadError) Unwrap() error { return capabilities.ErrBadPayload }

// MarshalMsgpack encodes {line}.
func (r ReadRequest) MarshalMsgpack() ([]byte, error) {
	return encodeMap(1, func(e *msgpack.Encoder) error {
		return encodeString(e, keyLine, r.Line)
	})
}

// UnmarshalMsgpack decodes {line}.
func (r *ReadRequest) UnmarshalMsgpack(b []byte) error {
	var v ReadRequest
	err := decodeMap(OpRead, b, []string{keyLine}, func(d *fieldDecoder, key string) {
		v.Line = d.lineName()
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
	err := decodeMap(OpRead+" response", b, []string{keyLevel}, func(d *fieldDecoder, key string) {
		v.Level = d.level()
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
	err := decodeMap(OpWrite, b, []string{keyLine, keyLevel}, func(d *fieldDecoder, key string) {
		switch key {
		case keyLine:
			v.Line = d.lineName()
		case keyLevel:
			v.Level = d.level()
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
	err := decodeMap(OpWatch, b, []string{keyLine, keyEdge, keyOperation}, func(d *fieldDecoder, key string) {
		switch key {
		case keyLine:
			v.Line = d.lineName()
		case keyEdge:
			v.Edge = d.edge()
		case keyOperation:
			v.Operation = d.operation()
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
	err := decodeMap(OpPWM, b, []string{keyLine, keyDuty, keyFreq}, func(d *fieldDecoder, key string) {
		switch key {
		case keyLine:
			v.Line = d.lineName()
		case keyDuty:
			if f, ok := d.float(); ok && !Duty(f).Valid() {
				d.fail("want 0 to 1, got " + strconv.FormatFloat(f, 'g', -1, 64))
			} else {
				v.Duty = Duty(f)
			}
		case keyFreq:
			if f, ok := d.float(); ok && !Hertz(f).Valid() {
				d.fail("want hertz above 0 and at most " + strconv.FormatFloat(float64(MaxFreq), 'g', -1, 64) + ", got " + strconv.FormatFloat(f, 'g', -1, 64))
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
	err := decodeMap("Event", b, []string{keyLine, keyLevel, keyTime}, func(d *fieldDecoder, key string) {
		switch key {
		case keyLine:
			v.Line = d.lineName()
		case keyLevel:
			v.Level = d.level()
		case keyTime:
			v.Time = time.Unix(0, d.int64())
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

func validOperation(op string) string {
	if op == "" {
		return "empty"
	}
	if len(op) > MaxOperation {
		return "longer than " + strconv.Itoa(MaxOperation) + " bytes"
	}
	if !utf8.ValidString(op) {
		return "not UTF-8"
	}
	for _, r := range op {
		if r <= ' ' || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == utf8.RuneError {
			return "want no spaces or control characters, got " + strconv.QuoteToASCII(op)
		}
	}
	return ""
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

// Decoding.

// maxKey bounds the map keys a decoder reads; every real key is shorter.
const maxKey = 32

// decodeMap decodes b as a map whose keys are exactly fields, calling field
// for each key with the decoder positioned on its value. field reports a
// bad value with d.fail; decodeMap turns the first failure into a
// *PayloadError.
func decodeMap(op string, b []byte, fields []string, field func(d *fieldDecoder, key string)) error {
	in := bytes.NewReader(b) // an io.ByteScanner: the decoder reads it directly, no buffering
	d := &fieldDecoder{dec: msgpack.NewDecoder(in)}
	bad := func(key, reason string) error { return &PayloadError{Op: op, Field: key, Reason: reason} }

	c, err := d.dec.PeekCode()
	if err != nil {
		return bad("", "empty")
	}
	if !msgpcode.IsFixedMap(c) && c != msgpcode.Map16 && c != msgpcode.Map32 {
		return bad("", "want a map, got "+typeName(c))
	}
	n, err := d.dec.DecodeMapLen()
	if err != nil {
		return bad("", "truncated")
	}
	seen := make([]bool, len(fields))
	for range n {
		key, reason := d.str(maxKey)
		if reason != "" {
			return bad("", "map key: "+reason)
		}
		i := indexOf(fields, key)
		if i < 0 {
			return bad(strconv.QuoteToASCII(key), "unknown field")
		}
		if seen[i] {
			return bad(key, "repeated")
		}
		seen[i] = true
		field(d, key)
		if d.reason != "" {
			return bad(key, d.reason)
		}
	}
	for i, ok := range seen {
		if !ok {
			return bad(fields[i], "missing")
		}
	}
	if in.Len() > 0 {
		return bad("", strconv.Itoa(in.Len())+" trailing bytes after the map")
	}
	return nil
}

func indexOf(fields []string, key string) int {
	for i, f := range fields {
		if f == key {
			return i
		}
	}
	return -1
}

// fieldDecoder reads one field's value and keeps the first reason it is bad.
type fieldDecoder struct {
	dec    *msgpack.Decoder
	reason string
}

func (d *fieldDecoder) fail(reason string) {
	if d.reason == "" {
		d.reason = reason
	}
}

// str reads a msgpack str of at most max bytes.
func (d *fieldDecoder) str(max int) (string, string) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return "", "truncated"
	}
	if !msgpcode.IsString(c) {
		return "", "want a string, got " + typeName(c)
	}
	n, err := d.dec.DecodeBytesLen()
	if err != nil {
		return "", "truncated"
	}
	if n > max {
		return "", "longer than " + strconv.Itoa(max) + " bytes"
	}
	buf := make([]byte, n)
	if err := d.dec.ReadFull(buf); err != nil {
		return "", "truncated"
	}
	return string(buf), ""
}

func (d *fieldDecoder) lineName() string {
	s, reason := d.str(MaxLineName)
	if reason == "" {
		reason = ValidLineName(s)
	}
	if reason != "" {
		d.fail(reason)
		return ""
	}
	return s
}

func (d *fieldDecoder) operation() string {
	s, reason := d.str(MaxOperation)
	if reason == "" {
		reason = validOperation(s)
	}
	if reason != "" {
		d.fail(reason)
		return ""
	}
	return s
}

func (d *fieldDecoder) edge() Edge {
	s, reason := d.str(16)
	if reason != "" {
		d.fail(reason)
		return 0
	}
	e, err := ParseEdge(s)
	if err != nil {
		d.fail("want rising, falling or both, got " + strconv.QuoteToASCII(s))
		return 0
	}
	return e
}

// level reads a bool, or the integers 0 and 1.
func (d *fieldDecoder) level() Level {
	c, err := d.dec.PeekCode()
	if err != nil {
		d.fail("truncated")
		return Low
	}
	switch {
	case c == msgpcode.True || c == msgpcode.False:
		v, err := d.dec.DecodeBool()
		if err != nil {
			d.fail("truncated")
		}
		return Level(v)
	case isInt(c):
		n, ok := d.integer()
		if ok && n != 0 && n != 1 {
			d.fail("want a bool, 0 or 1, got " + strconv.FormatInt(n, 10))
		}
		return n == 1
	}
	d.fail("want a bool, 0 or 1, got " + typeName(c))
	return Low
}

// float reads a float or an integer; NaN and infinities are refused.
func (d *fieldDecoder) float() (float64, bool) {
	c, err := d.dec.PeekCode()
	if err != nil {
		d.fail("truncated")
		return 0, false
	}
	var f float64
	switch {
	case c == msgpcode.Float || c == msgpcode.Double:
		f, err = d.dec.DecodeFloat64()
		if err != nil {
			d.fail("truncated")
			return 0, false
		}
	case isInt(c):
		n, ok := d.integer()
		if !ok {
			return 0, false
		}
		f = float64(n)
	default:
		d.fail("want a number, got " + typeName(c))
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		d.fail("want a finite number, got " + strconv.FormatFloat(f, 'g', -1, 64))
		return 0, false
	}
	return f, true
}

func (d *fieldDecoder) int64() int64 {
	c, err := d.dec.PeekCode()
	if err != nil {
		d.fail("truncated")
		return 0
	}
	if !isInt(c) {
		d.fail("want an integer, got " + typeName(c))
		return 0
	}
	n, _ := d.integer()
	return n
}

// integer reads any msgpack integer that fits an int64.
func (d *fieldDecoder) integer() (int64, bool) {
	c, err := d.dec.PeekCode()
	if err != nil {
		d.fail("truncated")
		return 0, false
	}
	if c == msgpcode.Uint64 {
		u, err := d.dec.DecodeUint64()
		if err != nil {
			d.fail("truncated")
			return 0, false
		}
		if u > math.MaxInt64 {
			d.fail("integer " + strconv.FormatUint(u, 10) + " out of range")
			return 0, false
		}
		return int64(u), true
	}
	n, err := d.dec.DecodeInt64()
	if err != nil {
		d.fail(readReason(err))
		return 0, false
	}
	return n, true
}

func readReason(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "truncated"
	}
	return err.Error()
}

func isInt(c byte) bool {
	return msgpcode.IsFixedNum(c) ||
		c >= msgpcode.Uint8 && c <= msgpcode.Uint64 ||
		c >= msgpcode.Int8 && c <= msgpcode.Int64
}

// typeName names the msgpack type that code c starts, for errors.
func typeName(c byte) string {
	switch {
	case c == msgpcode.Nil:
		return "nil"
	case c == msgpcode.True || c == msgpcode.False:
		return "bool"
	case isInt(c):
		return "integer"
	case c == msgpcode.Float || c == msgpcode.Double:
		return "float"
	case msgpcode.IsString(c):
		return "string"
	case msgpcode.IsBin(c):
		return "binary"
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		return "array"
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		return "map"
	case msgpcode.IsExt(c):
		return "extension"
	}
	return fmt.Sprintf("invalid code 0x%02x", c)
}
