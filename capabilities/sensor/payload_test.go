package sensor_test

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"periph.io/x/conn/v3/physic"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/sensor"
)

// mp is a msgpack payload written by hand, byte by byte, as a guest's
// encoder would produce it.
func mp(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case byte:
			b = append(b, p)
		case int:
			b = append(b, byte(p))
		case string:
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		default:
			panic("mp: bad part")
		}
	}
	return b
}

// fixstr is a msgpack fixstr (up to 31 bytes).
func fixstr(s string) []byte { return append([]byte{0xa0 | byte(len(s))}, s...) }

// maxDepth is the decoders' nesting limit (payload.go).
const maxDepth = 16

func nested(depth int) []byte {
	return append(bytes.Repeat([]byte{0x91}, depth), 0xc0) // [[[...nil...]]]
}

var requestCases = []struct {
	name    string
	payload []byte
	want    string // the sensor; "" means an error
}{
	{"plain", mp(0x81, fixstr("sensor"), fixstr("greenhouse")), "greenhouse"},
	{"str8 name", mp(0x81, fixstr("sensor"), 0xd9, 3, "bme"), "bme"},
	{"map16", mp(0xde, 0, 1, fixstr("sensor"), fixstr("a")), "a"},
	{"unicode name", mp(0x81, fixstr("sensor"), fixstr("küche")), "küche"},
	{"longest name", mp(0x81, fixstr("sensor"), 0xd9, 128, strings.Repeat("x", 128)), strings.Repeat("x", 128)},

	{"unknown key", mp(0x82, fixstr("kinds"), 0x91, fixstr("temperature"), fixstr("sensor"), fixstr("a")), ""},
	{"unknown key after", mp(0x82, fixstr("sensor"), fixstr("a"), fixstr("x"), 0x81, 0x01, 0x02), ""},
	{"repeated key", mp(0x82, fixstr("sensor"), fixstr("a"), fixstr("sensor"), fixstr("b")), ""},
	{"name is bin", mp(0x81, fixstr("sensor"), 0xc4, 1, "a"), ""},

	{"empty payload", nil, ""},
	{"nil", mp(0xc0), ""},
	{"empty map", mp(0x80), ""},
	{"array, not map", mp(0x91, fixstr("greenhouse")), ""},
	{"string, not map", fixstr("greenhouse"), ""},
	{"capitalised key", mp(0x81, fixstr("Sensor"), fixstr("a")), ""},
	{"empty name", mp(0x81, fixstr("sensor"), fixstr("")), ""},
	{"name is int", mp(0x81, fixstr("sensor"), 0x07), ""},
	{"name is nil", mp(0x81, fixstr("sensor"), 0xc0), ""},
	{"int key", mp(0x81, 0x01, fixstr("a")), ""},
	{"truncated", mp(0x81, fixstr("sensor"), 0xaa, "green"), ""},
	{"trailing bytes", mp(0x81, fixstr("sensor"), fixstr("a"), 0xc0), ""},
	{"control character", mp(0x81, fixstr("sensor"), fixstr("a\nb")), ""},
	{"not utf-8", mp(0x81, fixstr("sensor"), 0xa2, 0xff, 0xfe), ""},
	{"name too long", mp(0x81, fixstr("sensor"), 0xd9, 129, strings.Repeat("x", 129)), ""},
	{"map claims 2^32-1 entries", mp(0xdf, 0xff, 0xff, 0xff, 0xff, fixstr("sensor"), fixstr("a")), ""},
	{"deeply nested unknown value", mp(0x82, fixstr("x"), nested(1<<20), fixstr("sensor"), fixstr("a")), ""},
}

func TestDecodeReadRequest(t *testing.T) {
	for _, tc := range requestCases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := sensor.DecodeReadRequest(tc.payload)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("decoded %+v, want an error", req)
				}
				if !errors.Is(err, capabilities.ErrBadPayload) {
					t.Fatalf("error %v does not wrap ErrBadPayload", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.Sensor != tc.want {
				t.Fatalf("sensor %q, want %q", req.Sensor, tc.want)
			}
		})
	}
}

func TestEncodeReadRequest(t *testing.T) {
	b, err := sensor.EncodeReadRequest(sensor.ReadRequest{Sensor: "greenhouse"})
	if err != nil {
		t.Fatal(err)
	}
	if want := mp(0x81, fixstr("sensor"), fixstr("greenhouse")); !bytes.Equal(b, want) {
		t.Fatalf("encoded % x, want % x", b, want)
	}
	// The struct tags give the same shape to a plain msgpack encoder.
	b2, err := msgpack.Marshal(sensor.ReadRequest{Sensor: "greenhouse"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("msgpack.Marshal gives % x, EncodeReadRequest % x", b2, b)
	}
}

func TestReadResponseWireShape(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 0, 0, 500, time.UTC)
	resp := sensor.ReadResponse{Measurements: []sensor.Measurement{
		{Sensor: "greenhouse", Kind: sensor.Temperature, Value: 21.5, Unit: "°C", Time: at},
		{Sensor: "greenhouse", Kind: sensor.Pressure, Value: 101325, Unit: "Pa"},
	}}
	b, err := sensor.EncodeReadResponse(resp)
	if err != nil {
		t.Fatal(err)
	}

	// What a guest sees, decoded generically: the keys and types the
	// contract documents.
	var generic map[string]any
	if err := msgpack.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	ms, ok := generic["measurements"].([]any)
	if !ok || len(ms) != 2 || len(generic) != 1 {
		t.Fatalf("response %#v: want one key measurements with 2 entries", generic)
	}
	m0 := ms[0].(map[string]any)
	if len(m0) != 5 {
		t.Fatalf("measurement %#v: want 5 keys", m0)
	}
	for key, want := range map[string]any{
		"sensor": "greenhouse", "kind": "temperature", "value": 21.5, "unit": "°C", "time": at.UnixNano(),
	} {
		got := m0[key]
		if n, ok := got.(uint64); ok { // compact ints decode as the smallest type
			got = int64(n)
		}
		if got != want {
			t.Errorf("key %q = %#v (%T), want %#v (%T)", key, got, got, want, want)
		}
	}
	if tm := ms[1].(map[string]any)["time"]; tm != int8(0) {
		t.Errorf("zero time encoded as %#v, want 0", tm)
	}

	got, err := sensor.DecodeReadResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Measurements) != 2 {
		t.Fatalf("decoded %d measurements, want 2", len(got.Measurements))
	}
	for i, m := range got.Measurements {
		w := resp.Measurements[i]
		if m.Sensor != w.Sensor || m.Kind != w.Kind || m.Value != w.Value || m.Unit != w.Unit || !m.Time.Equal(w.Time) {
			t.Errorf("measurement %d: decoded %+v, want %+v", i, m, w)
		}
	}
	if !got.Measurements[1].Time.IsZero() {
		t.Errorf("time 0 decoded as %v, want the zero time", got.Measurements[1].Time)
	}

	// A plain msgpack encoder uses Measurement's own encoding.
	b2, err := msgpack.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var again sensor.ReadResponse
	if err := msgpack.Unmarshal(b2, &again); err != nil {
		t.Fatal(err)
	}
	if len(again.Measurements) != 2 || again.Measurements[0].Value != 21.5 || !again.Measurements[0].Time.Equal(at) {
		t.Fatalf("msgpack round trip gave %+v", again)
	}
}

func TestDecodeReadResponseFromGuest(t *testing.T) {
	// An encoder that writes the value as an integer and adds a key.
	b := mp(0x81, fixstr("measurements"), 0x91,
		0x86, fixstr("sensor"), fixstr("t"), fixstr("kind"), fixstr("humidity"),
		fixstr("value"), 0x2a, fixstr("unit"), fixstr("%RH"), fixstr("time"), 0x00,
		fixstr("extra"), 0x92, 0x01, 0x02)
	got, err := sensor.DecodeReadResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	want := sensor.Measurement{Sensor: "t", Kind: sensor.Humidity, Value: 42, Unit: "%RH"}
	if len(got.Measurements) != 1 || got.Measurements[0] != want {
		t.Fatalf("decoded %+v, want [%+v]", got.Measurements, want)
	}

	// Unknown values are skipped, to a bounded depth.
	b = mp(0x82, fixstr("next"), nested(maxDepth-1), fixstr("measurements"), 0x90)
	if _, err := sensor.DecodeReadResponse(b); err != nil {
		t.Fatalf("value nested %d deep: %v", maxDepth-1, err)
	}

	for name, bad := range map[string][]byte{
		"deeply nested":        mp(0x81, fixstr("next"), nested(1<<22)),
		"array claims 2^32-1":  mp(0x81, fixstr("measurements"), 0xdd, 0xff, 0xff, 0xff, 0xff, 0x80),
		"measurement is a str": mp(0x81, fixstr("measurements"), 0x91, fixstr("x")),
		"value is a str":       mp(0x81, fixstr("measurements"), 0x91, 0x81, fixstr("value"), fixstr("x")),
		"nested too deep":      mp(0x81, fixstr("measurements"), 0x91, 0x81, fixstr("x"), nested(100)),
	} {
		if _, err := sensor.DecodeReadResponse(bad); !errors.Is(err, capabilities.ErrBadPayload) {
			t.Errorf("%s: error %v, want ErrBadPayload", name, err)
		}
	}
}

func TestKindUnit(t *testing.T) {
	for k, want := range map[sensor.Kind]string{
		sensor.Temperature: "°C",
		sensor.Humidity:    "%RH",
		sensor.Pressure:    "Pa",
		"illuminance":      "",
	} {
		if got := k.Unit(); got != want {
			t.Errorf("%s.Unit() = %q, want %q", k, got, want)
		}
	}
}

func TestFromPhysic(t *testing.T) {
	at := time.Unix(1, 0)
	for _, tc := range []struct {
		name string
		got  sensor.Measurement
		want sensor.Measurement
	}{
		{"temperature", sensor.TemperatureOf("s", at, 2372*10*physic.MilliCelsius+physic.ZeroCelsius),
			sensor.Measurement{Sensor: "s", Kind: sensor.Temperature, Value: 23.72, Unit: "°C", Time: at}},
		{"below zero", sensor.TemperatureOf("s", at, physic.ZeroCelsius-10125*physic.MilliCelsius),
			sensor.Measurement{Sensor: "s", Kind: sensor.Temperature, Value: -10.125, Unit: "°C", Time: at}},
		{"pressure", sensor.PressureOf("s", at, 101325*physic.Pascal),
			sensor.Measurement{Sensor: "s", Kind: sensor.Pressure, Value: 101325, Unit: "Pa", Time: at}},
		{"humidity", sensor.HumidityOf("s", at, 45*physic.PercentRH+5*physic.MilliRH),
			sensor.Measurement{Sensor: "s", Kind: sensor.Humidity, Value: 45.5, Unit: "%RH", Time: at}},
	} {
		if d := math.Abs(tc.got.Value - tc.want.Value); d > 1e-9 {
			t.Errorf("%s: value %v, want %v", tc.name, tc.got.Value, tc.want.Value)
		}
		tc.got.Value = tc.want.Value
		if tc.got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, tc.got, tc.want)
		}
	}
}

func FuzzDecodeReadRequest(f *testing.F) {
	for _, tc := range requestCases {
		if len(tc.payload) < 4096 {
			f.Add(tc.payload)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := sensor.DecodeReadRequest(b)
		if err != nil {
			if !errors.Is(err, capabilities.ErrBadPayload) {
				t.Fatalf("error %v does not wrap ErrBadPayload", err)
			}
			return
		}
		// Whatever decodes re-encodes to a payload that decodes the same.
		b2, err := sensor.EncodeReadRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		req2, err := sensor.DecodeReadRequest(b2)
		if err != nil || req2 != req {
			t.Fatalf("re-decoded %+v, %v; want %+v", req2, err, req)
		}
	})
}

func FuzzDecodeReadResponse(f *testing.F) {
	ok, _ := sensor.EncodeReadResponse(sensor.ReadResponse{Measurements: []sensor.Measurement{
		{Sensor: "a", Kind: sensor.Temperature, Value: 1.5, Unit: "°C", Time: time.Unix(1, 2)},
	}})
	f.Add(ok)
	f.Add(mp(0x81, fixstr("measurements"), 0x90))
	f.Add(mp(0x81, fixstr("measurements"), 0x91, 0x81, fixstr("x"), nested(3)))
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := sensor.DecodeReadResponse(b)
		if err != nil {
			if !errors.Is(err, capabilities.ErrBadPayload) {
				t.Fatalf("error %v does not wrap ErrBadPayload", err)
			}
			return
		}
		b2, err := sensor.EncodeReadResponse(resp)
		if err != nil {
			t.Fatal(err)
		}
		resp2, err := sensor.DecodeReadResponse(b2)
		if err != nil || len(resp2.Measurements) != len(resp.Measurements) {
			t.Fatalf("re-decoded %+v, %v; want %+v", resp2, err, resp)
		}
	})
}
