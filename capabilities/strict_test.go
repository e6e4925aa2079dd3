package capabilities

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode"

	"github.com/vmihailenco/msgpack/v5"
)

// sample is what the test shape decodes into: one field for each reader.
type sample struct {
	B   bool
	I   int64
	F   float64
	S   string
	X   []byte
	N   int64 // nil or an integer
	Nil bool  // N was nil
}

// Keys of the test shape: b and i required, the rest optional.
var (
	sampleRequired = []string{"b", "i"}
	sampleOptional = []string{"f", "s", "x", "n"}
)

// decodeSample decodes the test shape with every reader.
func decodeSample(b []byte) (sample, error) {
	var v sample
	err := DecodeStrictMap("test", "Op", b, sampleRequired, sampleOptional, func(d *FieldDecoder, key string) {
		switch key {
		case "b":
			v.B, _ = d.Bool()
		case "i":
			v.I, _ = d.Int64()
		case "f":
			v.F, _ = d.Float64()
		case "s":
			v.S, _ = d.String(8, func(s string) string {
				return ValidText(s, 8, unicode.IsSpace, "no spaces")
			})
		case "x":
			v.X, _ = d.Bytes(16)
		case "n":
			if v.Nil = d.Nil(); !v.Nil {
				v.N, _ = d.Int64()
			}
		}
	})
	return v, err
}

// encodeSample encodes v in the test shape, the optional keys when set.
func encodeSample(v sample) []byte {
	m := map[string]any{"b": v.B, "i": v.I}
	if v.F != 0 {
		m["f"] = v.F
	}
	if v.S != "" {
		m["s"] = v.S
	}
	if v.X != nil {
		m["x"] = v.X
	}
	if v.Nil {
		m["n"] = nil
	} else if v.N != 0 {
		m["n"] = v.N
	}
	b, err := msgpack.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// kv encodes a map with the keys and values in the order given (so repeated
// keys can be written), each value as the library encodes it.
func kv(pairs ...any) []byte {
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	if err := e.EncodeMapLen(len(pairs) / 2); err != nil {
		panic(err)
	}
	for _, v := range pairs {
		if err := e.Encode(v); err != nil {
			panic(err)
		}
	}
	return buf.Bytes()
}

// third encodes {b: true, i: 7} and a third key whose value is the bytes
// given, as they are.
func third(key string, value ...byte) []byte {
	b := append([]byte{0x83}, kv("b", true, "i", 7)[1:]...)
	b = append(b, 0xa0|byte(len(key)))
	return append(append(b, key...), value...)
}

func TestDecodeStrictMap(t *testing.T) {
	ok := func(pairs ...any) []byte { return kv(append([]any{"b", true, "i", 7}, pairs...)...) }
	tests := []struct {
		name   string
		in     []byte
		want   sample
		field  string // of the error; "-" for none
		reason string // in the error
	}{
		{name: "required only", in: ok(), want: sample{B: true, I: 7}, field: "-"},
		{name: "any order", in: kv("i", -3, "s", "abc", "b", false), want: sample{I: -3, S: "abc"}, field: "-"},
		{name: "all", in: ok("f", 1.5, "s", "abcdefgh", "x", []byte{1, 2}, "n", 5),
			want: sample{B: true, I: 7, F: 1.5, S: "abcdefgh", X: []byte{1, 2}, N: 5}, field: "-"},
		{name: "map16", in: append([]byte{0xde, 0, 2}, kv("b", true, "i", 7)[1:]...), want: sample{B: true, I: 7}, field: "-"},
		{name: "map32", in: append([]byte{0xdf, 0, 0, 0, 2}, kv("b", true, "i", 7)[1:]...), want: sample{B: true, I: 7}, field: "-"},
		{name: "nil value", in: ok("n", nil), want: sample{B: true, I: 7, Nil: true}, field: "-"},
		{name: "integer as float", in: ok("f", 3), want: sample{B: true, I: 7, F: 3}, field: "-"},
		{name: "float32", in: ok("f", float32(0.5)), want: sample{B: true, I: 7, F: 0.5}, field: "-"},
		{name: "str as bytes", in: ok("x", "hi"), want: sample{B: true, I: 7, X: []byte("hi")}, field: "-"},
		{name: "empty bytes", in: ok("x", []byte{}), want: sample{B: true, I: 7, X: []byte{}}, field: "-"},
		{name: "uint64 in range", in: kv("b", true, "i", uint64(math.MaxInt64)), want: sample{B: true, I: math.MaxInt64}, field: "-"},

		{name: "no bytes", in: nil, field: "", reason: "empty"},
		{name: "not a map", in: []byte{0x91, 0x01}, field: "", reason: "want a map, got array"},
		{name: "reserved code", in: []byte{0xc1}, field: "", reason: "want a map, got invalid code 0xc1"},
		{name: "truncated map16", in: []byte{0xde, 0}, field: "", reason: "truncated"},
		{name: "truncated map", in: []byte{0x82}, field: "", reason: "map key: truncated"},
		{name: "map32 length lie", in: []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, field: "", reason: "map key: truncated"},
		{name: "integer key", in: kv(1, true), field: "", reason: "map key: want a string, got integer"},
		{name: "long key", in: kv(strings.Repeat("k", 33), 1), field: "", reason: "map key: longer than 32 bytes"},
		{name: "unknown key", in: ok("z\n", 1), field: `"z\n"`, reason: "unknown field"},
		{name: "repeated", in: ok("b", false), field: "b", reason: "repeated"},
		{name: "missing", in: kv("i", 1), field: "b", reason: "missing"},
		{name: "missing second", in: kv("b", true, "s", "x"), field: "i", reason: "missing"},
		{name: "trailing", in: append(ok(), 0xc0, 0xc0), field: "", reason: "2 trailing bytes after the map"},
		{name: "map32 length lie after the fields", in: append([]byte{0xdf, 0xff, 0xff, 0xff, 0xff}, kv("b", true, "i", 7)[1:]...), field: "", reason: "map key: truncated"},
		{name: "truncated value", in: kv("b", true, "i", 1)[:6], field: "i", reason: "truncated"},

		{name: "bool of integer", in: kv("b", 1, "i", 1), field: "b", reason: "want a bool, got integer"},
		{name: "int of float", in: kv("b", true, "i", 1.0), field: "i", reason: "want an integer, got float"},
		{name: "int of nil", in: kv("b", true, "i", nil), field: "i", reason: "want an integer, got nil"},
		{name: "int past int64", in: kv("b", true, "i", uint64(math.MaxUint64)), field: "i", reason: "integer 18446744073709551615 out of range"},
		{name: "int truncated", in: kv("b", true, "i", int64(math.MinInt64))[:12], field: "i", reason: "truncated"},
		{name: "float of string", in: ok("f", "1"), field: "f", reason: "want a number, got string"},
		{name: "float NaN", in: ok("f", math.NaN()), field: "f", reason: "want a finite number, got NaN"},
		{name: "float infinite", in: ok("f", math.Inf(-1)), field: "f", reason: "want a finite number, got -Inf"},
		{name: "float truncated", in: ok("f", 2.5)[:14], field: "f", reason: "truncated"},
		{name: "string of binary", in: ok("s", []byte("a")), field: "s", reason: "want a string, got binary"},
		{name: "string too long", in: ok("s", "123456789"), field: "s", reason: "longer than 8 bytes"},
		{name: "string invalid", in: ok("s", "a b"), field: "s", reason: `want no spaces, got "a b"`},
		{name: "string empty", in: ok("s", ""), field: "s", reason: "empty"},
		{name: "string str32 length lie", in: third("s", 0xdb, 0xff, 0xff, 0xff, 0xff), field: "s", reason: "longer than 8 bytes"},
		{name: "bytes of map", in: ok("x", map[string]int{}), field: "x", reason: "want binary or a string, got map"},
		{name: "bytes too long", in: ok("x", make([]byte, 17)), field: "x", reason: "longer than 16 bytes"},
		{name: "bytes truncated", in: third("x", 0xc4, 3, 1, 2), field: "x", reason: "truncated"},
		{name: "bytes bin32 length lie", in: third("x", 0xc6, 0xff, 0xff, 0xff, 0xff), field: "x", reason: "longer than 16 bytes"},
		{name: "nil-or-int of bool", in: ok("n", true), field: "n", reason: "want an integer, got bool"},
		{name: "nil-or-int missing", in: third("n"), field: "n", reason: "truncated"},
		{name: "nil-or-int of extension", in: third("n", 0xd6, 0xff, 0, 0, 0, 1), field: "n", reason: "want an integer, got extension"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeSample(tc.in)
			if tc.field == "-" {
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if !sameSample(got, tc.want) {
					t.Fatalf("decode = %+v, want %+v", got, tc.want)
				}
				return
			}
			pe, ok := errors.AsType[*PayloadError](err)
			if !ok || !errors.Is(err, ErrBadPayload) {
				t.Fatalf("error %v (%T), want a *PayloadError wrapping ErrBadPayload", err, err)
			}
			if pe.Package != "test" || pe.Op != "Op" || pe.Field != tc.field || pe.Reason != tc.reason {
				t.Fatalf("error %+v, want field %q, reason %q", *pe, tc.field, tc.reason)
			}
		})
	}
}

func sameSample(a, b sample) bool {
	return a.B == b.B && a.I == b.I && a.F == b.F && a.S == b.S && bytes.Equal(a.X, b.X) &&
		(a.X == nil) == (b.X == nil) && a.N == b.N && a.Nil == b.Nil
}

func TestPayloadError(t *testing.T) {
	for _, tc := range []struct {
		err  PayloadError
		want string
	}{
		{PayloadError{Package: "gpio", Op: "Read", Field: "line", Reason: "empty"}, "gpio: Read payload: line: empty"},
		{PayloadError{Package: "timer", Op: "stored timer", Reason: "truncated"}, "timer: stored timer payload: truncated"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
		if !errors.Is(&tc.err, ErrBadPayload) {
			t.Errorf("%v does not wrap ErrBadPayload", &tc.err)
		}
	}
}

// TestFailKeepsFirstReason: a field function may fail more than once; the
// first reason is reported, and the readers after it are not needed.
func TestFailKeepsFirstReason(t *testing.T) {
	err := DecodeStrictMap("test", "Op", kv("a", "x"), []string{"a"}, nil, func(d *FieldDecoder, key string) {
		if _, ok := d.Int64(); ok {
			t.Error("Int64 of a string succeeded")
		}
		d.Fail("second")
	})
	if pe, ok := errors.AsType[*PayloadError](err); !ok || pe.Field != "a" || pe.Reason != "want an integer, got string" {
		t.Fatalf("error %v", err)
	}
}

// TestNoFields: a shape without keys accepts the empty map only.
func TestNoFields(t *testing.T) {
	called := false
	field := func(*FieldDecoder, string) { called = true }
	if err := DecodeStrictMap("test", "List", []byte{0x80}, nil, nil, field); err != nil {
		t.Fatalf("empty map: %v", err)
	}
	if err := DecodeStrictMap("test", "List", kv("x", 1), nil, nil, field); !errors.Is(err, ErrBadPayload) || called {
		t.Fatalf("a key of an empty shape: %v, called %v", err, called)
	}
}

// TestKinds: every code but 0xc1 starts a value of a named kind, as the
// library decodes it.
func TestKinds(t *testing.T) {
	for c := range 256 {
		k := kindOf(byte(c))
		if (k == KindInvalid) != (c == 0xc1) {
			t.Errorf("kindOf(%#x) = %v", c, k)
		}
	}
	for _, tc := range []struct {
		v    any
		want Kind
	}{
		{nil, KindNil}, {true, KindBool}, {-1, KindInt}, {uint64(1 << 63), KindInt}, {int16(-300), KindInt},
		{float32(1), KindFloat}, {1.5, KindFloat}, {"s", KindString}, {strings.Repeat("s", 300), KindString},
		{[]byte{1}, KindBinary}, {[]int{1}, KindArray}, {map[string]int{"a": 1}, KindMap},
	} {
		b, err := msgpack.Marshal(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		if got := kindOf(b[0]); got != tc.want {
			t.Errorf("kindOf(%#v) = %v, want %v", tc.v, got, tc.want)
		}
	}
	if got := kindOf(0xd6); got != KindExt || got.String() != "extension" {
		t.Errorf("kindOf(fixext4) = %v", got)
	}
}

func TestValidText(t *testing.T) {
	noSpace := func(r rune) bool { return r == ' ' || unicode.IsControl(r) }
	for _, tc := range []struct {
		in, want string
	}{
		{"Op.Name", ""},
		{"Ünïcö", ""},
		{"", "empty"},
		{strings.Repeat("a", 9), "longer than 8 bytes"},
		{"a\xff", "not UTF-8"},
		{"a b", `want no spaces, got "a b"`},
		{"a\u0085", `want no spaces, got "a\u0085"`},
	} {
		if got := ValidText(tc.in, 8, noSpace, "no spaces"); got != tc.want {
			t.Errorf("ValidText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzDecodeStrictMap: the decoder never panics; it refuses with a
// *PayloadError wrapping ErrBadPayload, and what it accepts encodes back
// to a payload that decodes to the same value.
func FuzzDecodeStrictMap(f *testing.F) {
	for _, seed := range [][]byte{
		kv("b", true, "i", 7),
		kv("b", false, "i", -1, "f", 1.5, "s", "abc", "x", []byte{1}, "n", nil),
		kv("i", uint64(math.MaxUint64), "b", true),
		kv("b", true, "b", true),
		kv("b", true, "i", 1, "z", 0),
		append(kv("b", true, "i", 7), 0),
		{0xdf, 0xff, 0xff, 0xff, 0xff},
		{0x83, 0xa1, 'b', 0xc3, 0xa1, 'i', 0x01, 0xa1, 's', 0xdb, 0xff, 0xff, 0xff, 0xff},
		bytes.Repeat([]byte{0x91}, 64),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeSample(b)
		if err != nil {
			if _, ok := errors.AsType[*PayloadError](err); !ok || !errors.Is(err, ErrBadPayload) {
				t.Fatalf("error %v (%T) is not a *PayloadError wrapping ErrBadPayload", err, err)
			}
			return
		}
		back, err := decodeSample(encodeSample(v))
		if err != nil {
			t.Fatalf("decode of re-encoded %+v: %v", v, err)
		}
		if !sameSample(v, back) {
			t.Fatalf("round trip: %+v became %+v", v, back)
		}
	})
}
