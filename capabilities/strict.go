package capabilities

import (
	"bytes"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Strict decoding of the native contracts' payloads, which come from
// untrusted guest memory: a msgpack map with known string keys, each value
// read by a typed reader, every failure a *PayloadError that names the
// field. Contract packages (gpio, timer) build their decoders on
// DecodeStrictMap.

// maxStrictKey bounds the map keys DecodeStrictMap reads; every contract
// key is shorter.
const maxStrictKey = 32

// PayloadError is a native contract's payload that does not decode. It
// unwraps to ErrBadPayload.
type PayloadError struct {
	Package string // the contract's package, which starts the message: "gpio"
	Op      string // the operation, or what else the payload is
	Field   string // the map key at fault, quoted if unknown; "" for the payload as a whole
	Reason  string
}

// Error says which package, operation and field, and why.
func (e *PayloadError) Error() string {
	if e.Field == "" {
		return e.Package + ": " + e.Op + " payload: " + e.Reason
	}
	return e.Package + ": " + e.Op + " payload: " + e.Field + ": " + e.Reason
}

// Unwrap returns ErrBadPayload.
func (e *PayloadError) Unwrap() error { return ErrBadPayload }

// DecodeStrictMap decodes b, the payload of operation op of package pkg, as
// one msgpack map whose keys are strings among required and optional:
// every required key present, no key repeated or unknown, nothing after the
// map. It calls field once per key with d positioned on the key's value;
// field reads that value with one of d's readers and reports a bad one with
// d.Fail. The first failure ends the decoding and is returned as a
// *PayloadError.
//
// It never panics and never recurses (an unknown key fails before its value
// is read), and it allocates at most a reader's limit per value however
// long a length b declares, so it needs no CheckMsgpack first.
func DecodeStrictMap(pkg, op string, b []byte, required, optional []string, field func(d *FieldDecoder, key string)) error {
	in := bytes.NewReader(b) // an io.ByteScanner: the decoder reads it directly, no buffering
	d := &FieldDecoder{dec: msgpack.NewDecoder(in)}
	bad := func(key, reason string) error { return &PayloadError{Package: pkg, Op: op, Field: key, Reason: reason} }

	c, err := d.dec.PeekCode()
	if err != nil {
		return bad("", "empty")
	}
	if k := kindOf(c); k != KindMap {
		return bad("", "want a map, got "+k.String())
	}
	n, err := d.dec.DecodeMapLen()
	if err != nil {
		return bad("", "truncated")
	}
	seen := make([]bool, len(required)+len(optional))
	for range uint32(n) { // a map32 length, negative in a 32-bit int
		key, reason := d.str(maxStrictKey)
		if reason != "" {
			return bad("", "map key: "+reason)
		}
		i := slices.Index(required, key)
		if i < 0 {
			if j := slices.Index(optional, key); j >= 0 {
				i = len(required) + j
			}
		}
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
	for i, key := range required {
		if !seen[i] {
			return bad(key, "missing")
		}
	}
	if in.Len() > 0 {
		return bad("", strconv.Itoa(in.Len())+" trailing bytes after the map")
	}
	return nil
}

// FieldDecoder reads the value of one map field for DecodeStrictMap and
// keeps the first reason it is bad. Its readers return false, and a zero
// value, once they refuse the value.
type FieldDecoder struct {
	dec    *msgpack.Decoder
	reason string
}

// Fail refuses the field's value for reason, unless it is refused already:
// the first reason is the one reported.
func (d *FieldDecoder) Fail(reason string) {
	if d.reason == "" {
		d.reason = reason
	}
}

// Peek returns the kind of the value without reading it, for a field that
// accepts more than one kind. It fails if there is no value.
func (d *FieldDecoder) Peek() (Kind, bool) {
	c, err := d.dec.PeekCode()
	if err != nil {
		d.Fail("truncated")
		return 0, false
	}
	return kindOf(c), true
}

// Nil reads the value if it is nil and reports whether it was. It reads
// nothing otherwise, and never fails: a missing value is left to the next
// reader.
func (d *FieldDecoder) Nil() bool {
	c, err := d.dec.PeekCode()
	if err != nil || c != msgpcode.Nil {
		return false
	}
	_ = d.dec.DecodeNil() // one byte, which PeekCode saw
	return true
}

// Bool reads a bool.
func (d *FieldDecoder) Bool() (bool, bool) {
	if !d.want(KindBool, "a bool") {
		return false, false
	}
	v, err := d.dec.DecodeBool()
	if err != nil {
		d.Fail(readReason(err))
		return false, false
	}
	return v, true
}

// Int64 reads an integer of any msgpack width that fits an int64.
func (d *FieldDecoder) Int64() (int64, bool) {
	if !d.want(KindInt, "an integer") {
		return 0, false
	}
	c, _ := d.dec.PeekCode() // want saw it
	if c == msgpcode.Uint64 {
		u, err := d.dec.DecodeUint64()
		if err != nil {
			d.Fail(readReason(err))
			return 0, false
		}
		if u > math.MaxInt64 {
			d.Fail("integer " + strconv.FormatUint(u, 10) + " out of range")
			return 0, false
		}
		return int64(u), true
	}
	n, err := d.dec.DecodeInt64()
	if err != nil {
		d.Fail(readReason(err))
		return 0, false
	}
	return n, true
}

// Float64 reads a float or an integer as a float64; NaN and infinities are
// refused.
func (d *FieldDecoder) Float64() (float64, bool) {
	k, ok := d.Peek()
	if !ok {
		return 0, false
	}
	var f float64
	switch k {
	case KindFloat:
		var err error
		if f, err = d.dec.DecodeFloat64(); err != nil {
			d.Fail(readReason(err))
			return 0, false
		}
	case KindInt:
		n, ok := d.Int64()
		if !ok {
			return 0, false
		}
		f = float64(n)
	default:
		d.Fail("want a number, got " + k.String())
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		d.Fail("want a finite number, got " + strconv.FormatFloat(f, 'g', -1, 64))
		return 0, false
	}
	return f, true
}

// String reads a str of at most limit bytes. If valid is not nil, it checks
// the string too: valid returns why the string is refused, or "".
func (d *FieldDecoder) String(limit int, valid func(string) string) (string, bool) {
	s, reason := d.str(limit)
	if reason == "" && valid != nil {
		reason = valid(s)
	}
	if reason != "" {
		d.Fail(reason)
		return "", false
	}
	return s, true
}

// Bytes reads the contents of a bin or a str (what some encoders make of
// bytes) of at most limit bytes. An empty value gives an empty slice, not
// nil.
func (d *FieldDecoder) Bytes(limit int) ([]byte, bool) {
	k, ok := d.Peek()
	if !ok {
		return nil, false
	}
	if k != KindBinary && k != KindString {
		d.Fail("want binary or a string, got " + k.String())
		return nil, false
	}
	b, reason := d.raw(limit)
	if reason != "" {
		d.Fail(reason)
		return nil, false
	}
	return b, true
}

// want fails unless the value is of kind k, which what names.
func (d *FieldDecoder) want(k Kind, what string) bool {
	got, ok := d.Peek()
	if ok && got != k {
		d.Fail("want " + what + ", got " + got.String())
		return false
	}
	return ok
}

// str reads a str of at most limit bytes, or says why it cannot.
func (d *FieldDecoder) str(limit int) (string, string) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return "", "truncated"
	}
	if k := kindOf(c); k != KindString {
		return "", "want a string, got " + k.String()
	}
	b, reason := d.raw(limit)
	return string(b), reason
}

// raw reads the contents of the str or bin the decoder is on, of at most
// limit bytes.
func (d *FieldDecoder) raw(limit int) ([]byte, string) {
	n, err := d.dec.DecodeBytesLen()
	if err != nil {
		return nil, readReason(err)
	}
	// A str32 or bin32 length above 2³¹ is negative in a 32-bit int.
	if n > limit || n < 0 {
		return nil, "longer than " + strconv.Itoa(limit) + " bytes"
	}
	buf := make([]byte, n)
	if err := d.dec.ReadFull(buf); err != nil {
		return nil, "truncated"
	}
	return buf, ""
}

// readReason says why the decoder could not read a value whose code it has
// checked: only the end of the input can stop it.
func readReason(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "truncated"
	}
	return "malformed"
}

// Kind is the type of a msgpack value, as the readers name it in errors.
type Kind uint8

// The kinds of msgpack values. KindInvalid is the one byte msgpack never
// uses, 0xc1.
const (
	KindInvalid Kind = iota
	KindNil
	KindBool
	KindInt
	KindFloat
	KindString
	KindBinary
	KindArray
	KindMap
	KindExt
)

// String names the kind: "integer", "string", "map" and so on.
func (k Kind) String() string {
	switch k {
	case KindNil:
		return "nil"
	case KindBool:
		return "bool"
	case KindInt:
		return "integer"
	case KindFloat:
		return "float"
	case KindString:
		return "string"
	case KindBinary:
		return "binary"
	case KindArray:
		return "array"
	case KindMap:
		return "map"
	case KindExt:
		return "extension"
	}
	return "invalid code 0xc1"
}

// kindOf is the kind of the value that code c starts.
func kindOf(c byte) Kind {
	switch {
	case c == msgpcode.Nil:
		return KindNil
	case c == msgpcode.True || c == msgpcode.False:
		return KindBool
	case msgpcode.IsFixedNum(c) || c >= msgpcode.Uint8 && c <= msgpcode.Uint64 || c >= msgpcode.Int8 && c <= msgpcode.Int64:
		return KindInt
	case c == msgpcode.Float || c == msgpcode.Double:
		return KindFloat
	case msgpcode.IsString(c):
		return KindString
	case msgpcode.IsBin(c):
		return KindBinary
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		return KindArray
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		return KindMap
	case msgpcode.IsExt(c):
		return KindExt
	}
	return KindInvalid
}

// ValidText reports why s cannot be a name of 1 to max bytes of UTF-8
// without a rune that refuse reports, or "" if it can. want says what
// refuse asks for, in the reason: "want " + want + ", got " + s quoted.
func ValidText(s string, max int, refuse func(rune) bool, want string) string {
	if s == "" {
		return "empty"
	}
	if len(s) > max {
		return "longer than " + strconv.Itoa(max) + " bytes"
	}
	if !utf8.ValidString(s) {
		return "not UTF-8"
	}
	for _, r := range s {
		if refuse(r) {
			return "want " + want + ", got " + strconv.QuoteToASCII(s)
		}
	}
	return ""
}
