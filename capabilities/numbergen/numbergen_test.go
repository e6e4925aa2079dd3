package numbergen

import (
	"context"
	"crypto/rand"
	"errors"
	"regexp"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
)

func TestNumbergen(t *testing.T) {
	h := Handler{}
	ctx := context.Background()
	out, err := h.Handle(ctx, capabilities.Call{Operation: OpGenerateGuid})
	var g string
	if err != nil || msgpack.Unmarshal(out, &g) != nil {
		t.Fatalf("guid: %v", err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(g) {
		t.Fatalf("guid %q is not a version 4 UUID", g)
	}
	seen := map[uint32]bool{}
	for range 2000 {
		payload, _ := msgpack.Marshal(Range{Min: 10, Max: 13})
		out, err := h.Handle(ctx, capabilities.Call{Operation: OpRandomInRange, Payload: payload})
		var n uint32
		if err != nil || msgpack.Unmarshal(out, &n) != nil || n < 10 || n > 13 {
			t.Fatalf("in range: %d, %v", n, err)
		}
		seen[n] = true
	}
	if len(seen) != 4 {
		t.Fatalf("2000 draws from [10,13] gave only %v", seen)
	}
	payload, _ := msgpack.Marshal(Range{Min: 5, Max: 1})
	if _, err := h.Handle(ctx, capabilities.Call{Operation: OpRandomInRange, Payload: payload}); !errors.Is(err, capabilities.ErrBadPayload) {
		t.Fatalf("min over max: %v", err)
	}
	if _, err := h.Handle(ctx, capabilities.Call{Operation: OpRandomInRange, Payload: []byte{0xc1}}); !errors.Is(err, capabilities.ErrBadPayload) {
		t.Fatalf("garbage: %v", err)
	}
	if _, err := h.Handle(ctx, capabilities.Call{Operation: "Roll"}); !errors.Is(err, capabilities.ErrUnknownOperation) {
		t.Fatalf("unknown op: %v", err)
	}
	if n, err := InRange(rand.Reader, 0, ^uint32(0)); err != nil {
		t.Fatal(err, n)
	}
}

func FuzzRandomInRange(f *testing.F) {
	good, _ := msgpack.Marshal(Range{Min: 1, Max: 6})
	f.Add(good)
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, payload []byte) {
		out, err := Handler{}.Handle(context.Background(), capabilities.Call{Operation: OpRandomInRange, Payload: payload})
		if err != nil {
			return
		}
		var r Range
		_ = msgpack.Unmarshal(payload, &r)
		var n uint32
		if msgpack.Unmarshal(out, &n) != nil || n < r.Min || n > r.Max {
			t.Fatalf("%d outside [%d, %d]", n, r.Min, r.Max)
		}
	})
}

func TestWasmCloudNumberGen(t *testing.T) {
	h := NewWasmCloud(Handler{})
	call := func(ns, op string, payload []byte) []byte {
		t.Helper()
		resp, err := h.Handle(context.Background(), capabilities.Call{Actor: "a", Contract: ns, Operation: op, Payload: payload})
		if err != nil {
			t.Fatalf("%s %s: %v", ns, op, err)
		}
		return resp
	}
	for _, c := range [][2]string{{wasmcloud.NumberGen, wasmcloud.OpGenerateGuid}, {wasmcloud.Extras018, wasmcloud.OpLegacyRequestGuid}} {
		if g, err := wasmcloud.DecodeString(call(c[0], c[1], nil)); err != nil || len(g) != 36 || g[14] != '4' {
			t.Errorf("%s %s: %q, %v", c[0], c[1], g, err)
		}
	}
	rng, _ := wasmcloud.EncodeRangeLimit(wasmcloud.RangeLimit{Min: 7, Max: 9})
	for _, c := range [][2]string{{wasmcloud.NumberGen, wasmcloud.OpRandomInRange}, {wasmcloud.Extras018, wasmcloud.OpLegacyRequestRandom}} {
		for range 50 {
			if n, err := wasmcloud.DecodeUint32(call(c[0], c[1], rng)); err != nil || n < 7 || n > 9 {
				t.Fatalf("%s %s in [7, 9]: %d, %v", c[0], c[1], n, err)
			}
		}
	}
	if _, err := wasmcloud.DecodeUint32(call(wasmcloud.NumberGen, wasmcloud.OpRandom32, nil)); err != nil {
		t.Error(err)
	}
	a, _ := wasmcloud.DecodeUint64(call(wasmcloud.Extras018, wasmcloud.OpLegacyRequestSequence, nil))
	b, _ := wasmcloud.DecodeUint64(call(wasmcloud.Extras018, wasmcloud.OpLegacyRequestSequence, nil))
	if b != a+1 {
		t.Errorf("sequence %d then %d", a, b)
	}
	bad, _ := wasmcloud.EncodeRangeLimit(wasmcloud.RangeLimit{Min: 9, Max: 7})
	if _, err := h.Handle(context.Background(), capabilities.Call{Contract: wasmcloud.NumberGen, Operation: wasmcloud.OpRandomInRange, Payload: bad}); !errors.Is(err, capabilities.ErrBadPayload) {
		t.Errorf("min over max: %v", err)
	}
	if _, err := h.Handle(context.Background(), capabilities.Call{Contract: wasmcloud.NumberGen, Operation: wasmcloud.OpRandomBytes, Payload: []byte{4}}); !errors.Is(err, capabilities.ErrUnknownOperation) {
		t.Errorf("RandomBytes: %v", err)
	}
}

// FuzzWasmCloud: any operation and payload from a guest gives an answer or
// an error, never a panic.
func FuzzWasmCloud(f *testing.F) {
	rng, _ := wasmcloud.EncodeRangeLimit(wasmcloud.RangeLimit{Min: 1, Max: 6})
	for _, op := range []string{wasmcloud.OpRandomInRange, wasmcloud.OpLegacyRequestRandom, wasmcloud.OpGenerateGuid, wasmcloud.OpLegacyRequestSequence} {
		f.Add(op, rng)
	}
	f.Add(wasmcloud.OpRandomInRange, []byte{0x82, 0xa3, 'm', 'i', 'n', 0xcf})
	h := NewWasmCloud(Handler{})
	f.Fuzz(func(t *testing.T, op string, payload []byte) {
		for _, ns := range Namespaces {
			_, _ = h.Handle(context.Background(), capabilities.Call{Actor: "f", Contract: ns, Operation: op, Payload: payload})
		}
	})
}
