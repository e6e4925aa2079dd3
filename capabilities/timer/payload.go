package timer

// The decoders here are for untrusted guest memory: they never panic,
// reject trailing bytes, and fail with a *PayloadError that names the field.
// payload may be bin or str (what some encoders make of bytes); List
// accepts an empty map, nil or no bytes at all.

import (
	"bytes"
	"errors"
	"strconv"
	"time"
	"unicode"

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

// PayloadError is a payload that does not decode: its Package is "timer",
// its Op the operation, or "stored timer". It unwraps to
// capabilities.ErrBadPayload.
type PayloadError = capabilities.PayloadError

// setRequest is the input of Set, validated.
type setRequest struct {
	name, operation string
	after, every    time.Duration
	payload         []byte // nil: none
}

func decodeSet(b []byte) (setRequest, error) {
	var r setRequest
	err := decodeMap(OpSet, b, []string{keyName, keyOperation}, []string{keyAfter, keyEvery, keyPayload}, func(d *capabilities.FieldDecoder, key string) {
		switch key {
		case keyName:
			r.name, _ = d.String(MaxName, validName)
		case keyOperation:
			r.operation, _ = d.String(MaxOperation, validOperation)
		case keyAfter:
			r.after = millis(d)
		case keyEvery:
			if r.every = millis(d); r.every > 0 && r.every < capabilities.MinSchedulePeriod {
				d.Fail("want 0 (a one-shot timer) or at least " + strconv.FormatInt(capabilities.MinSchedulePeriod.Milliseconds(), 10) +
					" ms, got " + strconv.FormatInt(r.every.Milliseconds(), 10))
			}
		case keyPayload:
			r.payload = payload(d)
		}
	})
	if err != nil {
		return setRequest{}, err
	}
	return r, nil
}

func decodeCancel(b []byte) (string, error) {
	var name string
	err := decodeMap(OpCancel, b, []string{keyName}, nil, func(d *capabilities.FieldDecoder, key string) {
		name, _ = d.String(MaxName, validName)
	})
	return name, err
}

func decodeList(b []byte) error {
	if len(b) == 0 || len(b) == 1 && b[0] == msgpcode.Nil {
		return nil
	}
	return decodeMap(OpList, b, nil, nil, func(*capabilities.FieldDecoder, string) {})
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
	return capabilities.ValidText(s, MaxName, unicode.IsControl, "no control characters")
}

// validOperation reports why s cannot be an operation name, or "" if it can.
func validOperation(s string) string {
	return capabilities.ValidText(s, MaxOperation, func(r rune) bool {
		return r == ' ' || unicode.IsControl(r)
	}, "no spaces or control characters")
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
	err := decodeMap("stored timer", b, []string{keyOperation, keyEvery, keyPayload, keyDue}, nil, func(d *capabilities.FieldDecoder, key string) {
		switch key {
		case keyOperation:
			r.operation, _ = d.String(MaxOperation, validOperation)
		case keyEvery:
			if r.every = millis(d); r.every > 0 && r.every < capabilities.MinSchedulePeriod {
				d.Fail("below the minimum period")
			}
		case keyPayload:
			r.payload = payload(d)
		case keyDue:
			n, _ := d.Int64()
			r.due = time.Unix(0, n)
		}
	})
	return r, err
}

// Decoding: capabilities.DecodeStrictMap after CheckMsgpack.

// decodeMap decodes b as a map whose keys are among required and optional,
// with every required key present (see capabilities.DecodeStrictMap).
func decodeMap(op string, b []byte, required, optional []string, field func(d *capabilities.FieldDecoder, key string)) error {
	if len(b) == 0 {
		return &PayloadError{Package: "timer", Op: op, Reason: "empty"}
	}
	if err := capabilities.CheckMsgpack(b, capabilities.MaxPayloadDepth); err != nil {
		return &PayloadError{Package: "timer", Op: op, Reason: err.Error()}
	}
	return capabilities.DecodeStrictMap("timer", op, b, required, optional, field)
}

// payload reads a bin or a str (what some encoders make of bytes), or nil.
func payload(d *capabilities.FieldDecoder) []byte {
	if d.Nil() {
		return nil
	}
	k, ok := d.Peek()
	if !ok {
		return nil
	}
	if k != capabilities.KindBinary && k != capabilities.KindString {
		d.Fail("want binary, a string or nil, got " + k.String())
		return nil
	}
	b, _ := d.Bytes(MaxPayload)
	return b
}

// millis reads a duration in milliseconds: an integer from 0 to MaxDelay,
// or nil for 0.
func millis(d *capabilities.FieldDecoder) time.Duration {
	if d.Nil() {
		return 0
	}
	k, ok := d.Peek()
	if !ok {
		return 0
	}
	if k != capabilities.KindInt {
		d.Fail("want an integer number of milliseconds, got " + k.String())
		return 0
	}
	n, ok := d.Int64()
	switch {
	case !ok:
		return 0
	case n < 0:
		d.Fail("want 0 or more milliseconds, got " + strconv.FormatInt(n, 10))
		return 0
	case n > maxDelayMS:
		d.Fail("want at most " + strconv.FormatInt(maxDelayMS, 10) + " milliseconds (10 years), got " + strconv.FormatInt(n, 10))
		return 0
	}
	return time.Duration(n) * time.Millisecond
}
