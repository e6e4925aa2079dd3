package msgpack

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	vm "github.com/vmihailenco/msgpack/v5"
)

func TestAppend(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string // hex
	}{
		{"nil", AppendNil(nil), "c0"},
		{"true", AppendBool(nil, true), "c3"},
		{"false", AppendBool(nil, false), "c2"},
		{"int 0", AppendInt(nil, 0), "00"},
		{"int 127", AppendInt(nil, 127), "7f"},
		{"int 128", AppendInt(nil, 128), "cc80"},
		{"int 256", AppendInt(nil, 256), "cd0100"},
		{"int 65536", AppendInt(nil, 65536), "ce00010000"},
		{"int 2^32", AppendInt(nil, 1<<32), "cf0000000100000000"},
		{"int -1", AppendInt(nil, -1), "ff"},
		{"int -32", AppendInt(nil, -32), "e0"},
		{"int -33", AppendInt(nil, -33), "d0df"},
		{"int -129", AppendInt(nil, -129), "d1ff7f"},
		{"int -32769", AppendInt(nil, -32769), "d2ffff7fff"},
		{"int min", AppendInt(nil, math.MinInt64), "d38000000000000000"},
		{"uint max", AppendUint(nil, math.MaxUint64), "cfffffffffffffffff"},
		{"float", AppendFloat64(nil, 1.5), "cb3ff8000000000000"},
		{"str empty", AppendString(nil, ""), "a0"},
		{"str fix", AppendString(nil, "abc"), "a3616263"},
		{"str 32", AppendString(nil, strings.Repeat("a", 32)), "d920" + strings.Repeat("61", 32)},
		{"str 256", AppendString(nil, strings.Repeat("a", 256))[:3], "da0100"},
		{"str 65536", AppendString(nil, strings.Repeat("a", 65536))[:5], "db00010000"},
		{"bin nil", AppendBin(nil, nil), "c400"},
		{"bin", AppendBin(nil, []byte{1, 2}), "c4020102"},
		{"bin 256", AppendBin(nil, make([]byte, 256))[:3], "c50100"},
		{"bin 65536", AppendBin(nil, make([]byte, 65536))[:5], "c600010000"},
		{"bin string", AppendBinString(nil, "ab"), "c4026162"},
		{"bin string 256", AppendBinString(nil, strings.Repeat("a", 256))[:3], "c50100"},
		{"bin string 65536", AppendBinString(nil, strings.Repeat("a", 65536))[:5], "c600010000"},
		{"array 0", AppendArrayHeader(nil, 0), "90"},
		{"array 15", AppendArrayHeader(nil, 15), "9f"},
		{"array 16", AppendArrayHeader(nil, 16), "dc0010"},
		{"array 65536", AppendArrayHeader(nil, 65536), "dd00010000"},
		{"map 1", AppendMapHeader(nil, 1), "81"},
		{"map 16", AppendMapHeader(nil, 16), "de0010"},
		{"map 65536", AppendMapHeader(nil, 65536), "df00010000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hex.EncodeToString(tt.got); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestDecodeScalars(t *testing.T) {
	h := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		in      string
		read    func(d *Decoder) (any, error)
		want    any
		wantErr string
	}{
		{"bool", "c3", func(d *Decoder) (any, error) { return d.Bool() }, true, ""},
		{"bool nil", "c0", func(d *Decoder) (any, error) { return d.Bool() }, false, ""},
		{"bool from int", "01", func(d *Decoder) (any, error) { return d.Bool() }, false, "want bool, got int at byte 0"},
		{"int fix", "7f", func(d *Decoder) (any, error) { return d.Int() }, int64(127), ""},
		{"int negfix", "e0", func(d *Decoder) (any, error) { return d.Int() }, int64(-32), ""},
		{"int uint8", "ccff", func(d *Decoder) (any, error) { return d.Int() }, int64(255), ""},
		{"int int16", "d1ff00", func(d *Decoder) (any, error) { return d.Int() }, int64(-256), ""},
		{"int positive int64", "d30000000000000005", func(d *Decoder) (any, error) { return d.Int() }, int64(5), ""},
		{"int uint64 overflow", "cf8000000000000000", func(d *Decoder) (any, error) { return d.Int() }, nil, "overflows int64"},
		{"int truncated", "cd01", func(d *Decoder) (any, error) { return d.Int() }, nil, "payload ends early in an int at byte 0"},
		{"int from str", "a0", func(d *Decoder) (any, error) { return d.Int() }, nil, "want int, got str"},
		{"int empty", "", func(d *Decoder) (any, error) { return d.Int() }, nil, "payload ends early at byte 0"},
		{"uint negative", "ff", func(d *Decoder) (any, error) { return d.Uint() }, nil, "want a non-negative int, got -1"},
		{"uint32 max", "ceffffffff", func(d *Decoder) (any, error) { return d.Uint32() }, uint32(math.MaxUint32), ""},
		{"uint32 overflow", "cf0000000100000000", func(d *Decoder) (any, error) { return d.Uint32() }, nil, "overflows uint32"},
		{"float32", "ca3fc00000", func(d *Decoder) (any, error) { return d.Float() }, 1.5, ""},
		{"float64", "cb3ff8000000000000", func(d *Decoder) (any, error) { return d.Float() }, 1.5, ""},
		{"float from int", "d0ec", func(d *Decoder) (any, error) { return d.Float() }, -20.0, ""},
		{"float truncated", "cb3ff8", func(d *Decoder) (any, error) { return d.Float() }, nil, "payload ends early in a float"},
		{"float from bool", "c3", func(d *Decoder) (any, error) { return d.Float() }, nil, "want float, got bool"},
		{"string", "a3616263", func(d *Decoder) (any, error) { return d.String() }, "abc", ""},
		{"string nil", "c0", func(d *Decoder) (any, error) { return d.String() }, "", ""},
		{"string str8", "d903616263", func(d *Decoder) (any, error) { return d.String() }, "abc", ""},
		{"string from bin", "c4016100", func(d *Decoder) (any, error) { return d.String() }, nil, "want str, got bin"},
		{"string too long", "db7fffffff6162", func(d *Decoder) (any, error) { return d.String() }, nil, "2147483647 bytes declared, 2 left"},
		{"string length truncated", "da00", func(d *Decoder) (any, error) { return d.String() }, nil, "payload ends early in a length"},
		{"bytes bin", "c4026162", func(d *Decoder) (any, error) { return d.Bytes() }, []byte("ab"), ""},
		{"bytes str", "a26162", func(d *Decoder) (any, error) { return d.Bytes() }, []byte("ab"), ""},
		{"bytes empty", "c400", func(d *Decoder) (any, error) { return d.Bytes() }, []byte{}, ""},
		{"bytes nil", "c0", func(d *Decoder) (any, error) { return d.Bytes() }, []byte(nil), ""},
		{"bytes from array", "90", func(d *Decoder) (any, error) { return d.Bytes() }, nil, "want bin or str, got array"},
		{"array len", "920102", func(d *Decoder) (any, error) { return d.ArrayLen() }, 2, ""},
		{"array nil", "c0", func(d *Decoder) (any, error) { return d.ArrayLen() }, 0, ""},
		{"array longer than input", "dd0000ffff00", func(d *Decoder) (any, error) { return d.ArrayLen() }, nil, "array of 65535 declared, 1 bytes left"},
		{"map len", "de00010000", func(d *Decoder) (any, error) { return d.MapLen() }, 1, ""},
		{"map odd bytes", "8100", func(d *Decoder) (any, error) { return d.MapLen() }, nil, "map of 1 declared, 1 bytes left"},
		{"map from array", "90", func(d *Decoder) (any, error) { return d.MapLen() }, nil, "want map, got array"},
		{"reserved code", "c1", func(d *Decoder) (any, error) { return d.Int() }, nil, "want int, got invalid code 0xc1"},
		{"ext", "d40100", func(d *Decoder) (any, error) { return d.String() }, nil, "want str, got ext"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := h(tt.in)
			d := NewDecoder(in)
			got, err := tt.read(d)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				var me *Error
				if !errors.As(err, &me) {
					t.Errorf("error %T is not a *Error", err)
				}
				if d.Remaining() != len(in) {
					t.Errorf("a failed read moved the decoder: %d bytes left of %d", d.Remaining(), len(in))
				}
				return
			}
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
			if _, isLen := got.(int); !isLen {
				if err := d.End(); err != nil {
					t.Errorf("End: %v", err)
				}
			}
		})
	}
}

func TestBytesDoNotAlias(t *testing.T) {
	in := []byte{0xc4, 2, 'a', 'b'}
	got, err := NewDecoder(in).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	in[2] = 'x'
	if string(got) != "ab" {
		t.Errorf("Bytes aliases its input: %q", got)
	}
}

func TestMap(t *testing.T) {
	b := AppendMapHeader(nil, 3)
	b = AppendInt(AppendString(b, "n"), 7)
	b = AppendMapHeader(AppendString(b, "skip"), 1)
	b = AppendArrayHeader(AppendString(b, "deep"), 1)
	b = AppendNil(b)
	b = AppendString(AppendString(b, "s"), "x")
	d := NewDecoder(b)
	var n int64
	var s string
	err := d.Map(func(k string) (err error) {
		switch k {
		case "n":
			n, err = d.Int()
		case "s":
			s, err = d.String()
		default:
			err = d.Skip()
		}
		return err
	})
	if err != nil || n != 7 || s != "x" || d.End() != nil {
		t.Fatalf("Map: n %d s %q err %v, %d bytes left", n, s, err, d.Remaining())
	}

	bad := AppendMapHeader(nil, 1)
	bad = AppendString(AppendString(bad, "n"), "seven")
	d = NewDecoder(bad)
	err = d.Map(func(k string) error { _, err := d.Int(); return err })
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Key != "n" || !strings.Contains(err.Error(), `key "n": msgpack: want int, got str`) {
		t.Errorf("Map error %v, want a *FieldError for key n", err)
	}

	long := AppendMapHeader(nil, 1)
	long = AppendNil(AppendString(long, strings.Repeat("k", 1000)))
	d = NewDecoder(long)
	err = d.Map(func(string) error { return errors.New("no") })
	if err == nil || len(err.Error()) > 100 {
		t.Errorf("error for a long key: %v", err)
	}
	if !strings.Contains(NewDecoder([]byte{0x81, 0x01, 0xc0}).Map(func(string) error { return nil }).Error(), "want str, got int") {
		t.Error("a map with an int key decoded")
	}
}

func TestSkip(t *testing.T) {
	h := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ok := []string{
		"00", "ff", "c0", "c3", "cc01", "cd0102", "ce01020304", "cf0102030405060708",
		"d001", "d10102", "d201020304", "d30102030405060708", "ca01020304", "cb0102030405060708",
		"a26162", "d9026162", "da00026162", "db000000026162", "c4026162", "c500026162", "c600000002 6162",
		"d40101", "d5010102", "d601" + "01020304", "d701" + "0102030405060708", "d801" + strings.Repeat("00", 16),
		"c70201" + "0102", "c8000201" + "0102", "c90000000201" + "0102",
		"9100", "dc000100", "dd0000000100", "810000", "de00010000", "df000000010000",
		"929100810091c0", // nested
	}
	for _, s := range ok {
		in := h(strings.ReplaceAll(s, " ", ""))
		d := NewDecoder(append(in, 0x2a))
		if err := d.Skip(); err != nil || d.Remaining() != 1 {
			t.Errorf("Skip(%s): %v, %d bytes left, want 1", s, err, d.Remaining())
		}
	}
	bad := []string{"", "c1", "cc", "cd01", "a2", "d902", "c401", "c5", "d401", "c702", "91", "dc0002c0", "dd7fffffff", "81c0", "9f", "91c1"}
	for _, s := range bad {
		in := h(s)
		d := NewDecoder(in)
		if err := d.Skip(); err == nil || d.Remaining() != len(in) {
			t.Errorf("Skip(%s): %v, %d bytes left of %d; want an error and no progress", s, err, d.Remaining(), len(in))
		}
	}
	// Deep nesting costs no stack.
	deep := bytes.Repeat([]byte{0x91}, 1<<20)
	deep = append(deep, 0xc0)
	if err := NewDecoder(deep).Skip(); err != nil {
		t.Errorf("Skip of a million nested arrays: %v", err)
	}
}

// appendAny encodes v with this package: the types decodeAny yields.
func appendAny(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return AppendNil(b)
	case bool:
		return AppendBool(b, v)
	case int64:
		return AppendInt(b, v)
	case uint64:
		return AppendUint(b, v)
	case float64:
		return AppendFloat64(b, v)
	case string:
		return AppendString(b, v)
	case []byte:
		return AppendBin(b, v)
	case []any:
		b = AppendArrayHeader(b, len(v))
		for _, e := range v {
			b = appendAny(b, e)
		}
		return b
	case map[string]any:
		b = AppendMapHeader(b, len(v))
		for k, e := range v {
			b = appendAny(AppendString(b, k), e)
		}
		return b
	}
	panic("appendAny: unsupported type " + reflect.TypeOf(v).String())
}

var errTooDeep = errors.New("too deep")

// decodeAny decodes one value with this package, as vmihailenco's loose
// interface decoding does: integers as int64 (uint64 above MaxInt64),
// floats as float64, str as string, bin as []byte, maps with str keys.
func decodeAny(d *Decoder, depth int) (any, error) {
	if depth > 64 {
		return nil, errTooDeep
	}
	t, err := d.Peek()
	if err != nil {
		return nil, err
	}
	switch t {
	case Nil:
		d.Nil()
		return nil, nil
	case Bool:
		return d.Bool()
	case Int:
		if v, err := d.Int(); err == nil {
			return v, nil
		}
		return d.Uint()
	case Float:
		return d.Float()
	case String:
		return d.String()
	case Bin:
		return d.Bytes()
	case Array:
		n, err := d.ArrayLen()
		if err != nil {
			return nil, err
		}
		out := make([]any, 0, n)
		for range n {
			v, err := decodeAny(d, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case Map:
		out := map[string]any{}
		err := d.Map(func(k string) error {
			v, err := decodeAny(d, depth+1)
			out[k] = v
			return err
		})
		return out, err
	}
	return nil, d.wrong("a value")
}

// vmDecode decodes b with vmihailenco/msgpack into the same types.
func vmDecode(b []byte) (any, error) {
	v, err := vm.NewDecoder(bytes.NewReader(b)).DecodeInterface()
	return normalize(v), err
}

// normalize maps vmihailenco's interface types onto decodeAny's.
func normalize(v any) any {
	switch v := v.(type) {
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	case float32:
		return float64(v)
	case []any:
		for i := range v {
			v[i] = normalize(v[i])
		}
		if v == nil {
			return []any{}
		}
		return v
	case map[string]any:
		for k, e := range v {
			v[k] = normalize(e)
		}
		return v
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v)
		}
	}
	return v
}

// equal compares decoded values, floats by their bits (NaN included).
func equal(a, b any) bool {
	switch a := a.(type) {
	case float64:
		bf, ok := b.(float64)
		return ok && math.Float64bits(a) == math.Float64bits(bf)
	case []any:
		bs, ok := b.([]any)
		if !ok || len(a) != len(bs) {
			return false
		}
		for i := range a {
			if !equal(a[i], bs[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, v := range a {
			w, ok := bm[k]
			if !ok || !equal(v, w) {
				return false
			}
		}
		return true
	case []byte:
		bb, ok := b.([]byte)
		return ok && bytes.Equal(a, bb)
	}
	return reflect.DeepEqual(a, b)
}

// randomValue makes a random value of decodeAny's types.
func randomValue(r *rand.Rand, depth int) any {
	k := r.IntN(10)
	if depth > 3 && k >= 8 {
		k = r.IntN(8)
	}
	sizes := []int{0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536}
	size := func() int {
		if r.IntN(10) == 0 {
			return sizes[r.IntN(len(sizes))]
		}
		return r.IntN(20)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 1
	case 2:
		edges := []int64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
			-1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64}
		if r.IntN(2) == 0 {
			return edges[r.IntN(len(edges))]
		}
		return int64(r.Uint64())
	case 3:
		return uint64(math.MaxInt64) + 1 + r.Uint64N(math.MaxInt64)
	case 4:
		fs := []float64{0, math.Copysign(0, -1), 1.5, -1e300, math.Inf(1), math.Inf(-1), math.NaN(), math.SmallestNonzeroFloat64}
		if r.IntN(2) == 0 {
			return fs[r.IntN(len(fs))]
		}
		return r.NormFloat64() * 1e6
	case 5:
		b := make([]byte, size())
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return string(b)
	case 6:
		b := make([]byte, size())
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return b
	case 7:
		return int64(r.IntN(64) - 32)
	case 8:
		n := r.IntN(20)
		if r.IntN(20) == 0 {
			n = 16 + r.IntN(40)
		}
		out := make([]any, n)
		for i := range out {
			out[i] = randomValue(r, depth+1)
		}
		return out
	default:
		n := r.IntN(20)
		out := make(map[string]any, n)
		for range n {
			out[strings.Repeat("k", r.IntN(3))+string(rune('a'+r.IntN(26)))] = randomValue(r, depth+1)
		}
		return out
	}
}

// TestRoundTripVmihailenco checks this codec against the msgpack library the
// host uses: what one encodes the other decodes to the same value, both
// ways.
func TestRoundTripVmihailenco(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		v := randomValue(r, 0)

		ours := appendAny(nil, v)
		got, err := vmDecode(ours)
		if err != nil || !equal(got, normalize(v)) {
			t.Fatalf("case %d: vmihailenco decoded our %.100x as %.200v, %v; want %.200v", i, ours, got, err, v)
		}

		theirs, err := vm.Marshal(v)
		if err != nil {
			t.Fatalf("case %d: vmihailenco Marshal(%#v): %v", i, v, err)
		}
		d := NewDecoder(theirs)
		got, err = decodeAny(d, 0)
		if err == nil {
			err = d.End()
		}
		if err != nil || !equal(got, vmNormalize(v)) {
			t.Fatalf("case %d: we decoded vmihailenco's %.100x as %.200v, %v; want %.200v", i, theirs, got, err, v)
		}
		// Skip agrees on where the value ends.
		d = NewDecoder(theirs)
		if err := d.Skip(); err != nil || d.Remaining() != 0 {
			t.Fatalf("case %d: Skip of %.100x: %v, %d bytes left", i, theirs, err, d.Remaining())
		}
	}
}

// vmNormalize adjusts an expected value for what vmihailenco writes: it
// encodes a nil []byte as nil.
func vmNormalize(v any) any {
	switch v := v.(type) {
	case []byte:
		if v == nil {
			return nil
		}
	case []any:
		out := make([]any, len(v))
		for i := range v {
			out[i] = vmNormalize(v[i])
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = vmNormalize(e)
		}
		return out
	}
	return v
}

// FuzzDecoder feeds arbitrary bytes to the decoder: it must not panic, a
// value it accepts must be the value vmihailenco/msgpack reads from the
// same bytes, and Skip must end where decoding ends.
func FuzzDecoder(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 30 {
		f.Add(appendAny(nil, randomValue(r, 0)))
	}
	for _, s := range []string{"", "c1", "dd7fffffff", "df7fffffff", "db7fffffff", "c97fffffff01", "9191919191c0", "cf8000000000000000", "ca7fc00000"} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDecoder(b)
		v, err := decodeAny(d, 0)
		skip := NewDecoder(b)
		skipErr := skip.Skip()
		if err != nil {
			if errors.Is(err, errTooDeep) {
				return
			}
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("error %T %v is not a *Error", err, err)
			}
			return
		}
		if skipErr != nil || skip.Remaining() != d.Remaining() {
			t.Fatalf("decoded %.200v leaving %d bytes but Skip: %v, leaving %d", v, d.Remaining(), skipErr, skip.Remaining())
		}
		theirs, err := vmDecode(b[:len(b)-d.Remaining()])
		if err != nil {
			t.Fatalf("we decoded %.100x as %.200v, vmihailenco fails: %v", b, v, err)
		}
		if !equal(v, theirs) {
			t.Fatalf("we decoded %.100x as %.200v, vmihailenco as %.200v", b, v, theirs)
		}
		// What we decode re-encodes to something that decodes the same.
		again, err := decodeAny(NewDecoder(appendAny(nil, v)), 0)
		if err != nil || !equal(again, v) {
			t.Fatalf("re-encoding %.200v decodes as %.200v, %v", v, again, err)
		}
	})
}
