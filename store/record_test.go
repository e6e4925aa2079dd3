package store

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

var testDigest = DigestOf([]byte("module"))

// mustEncode encodes a valid actor for the table below.
func mustEncode(tb testing.TB, a Actor) []byte {
	tb.Helper()
	b, err := encodeActor(a)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// mustMarshal builds records by hand, as another binary version might.
func mustMarshal(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

type decodeCase struct {
	name  string
	in    []byte
	valid bool
}

func actorDecodeCases(tb testing.TB) []decodeCase {
	full := Actor{
		Name: "thermostat", Artifact: testDigest, Revision: math.MaxUint64,
		Limits: Limits{MaxInstances: 8, MemoryPages: 256, CallTimeout: 1500 * time.Millisecond,
			MaxRequest: 1 << 20, MaxResponse: 1 << 21, MaxHostPayload: -1},
		UpdatedAt: time.Date(2025, 6, 1, 8, 30, 0, 123456789, time.UTC),
	}
	minimal := mustEncode(tb, Actor{Name: "echo", Artifact: testDigest, Revision: 1})
	record := func(extra map[string]any) []byte {
		m := map[string]any{"n": "echo", "a": testDigest[:], "r": 1}
		for k, v := range extra {
			m[k] = v
		}
		return mustMarshal(tb, m)
	}
	return []decodeCase{
		{"minimal", minimal, true},
		{"full", mustEncode(tb, full), true},
		{"unknown key from a newer binary", record(map[string]any{"zz": []any{"future", 1}}), true},
		{"nil limits", record(map[string]any{"l": nil}), true},
		{"nil time", record(map[string]any{"u": nil}), true},
		{"limit beyond 32 bits", record(map[string]any{"l": map[string]any{"q": int64(1) << 40}}), strconv.IntSize == 64},
		{"empty", nil, false},
		{"msgpack nil", []byte{0xc0}, false},
		{"reserved code", []byte{0xc1}, false},
		{"truncated", minimal[:len(minimal)-1], false},
		{"trailing byte", append(minimal[:len(minimal):len(minimal)], 0), false},
		{"array", mustMarshal(tb, []any{"echo", testDigest[:], 1}), false},
		{"name is a number", record(map[string]any{"n": 7}), false},
		{"invalid name", record(map[string]any{"n": "Echo Two"}), false},
		{"short digest", record(map[string]any{"a": testDigest[:31]}), false},
		{"zero digest", record(map[string]any{"a": make([]byte, 32)}), false},
		{"zero revision", record(map[string]any{"r": 0}), false},
		{"time of wrong length", record(map[string]any{"u": msgpack.RawMessage{0xd4, 0xff, 0}}), false},
		{"huge string length", []byte{0x81, 0xa1, 'n', 0xdb, 0xff, 0xff, 0xff, 0xff}, false},
		{"huge map length", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, false},
	}
}

func TestDecodeActor(t *testing.T) {
	for _, c := range actorDecodeCases(t) {
		t.Run(c.name, func(t *testing.T) {
			a, err := decodeActor(c.in)
			if c.valid {
				if err != nil {
					t.Fatalf("decodeActor = %v, want success", err)
				}
				checkActorRoundTrip(t, a)
				return
			}
			if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrInvalid) {
				t.Errorf("decodeActor = %+v, %v; want ErrCorrupt only", a, err)
			}
		})
	}
}

func FuzzDecodeActor(f *testing.F) {
	for _, c := range actorDecodeCases(f) {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := decodeActor(in)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeActor error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		checkActorRoundTrip(t, a)
	})
}

// checkActorRoundTrip checks that a decoded actor encodes and decodes to itself.
func checkActorRoundTrip(t *testing.T, a Actor) {
	t.Helper()
	b, err := encodeActor(a)
	if err != nil {
		t.Fatalf("encodeActor(%+v): %v", a, err)
	}
	back, err := decodeActor(b)
	if err != nil {
		t.Fatalf("decodeActor(encodeActor(%+v)): %v", a, err)
	}
	if !actorEqual(back, a) {
		t.Fatalf("round trip: got %+v, want %+v", back, a)
	}
}

func uint64DecodeCases() []decodeCase {
	return []decodeCase{
		{"one", encodeUint64(1), true},
		{"max", encodeUint64(math.MaxUint64), true},
		{"empty", nil, false},
		{"short", []byte{1}, false},
		{"long", make([]byte, 9), false},
	}
}

func TestDecodeUint64(t *testing.T) {
	for _, c := range uint64DecodeCases() {
		t.Run(c.name, func(t *testing.T) {
			v, err := decodeUint64(c.in)
			switch {
			case c.valid && err != nil:
				t.Errorf("decodeUint64 = %v, want success", err)
			case c.valid && !bytes.Equal(encodeUint64(v), c.in):
				t.Errorf("decodeUint64 = %d, which encodes to %x, not %x", v, encodeUint64(v), c.in)
			case !c.valid && !errors.Is(err, ErrCorrupt):
				t.Errorf("decodeUint64 = %d, %v; want ErrCorrupt", v, err)
			}
		})
	}
}

func FuzzDecodeUint64(f *testing.F) {
	for _, c := range uint64DecodeCases() {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := decodeUint64(in)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeUint64 error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(encodeUint64(v), in) {
			t.Fatalf("decodeUint64(%x) = %d, which encodes differently", in, v)
		}
	})
}
