package wasmcloud

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// maxDepth bounds the nesting of values skipped as unknown fields. No shape
// here nests deeper than 3; the bound keeps garbage from recursing far.
const maxDepth = 32

// maxPrealloc caps the capacity reserved from a declared length; longer
// lists and maps grow as their elements actually decode.
const maxPrealloc = 256

// Prefix bytes of later wasmbus-rpc releases (wasmCloud/weld
// rpc-rs/src/common.rs, MessageFormat::write_header and message_format): a
// payload of two or more bytes starting with 0xc1 is msgpack after the
// prefix; starting with 0x7f it is CBOR. Neither byte begins a legal
// multi-byte msgpack payload (0xc1 is unused by msgpack; a lone fixint 0x7f
// is a whole value).
const (
	prefixMsgpack = 0xc1
	prefixCBOR    = 0x7f
)

// field is one entry of a struct's msgpack map.
type field struct {
	key string
	// aliases are other keys accepted when decoding, each with a public
	// source noted where the field is declared.
	aliases  []string
	required bool
	// omitEmpty leaves the entry out when encoding a zero value, as
	// wasmbus-rpc does for Option fields (skip_serializing_if).
	omitEmpty bool
	// ptr is *string, *[]byte, *bool, *int32, *int64, *uint16, *uint32,
	// *uint64, *[]string, *map[string][]string or *map[string]string.
	ptr any
}

// decodeOpts are the per-shape decoding allowances.
type decodeOpts struct {
	// trailingZero accepts exactly one 0x00 after the value (the
	// AssemblyScript response quirk; see the package comment).
	trailingZero bool
}

// reader is a bounds-checked msgpack reader over a payload.
type reader struct {
	b     []byte
	off   int
	shape string
}

// maxFieldInError bounds how much of a guest-chosen key an error repeats.
const maxFieldInError = 64

func (r *reader) errf(field, format string, args ...any) error {
	if len(field) > maxFieldInError {
		field = strings.ToValidUTF8(field[:maxFieldInError], "") + "…"
	}
	return &PayloadError{Shape: r.shape, Field: field, Reason: fmt.Sprintf(format, args...)}
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) peek(field string) (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.errf(field, "payload ends early")
	}
	return r.b[r.off], nil
}

func (r *reader) byte(field string) (byte, error) {
	c, err := r.peek(field)
	if err == nil {
		r.off++
	}
	return c, err
}

// take returns the next n bytes without copying them.
func (r *reader) take(field string, n uint64) ([]byte, error) {
	if n > uint64(r.remaining()) {
		return nil, r.errf(field, "payload ends early: %d bytes declared, %d left", n, r.remaining())
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

// uintN reads an n-byte big-endian unsigned integer (n is 1, 2, 4 or 8).
func (r *reader) uintN(field string, n int) (uint64, error) {
	s, err := r.take(field, uint64(n))
	if err != nil {
		return 0, err
	}
	switch n {
	case 1:
		return uint64(s[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(s)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(s)), nil
	}
	return binary.BigEndian.Uint64(s), nil
}

// kindOf names a msgpack type code for error messages.
func kindOf(c byte) string {
	switch {
	case c <= msgpcode.PosFixedNumHigh || c >= msgpcode.NegFixedNumLow:
		return "int"
	case msgpcode.IsFixedMap(c), c == msgpcode.Map16, c == msgpcode.Map32:
		return "map"
	case msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		return "array"
	case msgpcode.IsFixedString(c), c == msgpcode.Str8, c == msgpcode.Str16, c == msgpcode.Str32:
		return "str"
	}
	switch c {
	case msgpcode.Nil:
		return "nil"
	case msgpcode.False, msgpcode.True:
		return "bool"
	case msgpcode.Bin8, msgpcode.Bin16, msgpcode.Bin32:
		return "bin"
	case msgpcode.Float, msgpcode.Double:
		return "float"
	case msgpcode.Uint8, msgpcode.Uint16, msgpcode.Uint32, msgpcode.Uint64,
		msgpcode.Int8, msgpcode.Int16, msgpcode.Int32, msgpcode.Int64:
		return "int"
	case msgpcode.FixExt1, msgpcode.FixExt2, msgpcode.FixExt4, msgpcode.FixExt8, msgpcode.FixExt16,
		msgpcode.Ext8, msgpcode.Ext16, msgpcode.Ext32:
		return "ext"
	}
	return "invalid code 0x" + strconv.FormatUint(uint64(c), 16)
}

// nilNext consumes a nil and reports whether there was one.
func (r *reader) nilNext(field string) (bool, error) {
	c, err := r.peek(field)
	if err != nil {
		return false, err
	}
	if c == msgpcode.Nil {
		r.off++
		return true, nil
	}
	return false, nil
}

// strOrBin reads the header of a str (and, when bin is set, also a bin) and
// returns the data that follows.
func (r *reader) strOrBin(field string, bin bool) ([]byte, error) {
	c, err := r.byte(field)
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case msgpcode.IsFixedString(c):
		n = uint64(c & msgpcode.FixedStrMask)
	case c == msgpcode.Str8 || bin && c == msgpcode.Bin8:
		n, err = r.uintN(field, 1)
	case c == msgpcode.Str16 || bin && c == msgpcode.Bin16:
		n, err = r.uintN(field, 2)
	case c == msgpcode.Str32 || bin && c == msgpcode.Bin32:
		n, err = r.uintN(field, 4)
	default:
		want := "str"
		if bin {
			want = "bin"
		}
		return nil, r.errf(field, "want %s, got %s", want, kindOf(c))
	}
	if err != nil {
		return nil, err
	}
	return r.take(field, n)
}

func (r *reader) str(field string) (string, error) {
	if isNil, err := r.nilNext(field); isNil || err != nil {
		return "", err
	}
	s, err := r.strOrBin(field, false)
	return string(s), err
}

// bin reads a bin; a str is accepted too (rmp-serde's serde_bytes reads
// either), and nil reads as no bytes.
func (r *reader) bin(field string) ([]byte, error) {
	if isNil, err := r.nilNext(field); isNil || err != nil {
		return nil, err
	}
	s, err := r.strOrBin(field, true)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(s), nil
}

func (r *reader) bool(field string) (bool, error) {
	c, err := r.byte(field)
	if err != nil {
		return false, err
	}
	switch c {
	case msgpcode.False, msgpcode.Nil:
		return false, nil
	case msgpcode.True:
		return true, nil
	}
	return false, r.errf(field, "want bool, got %s", kindOf(c))
}

// integer reads any msgpack integer. It returns the value as u when it is
// non-negative and as i when it is negative.
func (r *reader) integer(field string) (u uint64, i int64, neg bool, err error) {
	c, err := r.byte(field)
	if err != nil {
		return 0, 0, false, err
	}
	switch {
	case c <= msgpcode.PosFixedNumHigh:
		return uint64(c), 0, false, nil
	case c >= msgpcode.NegFixedNumLow:
		return 0, int64(int8(c)), true, nil
	}
	var n int
	signed := false
	switch c {
	case msgpcode.Nil:
		return 0, 0, false, nil
	case msgpcode.Uint8:
		n = 1
	case msgpcode.Uint16:
		n = 2
	case msgpcode.Uint32:
		n = 4
	case msgpcode.Uint64:
		n = 8
	case msgpcode.Int8:
		n, signed = 1, true
	case msgpcode.Int16:
		n, signed = 2, true
	case msgpcode.Int32:
		n, signed = 4, true
	case msgpcode.Int64:
		n, signed = 8, true
	default:
		return 0, 0, false, r.errf(field, "want int, got %s", kindOf(c))
	}
	v, err := r.uintN(field, n)
	if err != nil || !signed {
		return v, 0, false, err
	}
	var s int64
	switch n {
	case 1:
		s = int64(int8(v))
	case 2:
		s = int64(int16(v))
	case 4:
		s = int64(int32(v))
	default:
		s = int64(v)
	}
	if s >= 0 {
		return uint64(s), 0, false, nil
	}
	return 0, s, true, nil
}

// signed reads an integer in [lo, hi].
func (r *reader) signed(field string, lo, hi int64) (int64, error) {
	u, i, neg, err := r.integer(field)
	if err != nil {
		return 0, err
	}
	if neg {
		if i < lo {
			return 0, r.errf(field, "%d is out of range [%d, %d]", i, lo, hi)
		}
		return i, nil
	}
	if u > uint64(hi) {
		return 0, r.errf(field, "%d is out of range [%d, %d]", u, lo, hi)
	}
	return int64(u), nil
}

// unsigned reads an integer in [0, hi].
func (r *reader) unsigned(field string, hi uint64) (uint64, error) {
	u, i, neg, err := r.integer(field)
	if err != nil {
		return 0, err
	}
	if neg || u > hi {
		v := strconv.FormatUint(u, 10)
		if neg {
			v = strconv.FormatInt(i, 10)
		}
		return 0, r.errf(field, "%s is out of range [0, %d]", v, hi)
	}
	return u, nil
}

// containerLen reads an array or map header; each element (map entry) takes
// at least min bytes, so a length the payload cannot hold is refused before
// anything is allocated for it. Nil reads as -1.
func (r *reader) containerLen(field string, isMap bool) (int, error) {
	c, err := r.byte(field)
	if err != nil {
		return 0, err
	}
	var n uint64
	want, min := "array", uint64(1)
	if isMap {
		want, min = "map", 2
	}
	switch {
	case c == msgpcode.Nil:
		return -1, nil
	case !isMap && msgpcode.IsFixedArray(c):
		n = uint64(c & msgpcode.FixedArrayMask)
	case isMap && msgpcode.IsFixedMap(c):
		n = uint64(c & msgpcode.FixedMapMask)
	case !isMap && c == msgpcode.Array16, isMap && c == msgpcode.Map16:
		n, err = r.uintN(field, 2)
	case !isMap && c == msgpcode.Array32, isMap && c == msgpcode.Map32:
		n, err = r.uintN(field, 4)
	default:
		return 0, r.errf(field, "want %s, got %s", want, kindOf(c))
	}
	if err != nil {
		return 0, err
	}
	if n > uint64(r.remaining())/min {
		return 0, r.errf(field, "payload ends early: %s of %d declared, %d bytes left", want, n, r.remaining())
	}
	return int(n), nil
}

func (r *reader) strings(field string) ([]string, error) {
	n, err := r.containerLen(field, false)
	if err != nil || n < 0 {
		return nil, err
	}
	out := make([]string, 0, min(n, maxPrealloc))
	for i := range n {
		s, err := r.str(field + "[" + strconv.Itoa(i) + "]")
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// headerLists reads map<string, list<string>>.
func (r *reader) headerLists(field string) (map[string][]string, error) {
	n, err := r.containerLen(field, true)
	if err != nil || n < 0 {
		return nil, err
	}
	out := make(map[string][]string, min(n, maxPrealloc))
	for range n {
		k, err := r.str(field + " key")
		if err != nil {
			return nil, err
		}
		v, err := r.strings(field + "[" + k + "]")
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// headerStrings reads map<string, string>.
func (r *reader) headerStrings(field string) (map[string]string, error) {
	n, err := r.containerLen(field, true)
	if err != nil || n < 0 {
		return nil, err
	}
	out := make(map[string]string, min(n, maxPrealloc))
	for range n {
		k, err := r.str(field + " key")
		if err != nil {
			return nil, err
		}
		v, err := r.str(field + "[" + k + "]")
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// skip passes over one value of any type.
func (r *reader) skip(field string, depth int) error {
	c, err := r.byte(field)
	if err != nil {
		return err
	}
	var n uint64 // bytes of data after the header
	switch {
	case c <= msgpcode.PosFixedNumHigh || c >= msgpcode.NegFixedNumLow:
		return nil
	case msgpcode.IsFixedString(c):
		n = uint64(c & msgpcode.FixedStrMask)
	case msgpcode.IsFixedMap(c), c == msgpcode.Map16, c == msgpcode.Map32,
		msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		if depth >= maxDepth {
			return r.errf(field, "nested deeper than %d", maxDepth)
		}
		r.off--
		isMap := kindOf(c) == "map"
		k, err := r.containerLen(field, isMap)
		if err != nil {
			return err
		}
		if isMap {
			k *= 2
		}
		for range k {
			if err := r.skip(field, depth+1); err != nil {
				return err
			}
		}
		return nil
	default:
		switch c {
		case msgpcode.Nil, msgpcode.False, msgpcode.True:
			return nil
		case msgpcode.Uint8, msgpcode.Int8:
			n = 1
		case msgpcode.Uint16, msgpcode.Int16:
			n = 2
		case msgpcode.Uint32, msgpcode.Int32, msgpcode.Float:
			n = 4
		case msgpcode.Uint64, msgpcode.Int64, msgpcode.Double:
			n = 8
		case msgpcode.FixExt1:
			n = 1 + 1
		case msgpcode.FixExt2:
			n = 1 + 2
		case msgpcode.FixExt4:
			n = 1 + 4
		case msgpcode.FixExt8:
			n = 1 + 8
		case msgpcode.FixExt16:
			n = 1 + 16
		case msgpcode.Str8, msgpcode.Bin8, msgpcode.Ext8:
			n, err = r.uintN(field, 1)
		case msgpcode.Str16, msgpcode.Bin16, msgpcode.Ext16:
			n, err = r.uintN(field, 2)
		case msgpcode.Str32, msgpcode.Bin32, msgpcode.Ext32:
			n, err = r.uintN(field, 4)
		default:
			return r.errf(field, "%s", kindOf(c))
		}
		if err != nil {
			return err
		}
		if c == msgpcode.Ext8 || c == msgpcode.Ext16 || c == msgpcode.Ext32 {
			n++ // the ext type byte
		}
	}
	_, err = r.take(field, n)
	return err
}

// value decodes one value into ptr (see field.ptr for the types).
func (r *reader) value(field string, ptr any) error {
	var err error
	switch p := ptr.(type) {
	case *string:
		*p, err = r.str(field)
	case *[]byte:
		*p, err = r.bin(field)
	case *bool:
		*p, err = r.bool(field)
	case *int32:
		var v int64
		v, err = r.signed(field, math.MinInt32, math.MaxInt32)
		*p = int32(v)
	case *int64:
		*p, err = r.signed(field, math.MinInt64, math.MaxInt64)
	case *uint16:
		var v uint64
		v, err = r.unsigned(field, math.MaxUint16)
		*p = uint16(v)
	case *uint32:
		var v uint64
		v, err = r.unsigned(field, math.MaxUint32)
		*p = uint32(v)
	case *uint64:
		*p, err = r.unsigned(field, math.MaxUint64)
	case *[]string:
		*p, err = r.strings(field)
	case *map[string][]string:
		*p, err = r.headerLists(field)
	case *map[string]string:
		*p, err = r.headerStrings(field)
	default:
		panic(fmt.Sprintf("wasmcloud: field %s has unsupported type %T", field, ptr)) // a bug in this package, not input
	}
	return err
}

// start checks the framing of a payload and returns a reader positioned at
// its value.
func start(shape string, b []byte, opts decodeOpts) (*reader, error) {
	r := &reader{b: b, shape: shape}
	if len(b) == 0 {
		return nil, r.errf("", "empty payload")
	}
	if len(b) >= 2 {
		switch b[0] {
		case prefixMsgpack:
			r.off = 1
		case prefixCBOR:
			if !(opts.trailingZero && len(b) == 2 && b[1] == 0) {
				return nil, r.errf("", "CBOR payload (0x7f prefix) is not supported")
			}
		}
	}
	return r, nil
}

// finish checks that nothing but an allowed trailing zero follows the value.
func (r *reader) finish(opts decodeOpts) error {
	rest := r.remaining()
	if rest == 0 || opts.trailingZero && rest == 1 && r.b[r.off] == 0 {
		return nil
	}
	return r.errf("", "%d bytes after the value", rest)
}

// decodeStruct decodes a msgpack map into fields. A nil payload value is a
// struct of zero values (subject to the required fields).
func decodeStruct(shape string, b []byte, opts decodeOpts, fields []field) error {
	r, err := start(shape, b, opts)
	if err != nil {
		return err
	}
	n, err := r.containerLen("", true)
	if err != nil {
		return err
	}
	seen := make([]bool, len(fields))
	for range n {
		k, err := r.str("(key)")
		if err != nil {
			return err
		}
		i := slices.IndexFunc(fields, func(f field) bool { return f.key == k || slices.Contains(f.aliases, k) })
		if i < 0 {
			if err := r.skip(k, 1); err != nil {
				return err
			}
			continue
		}
		if err := r.value(fields[i].key, fields[i].ptr); err != nil {
			return err
		}
		seen[i] = true
	}
	if err := r.finish(opts); err != nil {
		return err
	}
	for i, f := range fields {
		if f.required && !seen[i] {
			return &PayloadError{Shape: shape, Field: f.key, Reason: "required field is missing"}
		}
	}
	return nil
}

// decodeBare decodes a payload that is a single non-struct value.
func decodeBare(shape string, b []byte, opts decodeOpts, ptr any) error {
	r, err := start(shape, b, opts)
	if err != nil {
		return err
	}
	if err := r.value("", ptr); err != nil {
		return err
	}
	return r.finish(opts)
}

// writer encodes with msgpack/v5, which writes integers and lengths in
// their shortest form, as rmp-serde and the wapc/wasmcloud msgpack
// libraries do.
type writer struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
	err error
}

func newWriter() *writer {
	w := &writer{}
	w.enc = msgpack.NewEncoder(&w.buf)
	return w
}

func (w *writer) check(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *writer) bytes() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	return w.buf.Bytes(), nil
}

// value encodes one value (see field.ptr for the types). Byte slices are
// always bin, never nil: the Rust decoders (serde_bytes) refuse nil.
func (w *writer) value(ptr any) {
	e := w.enc
	switch p := ptr.(type) {
	case *string:
		w.check(e.EncodeString(*p))
	case *[]byte:
		if *p == nil {
			w.check(e.EncodeBytes([]byte{}))
		} else {
			w.check(e.EncodeBytes(*p))
		}
	case *bool:
		w.check(e.EncodeBool(*p))
	case *int32:
		w.check(e.EncodeInt(int64(*p)))
	case *int64:
		w.check(e.EncodeInt(*p))
	case *uint16:
		w.check(e.EncodeUint(uint64(*p)))
	case *uint32:
		w.check(e.EncodeUint(uint64(*p)))
	case *uint64:
		w.check(e.EncodeUint(*p))
	case *[]string:
		w.strings(*p)
	case *map[string][]string:
		keys := sortedKeys(*p)
		w.check(e.EncodeMapLen(len(keys)))
		for _, k := range keys {
			w.check(e.EncodeString(k))
			w.strings((*p)[k])
		}
	case *map[string]string:
		keys := sortedKeys(*p)
		w.check(e.EncodeMapLen(len(keys)))
		for _, k := range keys {
			w.check(e.EncodeString(k))
			w.check(e.EncodeString((*p)[k]))
		}
	default:
		panic(fmt.Sprintf("wasmcloud: unsupported type %T", ptr)) // a bug in this package, not input
	}
}

func (w *writer) strings(s []string) {
	w.check(w.enc.EncodeArrayLen(len(s)))
	for _, v := range s {
		w.check(w.enc.EncodeString(v))
	}
}

// sortedKeys makes map encodings deterministic (byte-identical for equal
// values), which the golden tests and any caching of payloads rely on.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func isZero(ptr any) bool {
	switch p := ptr.(type) {
	case *string:
		return *p == ""
	case *[]byte:
		return len(*p) == 0
	case *bool:
		return !*p
	}
	return false
}

// encodeStruct writes fields as a msgpack map, in the order given (the
// order of the model), leaving out empty omitEmpty fields.
func encodeStruct(fields []field) ([]byte, error) {
	n := 0
	for _, f := range fields {
		if !(f.omitEmpty && isZero(f.ptr)) {
			n++
		}
	}
	w := newWriter()
	w.check(w.enc.EncodeMapLen(n))
	for _, f := range fields {
		if f.omitEmpty && isZero(f.ptr) {
			continue
		}
		w.check(w.enc.EncodeString(f.key))
		w.value(f.ptr)
	}
	return w.bytes()
}

// encodeBare writes a single non-struct value.
func encodeBare(ptr any) ([]byte, error) {
	w := newWriter()
	w.value(ptr)
	return w.bytes()
}

// errEra is the error for an era a shape does not exist in: a bug in the
// caller, not bad input, so it does not wrap ErrBadPayload.
func errEra(shape string, e Era) error {
	return fmt.Errorf("wasmcloud: %s has no form in era %s", shape, e)
}
