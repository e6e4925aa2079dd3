package timer

// The decoders here are for untrusted guest memory: they never panic,
// reject trailing bytes, and fail with a *PayloadError that names the field.
// payload may be bin or str (what some encoders make of bytes); List
// accepts an empty map, nil or no bytes at all.

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/trellis-edge/trellis/capabilities"
)

// Map keys.
const (
	keyName      = "name"
	keyOperation = "operation"
	keyAfter     = "after"
	keyEvery     = "every"
	keyPayload   = "payload"
	keyExisted   = "existed"
	keyTimers    = "timers"
	keyNext      = "next"
	keyTime      = "time"
	keyDue       = "due"
)

// PayloadError is a payload that does not decode. It unwraps to
// capabilities.ErrBadPayload.
type PayloadError struct {
	Op     string // the operation
	Field  string // the map key at fault; "" for the payload as a whole
	Reason string
}

// Error says which operation and field, and why.
func (e *PayloadError) Error() string {
	if e.Field == "" {
		return "timer: " + e.Op + " payload: " + e.Reason
	}
	return "timer: " + e.Op + " payload: " + e.Field + ": " + e.Reason
}

// Unwrap returns capabilities.ErrBadPayload.
func (e *PayloadError) Unwrap() error { return capabilities.ErrBadPayload }

// setRequest is the input of Set, validated.
type setRequest struct {
	name, operation string
	after, every    time.Duration
	payload         []byte // nil: none
}

func decodeSet(b []byte) (setRequest, error) {
	var r setRequest
	err := decodeMap(OpSet, b, []string{keyName, keyOperation}, []string{keyAfter, keyEvery, keyPayload}, func(d *fieldDecoder, key string) {
		switch key {
		case keyName:
			r.name = d.name()
		case keyOperation:
			r.operation = d.operation()
		case keyAfter:
			r.after = d.millis()
		case keyEvery:
			if r.every = d.millis(); r.every > 0 && r.every < capabilities.MinSchedulePeriod {
				d.fail("want 0 (a one-shot timer) or at least " + strconv.FormatInt(capabilities.MinSchedulePeriod.Milliseconds(), 10) +
					" ms, got " + strconv.FormatInt(r.every.Milliseconds(), 10))
			}
		case keyPayload:
			r.payload = d.payload()
		}
	})
	if err != nil {
		return setRequest{}, err
	}
	return r, nil
}

func decodeCancel(b []byte) (string, error) {
	var name string
	err := decodeMap(OpCancel, b, []string{keyName}, nil, func(d *fieldDecoder, key string) {
		name = d.name()
	})
	return name, err
}

func decodeList(b []byte) error {
	if len(b) == 0 || len(b) == 1 && b[0] == msgpcode.Nil {
		return nil
	}
	return decodeMap(OpList, b, nil, nil, func(*fieldDecoder, string) {})
}

// Limits on what a Set may ask for.
const (
	MaxName      = 128                       // bytes of a timer name
	MaxOperation = 128                       // bytes of an operation name
	MaxPayload   = 32 << 10                  // bytes of a timer's payload (it is kept in the store)
	MaxDelay     = 10 * 365 * 24 * time.Hour // of after and of every
	maxDelayMS   = int64(MaxDelay / time.Millisecond)
)

// validName reports why s cannot be a timer name, or "" if it can: 1 to
// MaxName bytes of UTF-8 without control characters (it is a store key and
// appears in logs).
func validName(s string) string {
	if s == "" {
		return "empty"
	}
	if len(s) > MaxName {
		return "longer than " + strconv.Itoa(MaxName) + " bytes"
	}
	if !utf8.ValidString(s) {
		return "not UTF-8"
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			return "want no control characters, got " + strconv.QuoteToASCII(s)
		}
	}
	return ""
}

// validOperation reports why s cannot be an operation name, or "" if it can.
func validOperation(s string) string {
	if s == "" {
		return "empty"
	}
	if len(s) > MaxOperation {
		return "longer than " + strconv.Itoa(MaxOperation) + " bytes"
	}
	if !utf8.ValidString(s) {
		return "not UTF-8"
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			return "want no spaces or control characters, got " + strconv.QuoteToASCII(s)
		}
	}
	return ""
}

// Encoding. Integers are written in their shortest form; the encoder writes
// to a bytes.Buffer, which does not fail.

func encodeMap(n int, fields func(e *msgpack.Encoder) error) ([]byte, error) {
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	if err := errors.Join(e.EncodeMapLen(n), fields(e)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encodeBytes(e *msgpack.Encoder, b []byte) error {
	if b == nil {
		return e.EncodeNil()
	}
	return e.EncodeBytes(b)
}

// encodeTick encodes {name, time, payload}: what a firing sends the actor.
func encodeTick(name string, due time.Time, payload []byte) ([]byte, error) {
	return encodeMap(3, func(e *msgpack.Encoder) error {
		return errors.Join(
			e.EncodeString(keyName), e.EncodeString(name),
			e.EncodeString(keyTime), e.EncodeInt(due.UnixNano()),
			e.EncodeString(keyPayload), encodeBytes(e, payload))
	})
}

func encodeCancelResponse(existed bool) ([]byte, error) {
	return encodeMap(1, func(e *msgpack.Encoder) error {
		return errors.Join(e.EncodeString(keyExisted), e.EncodeBool(existed))
	})
}

// timerInfo is one timer as List reports it.
type timerInfo struct {
	Name      string
	Operation string
	Next      time.Time     // when it fires next
	Every     time.Duration // 0: a one-shot timer
}

func encodeListResponse(timers []timerInfo) ([]byte, error) {
	return encodeMap(1, func(e *msgpack.Encoder) error {
		errs := []error{e.EncodeString(keyTimers), e.EncodeArrayLen(len(timers))}
		for _, t := range timers {
			errs = append(errs,
				e.EncodeMapLen(4),
				e.EncodeString(keyName), e.EncodeString(t.Name),
				e.EncodeString(keyOperation), e.EncodeString(t.Operation),
				e.EncodeString(keyNext), e.EncodeInt(t.Next.UnixNano()),
				e.EncodeString(keyEvery), e.EncodeInt(t.Every.Milliseconds()))
		}
		return errors.Join(errs...)
	})
}

// record is a timer as the store keeps it (kind "timer", id its name):
// {operation, every: ms, payload, due: Unix ns}. due is the first time the
// timer fell due when it was set; a periodic timer's ticks fall on
// due + k·every, so the record is written once per Set, not once per tick.
type record struct {
	operation string
	every     time.Duration
	payload   []byte
	due       time.Time
}

func (r record) encode() ([]byte, error) {
	return encodeMap(4, func(e *msgpack.Encoder) error {
		return errors.Join(
			e.EncodeString(keyOperation), e.EncodeString(r.operation),
			e.EncodeString(keyEvery), e.EncodeInt(r.every.Milliseconds()),
			e.EncodeString(keyPayload), encodeBytes(e, r.payload),
			e.EncodeString(keyDue), e.EncodeInt(r.due.UnixNano()))
	})
}

// decodeRecord decodes a stored timer. The store is the host's own, but a
// record that does not decode is refused rather than trusted.
func decodeRecord(b []byte) (record, error) {
	var r record
	err := decodeMap("stored timer", b, []string{keyOperation, keyEvery, keyPayload, keyDue}, nil, func(d *fieldDecoder, key string) {
		switch key {
		case keyOperation:
			r.operation = d.operation()
		case keyEvery:
			if r.every = d.millis(); r.every > 0 && r.every < capabilities.MinSchedulePeriod {
				d.fail("below the minimum period")
			}
		case keyPayload:
			r.payload = d.payload()
		case keyDue:
			r.due = time.Unix(0, d.int64())
		}
	})
	return r, err
}

// Decoding.

// maxKey bounds the map keys a decoder reads; every real key is shorter.
const maxKey = 32

// decodeMap decodes b as a map whose keys are among required and optional,
// with every required key present, calling field for each key with the
// decoder positioned on its value. field reports a bad value with d.fail;
// decodeMap turns the first failure into a *PayloadError.
func decodeMap(op string, b []byte, required, optional []string, field func(d *fieldDecoder, key string)) error {
	bad := func(key, reason string) error { return &PayloadError{Op: op, Field: key, Reason: reason} }
	if len(b) == 0 {
		return bad("", "empty")
	}
	if err := capabilities.CheckMsgpack(b, capabilities.MaxPayloadDepth); err != nil {
		return bad("", err.Error())
	}
	in := bytes.NewReader(b) // an io.ByteScanner: the decoder reads it directly, no buffering
	d := &fieldDecoder{dec: msgpack.NewDecoder(in)}
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
	fields := append(append([]string(nil), required...), optional...)
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
	for i := range required {
		if !seen[i] {
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

// str reads a msgpack str of at most limit bytes.
func (d *fieldDecoder) str(limit int) (string, string) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return "", "truncated"
	}
	if !msgpcode.IsString(c) {
		return "", "want a string, got " + typeName(c)
	}
	b, reason := d.raw(limit)
	return string(b), reason
}

// raw reads the bytes of a str or bin of at most limit bytes.
func (d *fieldDecoder) raw(limit int) ([]byte, string) {
	n, err := d.dec.DecodeBytesLen()
	if err != nil {
		return nil, readReason(err)
	}
	if n > limit {
		return nil, "longer than " + strconv.Itoa(limit) + " bytes"
	}
	buf := make([]byte, max(n, 0))
	if err := d.dec.ReadFull(buf); err != nil {
		return nil, "truncated"
	}
	return buf, ""
}

func (d *fieldDecoder) name() string {
	s, reason := d.str(MaxName)
	if reason == "" {
		reason = validName(s)
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

// payload reads a bin or a str (what some encoders make of bytes), or nil.
func (d *fieldDecoder) payload() []byte {
	c, err := d.dec.PeekCode()
	if err != nil {
		d.fail("truncated")
		return nil
	}
	if c == msgpcode.Nil {
		_ = d.dec.Skip()
		return nil
	}
	if !msgpcode.IsBin(c) && !msgpcode.IsString(c) {
		d.fail("want binary, a string or nil, got " + typeName(c))
		return nil
	}
	b, reason := d.raw(MaxPayload)
	if reason != "" {
		d.fail(reason)
		return nil
	}
	return b
}

// millis reads a duration in milliseconds: an integer from 0 to MaxDelay,
// or nil for 0.
func (d *fieldDecoder) millis() time.Duration {
	c, err := d.dec.PeekCode()
	if err != nil {
		d.fail("truncated")
		return 0
	}
	if c == msgpcode.Nil {
		_ = d.dec.Skip()
		return 0
	}
	if !isInt(c) {
		d.fail("want an integer number of milliseconds, got " + typeName(c))
		return 0
	}
	n, ok := d.integer()
	switch {
	case !ok:
		return 0
	case n < 0:
		d.fail("want 0 or more milliseconds, got " + strconv.FormatInt(n, 10))
		return 0
	case n > maxDelayMS:
		d.fail("want at most " + strconv.FormatInt(maxDelayMS, 10) + " milliseconds (10 years), got " + strconv.FormatInt(n, 10))
		return 0
	}
	return time.Duration(n) * time.Millisecond
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
			d.fail(readReason(err))
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
	return "malformed"
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
	return "invalid code 0x" + strconv.FormatUint(uint64(c), 16)
}
