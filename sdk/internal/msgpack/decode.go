package msgpack

import (
	"encoding/binary"
	"math"
	"strconv"
)

// Type is the kind of a msgpack value.
type Type uint8

// The msgpack types. Int covers the signed and unsigned encodings.
const (
	Invalid Type = iota // the reserved code 0xc1
	Nil
	Bool
	Int
	Float
	String
	Bin
	Array
	Map
	Ext
)

var typeNames = [...]string{"invalid code 0xc1", "nil", "bool", "int", "float", "str", "bin", "array", "map", "ext"}

// String names t as errors do.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "type " + strconv.Itoa(int(t))
}

// typeOf returns the type a value starting with code c has.
func typeOf(c byte) Type {
	switch {
	case c <= 0x7f, c >= 0xe0:
		return Int
	case c <= 0x8f:
		return Map
	case c <= 0x9f:
		return Array
	case c <= 0xbf:
		return String
	}
	switch c {
	case codeNil:
		return Nil
	case codeFalse, codeTrue:
		return Bool
	case codeBin8, codeBin16, codeBin32:
		return Bin
	case codeExt8, codeExt16, codeExt32, codeFixExt1, codeFixExt2, codeFixExt4, codeFixExt8, codeFixExt16:
		return Ext
	case codeFloat32, codeFloat64:
		return Float
	case codeUint8, codeUint16, codeUint32, codeUint64, codeInt8, codeInt16, codeInt32, codeInt64:
		return Int
	case codeStr8, codeStr16, codeStr32:
		return String
	case codeArray16, codeArray32:
		return Array
	case codeMap16, codeMap32:
		return Map
	}
	return Invalid // 0xc1
}

// Error is a payload that does not decode: truncated, of the wrong type or
// out of range. Offset is where the value at fault starts.
type Error struct {
	Offset int
	Reason string
}

func (e *Error) Error() string {
	return "msgpack: " + e.Reason + " at byte " + strconv.Itoa(e.Offset)
}

// Decoder reads msgpack values from a byte slice in order. Each method
// reads one value; on error the Decoder stays where it was, so that no
// half-read value is mistaken for the next. The zero Decoder has no input.
//
// A nil reads as the zero value of whatever is asked for (an empty string,
// no bytes, false, 0, an empty array or map): Go encoders write nil for
// empty slices and maps.
type Decoder struct {
	b   []byte
	off int
}

// NewDecoder returns a Decoder reading b. The Decoder does not modify b;
// the values it returns never alias it.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// Remaining returns the number of bytes not read yet.
func (d *Decoder) Remaining() int { return len(d.b) - d.off }

// End fails if bytes remain after the values read.
func (d *Decoder) End() error {
	if n := d.Remaining(); n > 0 {
		return d.errAt(d.off, strconv.Itoa(n)+" trailing bytes")
	}
	return nil
}

func (d *Decoder) errAt(off int, reason string) error {
	return &Error{Offset: off, Reason: reason}
}

// Peek returns the type of the next value without reading it.
func (d *Decoder) Peek() (Type, error) {
	if d.off >= len(d.b) {
		return Invalid, d.errAt(d.off, "payload ends early")
	}
	return typeOf(d.b[d.off]), nil
}

// wrong is the error for a value of type got where want was expected.
func (d *Decoder) wrong(want string) error {
	t, err := d.Peek()
	if err != nil {
		return err
	}
	return d.errAt(d.off, "want "+want+", got "+t.String())
}

// uintAt reads an n-byte big-endian unsigned integer at off (n is 1, 2, 4
// or 8) and reports whether the input holds it.
func (d *Decoder) uintAt(off, n int) (uint64, bool) {
	if off < 0 || n > len(d.b)-off {
		return 0, false
	}
	s := d.b[off : off+n]
	switch n {
	case 1:
		return uint64(s[0]), true
	case 2:
		return uint64(binary.BigEndian.Uint16(s)), true
	case 4:
		return uint64(binary.BigEndian.Uint32(s)), true
	}
	return binary.BigEndian.Uint64(s), true
}

// nilNext reads a nil if one is next.
func (d *Decoder) nilNext() bool {
	if d.off < len(d.b) && d.b[d.off] == codeNil {
		d.off++
		return true
	}
	return false
}

// Nil reads a nil if one is next and reports whether it did.
func (d *Decoder) Nil() bool { return d.nilNext() }

// Bool reads a bool.
func (d *Decoder) Bool() (bool, error) {
	if d.nilNext() {
		return false, nil
	}
	if d.off < len(d.b) {
		switch d.b[d.off] {
		case codeFalse:
			d.off++
			return false, nil
		case codeTrue:
			d.off++
			return true, nil
		}
	}
	return false, d.wrong("bool")
}

// integer reads any integer: as u when it is non-negative, as i when it is
// negative.
func (d *Decoder) integer() (u uint64, i int64, neg bool, err error) {
	if d.nilNext() {
		return 0, 0, false, nil
	}
	if d.off >= len(d.b) {
		return 0, 0, false, d.errAt(d.off, "payload ends early")
	}
	start := d.off
	c := d.b[start]
	switch {
	case c <= 0x7f:
		d.off++
		return uint64(c), 0, false, nil
	case c >= 0xe0:
		d.off++
		return 0, int64(int8(c)), true, nil
	}
	var n int
	signed := false
	switch c {
	case codeUint8:
		n = 1
	case codeUint16:
		n = 2
	case codeUint32:
		n = 4
	case codeUint64:
		n = 8
	case codeInt8:
		n, signed = 1, true
	case codeInt16:
		n, signed = 2, true
	case codeInt32:
		n, signed = 4, true
	case codeInt64:
		n, signed = 8, true
	default:
		return 0, 0, false, d.wrong("int")
	}
	v, ok := d.uintAt(start+1, n)
	if !ok {
		return 0, 0, false, d.errAt(start, "payload ends early in an int")
	}
	d.off = start + 1 + n
	if !signed {
		return v, 0, false, nil
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

// Int reads an integer that fits an int64.
func (d *Decoder) Int() (int64, error) {
	start := d.off
	u, i, neg, err := d.integer()
	switch {
	case err != nil:
		return 0, err
	case neg:
		return i, nil
	case u > math.MaxInt64:
		d.off = start
		return 0, d.errAt(start, "int "+strconv.FormatUint(u, 10)+" overflows int64")
	}
	return int64(u), nil
}

// Uint reads a non-negative integer.
func (d *Decoder) Uint() (uint64, error) {
	start := d.off
	u, i, neg, err := d.integer()
	switch {
	case err != nil:
		return 0, err
	case neg:
		d.off = start
		return 0, d.errAt(start, "want a non-negative int, got "+strconv.FormatInt(i, 10))
	}
	return u, nil
}

// Uint32 reads an integer in [0, MaxUint32].
func (d *Decoder) Uint32() (uint32, error) {
	start := d.off
	u, err := d.Uint()
	if err != nil {
		return 0, err
	}
	if u > math.MaxUint32 {
		d.off = start
		return 0, d.errAt(start, "int "+strconv.FormatUint(u, 10)+" overflows uint32")
	}
	return uint32(u), nil
}

// Float reads a float 32, a float 64 or an integer, as a float64.
func (d *Decoder) Float() (float64, error) {
	if d.off < len(d.b) {
		switch start := d.off; d.b[start] {
		case codeFloat32:
			v, ok := d.uintAt(start+1, 4)
			if !ok {
				return 0, d.errAt(start, "payload ends early in a float")
			}
			d.off += 5
			return float64(math.Float32frombits(uint32(v))), nil
		case codeFloat64:
			v, ok := d.uintAt(start+1, 8)
			if !ok {
				return 0, d.errAt(start, "payload ends early in a float")
			}
			d.off += 9
			return math.Float64frombits(v), nil
		}
	}
	if t, err := d.Peek(); err != nil {
		return 0, err
	} else if t != Int && t != Nil {
		return 0, d.wrong("float")
	}
	u, i, neg, err := d.integer()
	if err != nil {
		return 0, err
	}
	if neg {
		return float64(i), nil
	}
	return float64(u), nil
}

// raw reads the header of a str (or, with bin, also a bin) and returns the
// data that follows, aliasing the input.
func (d *Decoder) raw(bin bool) ([]byte, error) {
	if d.nilNext() {
		return nil, nil
	}
	if d.off >= len(d.b) {
		return nil, d.errAt(d.off, "payload ends early")
	}
	start := d.off
	c := d.b[start]
	var n uint64
	var size int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n = uint64(c & 0x1f)
	case c == codeStr8, bin && c == codeBin8:
		size = 1
	case c == codeStr16, bin && c == codeBin16:
		size = 2
	case c == codeStr32, bin && c == codeBin32:
		size = 4
	default:
		if bin {
			return nil, d.wrong("bin or str")
		}
		return nil, d.wrong("str")
	}
	if size > 0 {
		var ok bool
		if n, ok = d.uintAt(start+1, size); !ok {
			return nil, d.errAt(start, "payload ends early in a length")
		}
	}
	from := start + 1 + size
	if n > uint64(len(d.b)-from) {
		return nil, d.errAt(start, strconv.FormatUint(n, 10)+" bytes declared, "+strconv.Itoa(len(d.b)-from)+" left")
	}
	d.off = from + int(n)
	return d.b[from:d.off:d.off], nil
}

// String reads a str.
func (d *Decoder) String() (string, error) {
	s, err := d.raw(false)
	return string(s), err
}

// Bytes reads a bin, or a str (some encoders write byte strings as str). It
// returns a copy; a nil reads as nil, an empty bin as an empty slice.
func (d *Decoder) Bytes() ([]byte, error) {
	s, err := d.raw(true)
	if s == nil || err != nil {
		return nil, err
	}
	return append([]byte{}, s...), nil
}

// container reads an array or map header. Each element needs at least one
// byte (a map entry two), so a length the input cannot hold is refused
// before the caller allocates for it.
func (d *Decoder) container(isMap bool) (int, error) {
	if d.nilNext() {
		return 0, nil
	}
	if d.off >= len(d.b) {
		return 0, d.errAt(d.off, "payload ends early")
	}
	start := d.off
	c := d.b[start]
	var n uint64
	size := 0
	want, per := "array", uint64(1)
	if isMap {
		want, per = "map", 2
	}
	switch {
	case !isMap && c >= 0x90 && c <= 0x9f:
		n = uint64(c & 0x0f)
	case isMap && c >= 0x80 && c <= 0x8f:
		n = uint64(c & 0x0f)
	case !isMap && c == codeArray16, isMap && c == codeMap16:
		size = 2
	case !isMap && c == codeArray32, isMap && c == codeMap32:
		size = 4
	default:
		return 0, d.wrong(want)
	}
	if size > 0 {
		var ok bool
		if n, ok = d.uintAt(start+1, size); !ok {
			return 0, d.errAt(start, "payload ends early in a length")
		}
	}
	from := start + 1 + size
	if n > uint64(len(d.b)-from)/per {
		return 0, d.errAt(start, want+" of "+strconv.FormatUint(n, 10)+" declared, "+strconv.Itoa(len(d.b)-from)+" bytes left")
	}
	d.off = from
	return int(n), nil
}

// ArrayLen reads an array header and returns its number of elements, which
// the caller reads next.
func (d *Decoder) ArrayLen() (int, error) { return d.container(false) }

// MapLen reads a map header and returns its number of entries; the caller
// reads each key and value next.
func (d *Decoder) MapLen() (int, error) { return d.container(true) }

// Map reads a map whose keys are str, calling field with each key; field
// reads the key's value (Skip for a key it does not know). An error from
// field is returned as a *FieldError naming the key.
func (d *Decoder) Map(field func(key string) error) error {
	n, err := d.MapLen()
	if err != nil {
		return err
	}
	for range n {
		key, err := d.String()
		if err != nil {
			return err
		}
		if err := field(key); err != nil {
			return &FieldError{Key: key, Err: err}
		}
	}
	return nil
}

// FieldError is a map value that does not decode.
type FieldError struct {
	Key string
	Err error
}

// maxKeyInError bounds how much of a key from the input an error repeats.
const maxKeyInError = 64

func (e *FieldError) Error() string {
	k := e.Key
	if len(k) > maxKeyInError {
		k = k[:maxKeyInError] + "..."
	}
	return "key " + strconv.QuoteToASCII(k) + ": " + e.Err.Error()
}

// Unwrap returns the value's error.
func (e *FieldError) Unwrap() error { return e.Err }

// Skip reads one value of any type, containers included, without
// recursion: a hostile input nested a million levels deep costs a counter,
// not a stack.
func (d *Decoder) Skip() error {
	start := d.off
	off := d.off
	pending := uint64(1)
	for pending > 0 {
		if off >= len(d.b) {
			return d.errAt(start, "payload ends early in a value")
		}
		pending--
		c := d.b[off]
		off++
		var skip uint64 // bytes of data after the header
		size := 0       // bytes of the length field
		switch {
		case c <= 0x7f, c >= 0xe0, c == codeNil, c == codeFalse, c == codeTrue:
		case c <= 0x8f:
			pending += 2 * uint64(c&0x0f)
		case c <= 0x9f:
			pending += uint64(c & 0x0f)
		case c <= 0xbf:
			skip = uint64(c & 0x1f)
		default:
			switch c {
			case codeBin8, codeStr8, codeExt8:
				size = 1
			case codeBin16, codeStr16, codeExt16, codeArray16, codeMap16:
				size = 2
			case codeBin32, codeStr32, codeExt32, codeArray32, codeMap32:
				size = 4
			case codeUint8, codeInt8:
				skip = 1
			case codeUint16, codeInt16:
				skip = 2
			case codeUint32, codeInt32, codeFloat32:
				skip = 4
			case codeUint64, codeInt64, codeFloat64:
				skip = 8
			case codeFixExt1:
				skip = 2 // the type byte and the data
			case codeFixExt2:
				skip = 3
			case codeFixExt4:
				skip = 5
			case codeFixExt8:
				skip = 9
			case codeFixExt16:
				skip = 17
			default:
				return d.errAt(off-1, "invalid code 0xc1")
			}
		}
		if size > 0 {
			n, ok := d.uintAt(off, size)
			if !ok {
				return d.errAt(start, "payload ends early in a value")
			}
			off += size
			switch c {
			case codeArray16, codeArray32:
				pending += n
			case codeMap16, codeMap32:
				pending += 2 * n
			case codeExt8, codeExt16, codeExt32:
				skip = n + 1 // the type byte
			default:
				skip = n
			}
		}
		if skip > uint64(len(d.b)-off) {
			return d.errAt(start, "payload ends early in a value")
		}
		off += int(skip)
		// Every pending value needs at least a byte: a count the input
		// cannot hold fails now rather than after looping through it.
		if pending > uint64(len(d.b)-off) {
			return d.errAt(start, "payload ends early in a value")
		}
	}
	d.off = off
	return nil
}
