package gpio_test

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/gpio"
)

// enc encodes a map with the keys and values in the order given (so
// repeated keys can be written), each value as the library encodes it.
func enc(kv ...any) []byte {
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	if err := e.EncodeMapLen(len(kv) / 2); err != nil {
		panic(err)
	}
	for _, v := range kv {
		if err := e.Encode(v); err != nil {
			panic(err)
		}
	}
	return buf.Bytes()
}

func encValue(v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// decodeCase is one payload and what decoding it gives: a value, or a
// *PayloadError naming field ("" for the payload as a whole).
type decodeCase[T any] struct {
	name    string
	in      []byte
	want    T
	wantErr bool
	field   string
}

// shared are the cases every request decoder rejects the same way.
func shared[T any]() []decodeCase[T] {
	return []decodeCase[T]{
		{name: "empty", in: nil, wantErr: true},
		{name: "nil", in: encValue(nil), wantErr: true},
		{name: "array", in: encValue([]string{"GPIO17"}), wantErr: true},
		{name: "string", in: encValue("GPIO17"), wantErr: true},
		{name: "truncated map", in: []byte{0x82}, wantErr: true},
		{name: "map32 length lie", in: []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, wantErr: true},
		{name: "integer key", in: enc(1, "x"), wantErr: true},
		{name: "unknown field", in: enc("pin", "GPIO17"), wantErr: true, field: `"pin"`},
		{name: "line not a string", in: enc("line", 17), wantErr: true, field: "line"},
		{name: "line binary", in: enc("line", []byte("GPIO17")), wantErr: true, field: "line"},
		{name: "line empty", in: enc("line", ""), wantErr: true, field: "line"},
		{name: "line with space", in: enc("line", "GPIO 17"), wantErr: true, field: "line"},
		{name: "line with slash", in: enc("line", "../GPIO17"), wantErr: true, field: "line"},
		{name: "line too long", in: enc("line", strings.Repeat("G", gpio.MaxLineName+1)), wantErr: true, field: "line"},
		{name: "line str32 length lie", in: append(enc("line", "x")[:6], 0xdb, 0x7f, 0xff, 0xff, 0xff), wantErr: true, field: "line"},
	}
}

func runDecode[T comparable, P interface {
	*T
	UnmarshalMsgpack([]byte) error
}](t *testing.T, cases []decodeCase[T]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got T
			err := P(&got).UnmarshalMsgpack(tc.in)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if got != tc.want {
					t.Fatalf("decode = %+v, want %+v", got, tc.want)
				}
				return
			}
			var pe *gpio.PayloadError
			if !errors.As(err, &pe) || !errors.Is(err, capabilities.ErrBadPayload) {
				t.Fatalf("decode error = %v (%T), want a *PayloadError wrapping ErrBadPayload", err, err)
			}
			if tc.field != "" && pe.Field != tc.field {
				t.Errorf("error %q names field %q, want %q", err, pe.Field, tc.field)
			}
			if pe.Field != "" && !strings.Contains(err.Error(), pe.Field) {
				t.Errorf("error %q does not name field %q", err, pe.Field)
			}
			var zero T
			if got != zero {
				t.Errorf("a failed decode changed the value to %+v", got)
			}
		})
	}
}

func readCases() []decodeCase[gpio.ReadRequest] {
	return append([]decodeCase[gpio.ReadRequest]{
		{name: "ok", in: enc("line", "GPIO17"), want: gpio.ReadRequest{Line: "GPIO17"}},
		{name: "alias", in: enc("line", "P1_11"), want: gpio.ReadRequest{Line: "P1_11"}},
		{name: "missing line", in: enc(), wantErr: true, field: "line"},
		{name: "repeated line", in: enc("line", "GPIO17", "line", "GPIO27"), wantErr: true, field: "line"},
		{name: "trailing bytes", in: append(enc("line", "GPIO17"), 0x00), wantErr: true},
	}, shared[gpio.ReadRequest]()...)
}

func writeCases() []decodeCase[gpio.WriteRequest] {
	return append([]decodeCase[gpio.WriteRequest]{
		{name: "high", in: enc("line", "GPIO17", "level", true), want: gpio.WriteRequest{Line: "GPIO17", Level: gpio.High}},
		{name: "low", in: enc("level", false, "line", "GPIO17"), want: gpio.WriteRequest{Line: "GPIO17", Level: gpio.Low}},
		{name: "one", in: enc("line", "GPIO17", "level", 1), want: gpio.WriteRequest{Line: "GPIO17", Level: gpio.High}},
		{name: "zero int64", in: enc("line", "GPIO17", "level", int64(0)), want: gpio.WriteRequest{Line: "GPIO17"}},
		{name: "two", in: enc("line", "GPIO17", "level", 2), wantErr: true, field: "level"},
		{name: "minus one", in: enc("line", "GPIO17", "level", -1), wantErr: true, field: "level"},
		{name: "level string", in: enc("line", "GPIO17", "level", "high"), wantErr: true, field: "level"},
		{name: "level nil", in: enc("line", "GPIO17", "level", nil), wantErr: true, field: "level"},
		{name: "level float", in: enc("line", "GPIO17", "level", 1.0), wantErr: true, field: "level"},
		{name: "missing level", in: enc("line", "GPIO17"), wantErr: true, field: "level"},
		{name: "missing line", in: enc("level", true), wantErr: true, field: "line"},
		{name: "truncated level", in: enc("line", "GPIO17", "level", 1)[:19], wantErr: true, field: "level"},
	}, shared[gpio.WriteRequest]()...)
}

func watchCases() []decodeCase[gpio.WatchRequest] {
	return append([]decodeCase[gpio.WatchRequest]{
		{name: "rising", in: enc("line", "GPIO17", "edge", "rising", "operation", "Button.Pressed"),
			want: gpio.WatchRequest{Line: "GPIO17", Edge: gpio.EdgeRising, Operation: "Button.Pressed"}},
		{name: "falling", in: enc("operation", "OnEdge", "edge", "falling", "line", "GPIO27"),
			want: gpio.WatchRequest{Line: "GPIO27", Edge: gpio.EdgeFalling, Operation: "OnEdge"}},
		{name: "both", in: enc("line", "GPIO17", "edge", "both", "operation", "wasmcloud:gpio/edge"),
			want: gpio.WatchRequest{Line: "GPIO17", Edge: gpio.EdgeBoth, Operation: "wasmcloud:gpio/edge"}},
		{name: "edge capitalised", in: enc("line", "GPIO17", "edge", "Rising", "operation", "x"), wantErr: true, field: "edge"},
		{name: "edge number", in: enc("line", "GPIO17", "edge", 1, "operation", "x"), wantErr: true, field: "edge"},
		{name: "edge none", in: enc("line", "GPIO17", "edge", "none", "operation", "x"), wantErr: true, field: "edge"},
		{name: "operation empty", in: enc("line", "GPIO17", "edge", "both", "operation", ""), wantErr: true, field: "operation"},
		{name: "operation space", in: enc("line", "GPIO17", "edge", "both", "operation", "On Edge"), wantErr: true, field: "operation"},
		{name: "operation control", in: enc("line", "GPIO17", "edge", "both", "operation", "On\x00"), wantErr: true, field: "operation"},
		{name: "operation not UTF-8", in: enc("line", "GPIO17", "edge", "both", "operation", "On\xff"), wantErr: true, field: "operation"},
		{name: "operation too long", in: enc("line", "GPIO17", "edge", "both", "operation", strings.Repeat("x", gpio.MaxOperation+1)), wantErr: true, field: "operation"},
		{name: "missing operation", in: enc("line", "GPIO17", "edge", "both"), wantErr: true, field: "operation"},
		{name: "missing edge", in: enc("line", "GPIO17", "operation", "x"), wantErr: true, field: "edge"},
	}, shared[gpio.WatchRequest]()...)
}

func pwmCases() []decodeCase[gpio.PWMRequest] {
	return append([]decodeCase[gpio.PWMRequest]{
		{name: "ok", in: enc("line", "GPIO18", "duty", 0.25, "freq", 1000.0), want: gpio.PWMRequest{Line: "GPIO18", Duty: 0.25, Freq: 1000}},
		{name: "integers", in: enc("line", "GPIO18", "duty", 1, "freq", 50), want: gpio.PWMRequest{Line: "GPIO18", Duty: 1, Freq: 50}},
		{name: "float32", in: enc("line", "GPIO18", "duty", float32(0.5), "freq", float32(0.5)), want: gpio.PWMRequest{Line: "GPIO18", Duty: 0.5, Freq: 0.5}},
		{name: "duty zero", in: enc("line", "GPIO18", "duty", 0, "freq", uint64(gpio.MaxFreq)), want: gpio.PWMRequest{Line: "GPIO18", Freq: gpio.MaxFreq}},
		{name: "duty above 1", in: enc("line", "GPIO18", "duty", 1.5, "freq", 1000), wantErr: true, field: "duty"},
		{name: "duty negative", in: enc("line", "GPIO18", "duty", -0.1, "freq", 1000), wantErr: true, field: "duty"},
		{name: "duty NaN", in: enc("line", "GPIO18", "duty", math.NaN(), "freq", 1000), wantErr: true, field: "duty"},
		{name: "duty string", in: enc("line", "GPIO18", "duty", "50%", "freq", 1000), wantErr: true, field: "duty"},
		{name: "freq zero", in: enc("line", "GPIO18", "duty", 0.5, "freq", 0), wantErr: true, field: "freq"},
		{name: "freq negative", in: enc("line", "GPIO18", "duty", 0.5, "freq", -50), wantErr: true, field: "freq"},
		{name: "freq infinite", in: enc("line", "GPIO18", "duty", 0.5, "freq", math.Inf(1)), wantErr: true, field: "freq"},
		{name: "freq too high", in: enc("line", "GPIO18", "duty", 0.5, "freq", uint64(math.MaxUint64)), wantErr: true, field: "freq"},
		{name: "freq bool", in: enc("line", "GPIO18", "duty", 0.5, "freq", true), wantErr: true, field: "freq"},
		{name: "missing freq", in: enc("line", "GPIO18", "duty", 0.5), wantErr: true, field: "freq"},
	}, shared[gpio.PWMRequest]()...)
}

func readResponseCases() []decodeCase[gpio.ReadResponse] {
	return []decodeCase[gpio.ReadResponse]{
		{name: "high", in: enc("level", true), want: gpio.ReadResponse{Level: gpio.High}},
		{name: "low", in: enc("level", 0), want: gpio.ReadResponse{Level: gpio.Low}},
		{name: "missing", in: enc(), wantErr: true, field: "level"},
		{name: "unknown", in: enc("level", true, "line", "GPIO17"), wantErr: true, field: `"line"`},
	}
}

// eventCase is comparable: Event holds a time.Time, compared with Equal below.
type eventCase struct {
	Line  string
	Level gpio.Level
	Nanos int64
}

func eventCases() []decodeCase[eventCase] {
	return append([]decodeCase[eventCase]{
		{name: "ok", in: enc("line", "GPIO17", "level", true, "time", int64(1700000000123456789)),
			want: eventCase{"GPIO17", gpio.High, 1700000000123456789}},
		{name: "negative time", in: enc("time", -5, "level", false, "line", "GPIO17"), want: eventCase{"GPIO17", gpio.Low, -5}},
		{name: "time too big", in: enc("line", "GPIO17", "level", true, "time", uint64(math.MaxUint64)), wantErr: true, field: "time"},
		{name: "time float", in: enc("line", "GPIO17", "level", true, "time", 1.5), wantErr: true, field: "time"},
		{name: "time as msgpack timestamp", in: enc("line", "GPIO17", "level", true, "time", time.Unix(1, 0)), wantErr: true, field: "time"},
		{name: "missing time", in: enc("line", "GPIO17", "level", true), wantErr: true, field: "time"},
	}, shared[eventCase]()...)
}

// eventAsCase adapts Event's decoder to a comparable type.
type eventAsCase eventCase

func (e *eventAsCase) UnmarshalMsgpack(b []byte) error {
	var ev gpio.Event
	if err := ev.UnmarshalMsgpack(b); err != nil {
		return err
	}
	*e = eventAsCase{ev.Line, ev.Level, ev.Time.UnixNano()}
	return nil
}

func TestDecodeRead(t *testing.T)         { runDecode(t, readCases()) }
func TestDecodeReadResponse(t *testing.T) { runDecode(t, readResponseCases()) }
func TestDecodeWrite(t *testing.T)        { runDecode(t, writeCases()) }
func TestDecodeWatch(t *testing.T)        { runDecode(t, watchCases()) }
func TestDecodePWM(t *testing.T)          { runDecode(t, pwmCases()) }

func TestDecodeEvent(t *testing.T) {
	cases := eventCases()
	adapted := make([]decodeCase[eventAsCase], len(cases))
	for i, c := range cases {
		adapted[i] = decodeCase[eventAsCase]{c.name, c.in, eventAsCase(c.want), c.wantErr, c.field}
	}
	runDecode(t, adapted)
}

// TestEncodeShapes pins the wire shapes: what the host sends a guest and
// what a guest SDK sends the host, decoded generically with the exact keys.
func TestEncodeShapes(t *testing.T) {
	at := time.Unix(1700000000, 5)
	for _, tc := range []struct {
		name string
		v    msgpack.Marshaler
		want map[string]any
	}{
		{"ReadRequest", gpio.ReadRequest{Line: "GPIO17"}, map[string]any{"line": "GPIO17"}},
		{"ReadResponse", gpio.ReadResponse{Level: gpio.High}, map[string]any{"level": true}},
		{"WriteRequest", gpio.WriteRequest{Line: "GPIO17", Level: gpio.Low}, map[string]any{"line": "GPIO17", "level": false}},
		{"WatchRequest", gpio.WatchRequest{Line: "GPIO17", Edge: gpio.EdgeFalling, Operation: "Edge"},
			map[string]any{"line": "GPIO17", "edge": "falling", "operation": "Edge"}},
		{"PWMRequest", gpio.PWMRequest{Line: "GPIO18", Duty: 0.5, Freq: 50},
			map[string]any{"line": "GPIO18", "duty": 0.5, "freq": 50.0}},
		{"Event", gpio.Event{Line: "GPIO17", Level: gpio.High, Time: at},
			map[string]any{"line": "GPIO17", "level": true, "time": uint64(at.UnixNano())}}, // a positive int is encoded unsigned,
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.v.MarshalMsgpack()
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			dec := msgpack.NewDecoder(bytes.NewReader(b))
			dec.UseLooseInterfaceDecoding(true) // every integer as int64, every float as float64
			if err := dec.Decode(&got); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, w := range tc.want {
				if got[k] != w {
					t.Errorf("%s = %#v, want %#v", k, got[k], w)
				}
			}
		})
	}
}

// TestLibraryUsesDecoders checks that msgpack.Marshal and Unmarshal go
// through the contract's strict codecs, as a guest SDK or the agent may
// call them.
func TestLibraryUsesDecoders(t *testing.T) {
	b, err := msgpack.Marshal(gpio.WatchRequest{Line: "GPIO17", Edge: gpio.EdgeBoth, Operation: "Edge"})
	if err != nil {
		t.Fatal(err)
	}
	var w gpio.WatchRequest
	if err := msgpack.Unmarshal(b, &w); err != nil || w.Edge != gpio.EdgeBoth {
		t.Fatalf("Unmarshal = %+v, %v", w, err)
	}
	err = msgpack.Unmarshal(enc("line", "GPIO17", "edge", "up", "operation", "Edge"), &w)
	if !errors.Is(err, capabilities.ErrBadPayload) {
		t.Fatalf("Unmarshal of a bad edge = %v, want ErrBadPayload", err)
	}
}

// Fuzz targets: a decoder never panics; what it accepts re-encodes to a
// payload that decodes to the same value; what it rejects is a
// *PayloadError.

func fuzzCodec[T comparable, P interface {
	*T
	MarshalMsgpack() ([]byte, error)
	UnmarshalMsgpack([]byte) error
}](f *testing.F, seeds []decodeCase[T]) {
	for _, s := range seeds {
		f.Add(s.in)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v T
		if err := P(&v).UnmarshalMsgpack(data); err != nil {
			var pe *gpio.PayloadError
			if !errors.As(err, &pe) || !errors.Is(err, capabilities.ErrBadPayload) {
				t.Fatalf("error %v (%T) is not a *PayloadError", err, err)
			}
			return
		}
		b, err := P(&v).MarshalMsgpack()
		if err != nil {
			t.Fatalf("re-encode %+v: %v", v, err)
		}
		var w T
		if err := P(&w).UnmarshalMsgpack(b); err != nil {
			t.Fatalf("decode of re-encoded %+v: %v", v, err)
		}
		if v != w {
			t.Fatalf("round trip: %+v became %+v", v, w)
		}
	})
}

func FuzzReadRequest(f *testing.F)  { fuzzCodec(f, readCases()) }
func FuzzReadResponse(f *testing.F) { fuzzCodec(f, readResponseCases()) }
func FuzzWriteRequest(f *testing.F) { fuzzCodec(f, writeCases()) }
func FuzzWatchRequest(f *testing.F) { fuzzCodec(f, watchCases()) }
func FuzzPWMRequest(f *testing.F)   { fuzzCodec(f, pwmCases()) }

func FuzzEvent(f *testing.F) {
	for _, s := range eventCases() {
		f.Add(s.in)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev gpio.Event
		if err := ev.UnmarshalMsgpack(data); err != nil {
			if !errors.Is(err, capabilities.ErrBadPayload) {
				t.Fatalf("error %v is not ErrBadPayload", err)
			}
			return
		}
		b, err := ev.MarshalMsgpack()
		if err != nil {
			t.Fatal(err)
		}
		var back gpio.Event
		if err := back.UnmarshalMsgpack(b); err != nil {
			t.Fatal(err)
		}
		if back.Line != ev.Line || back.Level != ev.Level || !back.Time.Equal(ev.Time) {
			t.Fatalf("round trip: %+v became %+v", ev, back)
		}
	})
}
