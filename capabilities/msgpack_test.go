package capabilities

import (
	"bytes"
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestCheckMsgpack(t *testing.T) {
	mp := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	nested := func(depth int) []byte { // [[[...]]]
		return append(bytes.Repeat([]byte{0x91}, depth), 0xc0)
	}
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"map", mp(map[string]any{"key": []byte("k"), "n": 1, "f": 1.5, "s": "str", "a": []int{1, 2, 300, 70000}}), true},
		{"nil", []byte{0xc0}, true},
		{"big ints", mp([]any{uint64(1 << 60), int64(-1 << 40), int16(-300)}), true},
		{"ext", []byte{0xd6, 0xff, 0, 0, 0, 1}, true},
		{"nested at the limit", nested(MaxPayloadDepth), true},
		{"nested past the limit", nested(MaxPayloadDepth + 1), false},
		{"a million levels", nested(1 << 20), false},
		{"empty", nil, false},
		{"truncated str", []byte{0xa5, 'a', 'b'}, false},
		{"truncated bin32 length", []byte{0xc6, 0, 0}, false},
		{"lying array32", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}, false},
		{"lying map16", []byte{0xde, 0x00, 0x02, 0xc0, 0xc0}, false},
		{"reserved", []byte{0xc1}, false},
		{"trailing bytes are the decoder's business", []byte{0xc0, 0xc1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckMsgpack(tt.in, MaxPayloadDepth)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckMsgpack = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadPayload) {
				t.Fatalf("error %v does not wrap ErrBadPayload", err)
			}
		})
	}
}

// FuzzCheckMsgpack: whatever CheckMsgpack accepts, msgpack can skip without
// nesting deeper than the limit, and it never panics or loops.
func FuzzCheckMsgpack(f *testing.F) {
	for _, seed := range [][]byte{{0xc0}, {0x81, 0xa1, 'k', 0x01}, {0x91, 0x91, 0xc0}, {0xdd, 0, 0, 0, 2, 1, 2}, {0xc7, 1, 5, 0}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := CheckMsgpack(b, 8); err != nil {
			return
		}
		var v any
		_ = msgpack.Unmarshal(b, &v) // must not blow the stack: depth ≤ 8
	})
}

func BenchmarkCheckMsgpack(b *testing.B) {
	payload, _ := msgpack.Marshal(map[string]any{"key": []byte("counter"), "delta": 1})
	for b.Loop() {
		if err := CheckMsgpack(payload, MaxPayloadDepth); err != nil {
			b.Fatal(err)
		}
	}
}
