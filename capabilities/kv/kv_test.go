package kv_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/kv"
	"github.com/trellis-edge/trellis/store"
)

func newHandler(t testing.TB) (kv.Handler, *capabilities.Dispatcher) {
	t.Helper()
	s, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	h := kv.Handler{Store: s}
	d := capabilities.NewDispatcher(capabilities.DispatcherOptions{})
	d.Register(capabilities.KV, h)
	for _, a := range []string{"counter", "other"} {
		if err := d.SetGrants(a, capabilities.Grants{KV: true}); err != nil {
			t.Fatal(err)
		}
	}
	return h, d
}

func call(t testing.TB, d *capabilities.Dispatcher, actor, op string, req any, resp any) error {
	t.Helper()
	payload, err := msgpack.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.Dispatch(context.Background(), capabilities.Call{Actor: actor, Contract: capabilities.KV, Operation: op, Payload: payload})
	if err == nil && resp != nil {
		if err := msgpack.Unmarshal(out, resp); err != nil {
			t.Fatalf("%s response %x: %v", op, out, err)
		}
	}
	return err
}

type m = map[string]any

func TestKVOperations(t *testing.T) {
	_, d := newHandler(t)
	var get kv.GetResponse
	if err := call(t, d, "counter", kv.OpGet, m{"key": []byte("k")}, &get); err != nil || get.Exists {
		t.Fatalf("get of a missing key: %+v, %v", get, err)
	}
	if err := call(t, d, "counter", kv.OpSet, m{"key": []byte("k"), "value": []byte("v")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := call(t, d, "counter", kv.OpGet, m{"key": []byte("k")}, &get); err != nil || !get.Exists || string(get.Value) != "v" {
		t.Fatalf("get: %+v, %v", get, err)
	}
	var inc kv.IncrementResponse
	for i := 1; i <= 3; i++ {
		if err := call(t, d, "counter", kv.OpIncrement, m{"key": []byte("n"), "delta": 2}, &inc); err != nil || inc.Value != int64(2*i) {
			t.Fatalf("increment %d: %+v, %v", i, inc, err)
		}
	}
	var cas kv.CompareAndSetResponse
	if err := call(t, d, "counter", kv.OpCompareAndSet, m{"key": []byte("k"), "old": []byte("nope"), "new": []byte("w")}, &cas); err != nil || cas.Swapped {
		t.Fatalf("cas with a wrong old value: %+v, %v", cas, err)
	}
	if err := call(t, d, "counter", kv.OpCompareAndSet, m{"key": []byte("k"), "old": []byte("v"), "new": []byte("w")}, &cas); err != nil || !cas.Swapped {
		t.Fatalf("cas: %+v, %v", cas, err)
	}
	if err := call(t, d, "counter", kv.OpCompareAndSet, m{"key": []byte("fresh"), "old": nil, "new": []byte("1")}, &cas); err != nil || !cas.Swapped {
		t.Fatalf("cas on a missing key: %+v, %v", cas, err)
	}
	var keys kv.KeysResponse
	if err := call(t, d, "counter", kv.OpKeys, m{"prefix": []byte("")}, &keys); err != nil || len(keys.Keys) != 3 {
		t.Fatalf("keys: %q, %v", keys.Keys, err)
	}
	var del kv.DeleteResponse
	if err := call(t, d, "counter", kv.OpDelete, m{"key": []byte("k")}, &del); err != nil || !del.Existed {
		t.Fatalf("delete: %+v, %v", del, err)
	}
}

func TestKVIsolation(t *testing.T) {
	_, d := newHandler(t)
	if err := call(t, d, "counter", kv.OpSet, m{"key": []byte("secret"), "value": []byte("mine")}, nil); err != nil {
		t.Fatal(err)
	}
	var get kv.GetResponse
	if err := call(t, d, "other", kv.OpGet, m{"key": []byte("secret")}, &get); err != nil || get.Exists {
		t.Fatalf("actor other read counter's key: %+v, %v", get, err)
	}
	var keys kv.KeysResponse
	if err := call(t, d, "other", kv.OpKeys, m{}, &keys); err != nil || len(keys.Keys) != 0 {
		t.Fatalf("actor other listed counter's keys: %q, %v", keys.Keys, err)
	}
	if err := call(t, d, "stranger", kv.OpGet, m{"key": []byte("secret")}, &get); !errors.Is(err, capabilities.ErrDenied) {
		t.Fatalf("an actor without a kv grant: %v", err)
	}
}

func TestKVBadPayloads(t *testing.T) {
	h, _ := newHandler(t)
	g := capabilities.Grants{KV: true}
	for name, tc := range map[string]struct {
		op      string
		payload []byte
		want    error
	}{
		"garbage":       {kv.OpGet, []byte{0xc1, 0xff}, capabilities.ErrBadPayload},
		"no key":        {kv.OpGet, mustMarshal(m{}), capabilities.ErrBadPayload},
		"unknown field": {kv.OpSet, mustMarshal(m{"key": []byte("k"), "valeu": []byte("v")}), capabilities.ErrBadPayload},
		"trailing":      {kv.OpGet, append(mustMarshal(m{"key": []byte("k")}), 0x00), capabilities.ErrBadPayload},
		"unknown op":    {"Explode", mustMarshal(m{"key": []byte("k")}), capabilities.ErrUnknownOperation},
		"deep nesting":  {kv.OpGet, append([]byte{0x81, 0xa3, 'k', 'e', 'y'}, append(bytes.Repeat([]byte{0x91}, 1<<20), 0xc0)...), capabilities.ErrBadPayload},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := h.Handle(context.Background(), capabilities.Call{Actor: "counter", Contract: capabilities.KV, Operation: tc.op, Payload: tc.payload, Grants: g})
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Handle(ctx, capabilities.Call{Actor: "counter", Operation: kv.OpGet, Payload: mustMarshal(m{"key": []byte("k")}), Grants: g}); !errors.Is(err, context.Canceled) {
		t.Fatalf("after the deadline: %v", err)
	}
}

func mustMarshal(v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []any{m{"key": []byte("k")}, m{"key": []byte("k"), "value": []byte("v")}, m{"prefix": []byte("p"), "limit": 5}, m{"key": []byte("k"), "old": nil, "new": []byte("x")}} {
		f.Add(kv.OpGet, mustMarshal(seed))
	}
	f.Fuzz(func(t *testing.T, op string, payload []byte) {
		r, err := kv.DecodeRequest(op, payload)
		if err != nil {
			if !errors.Is(err, capabilities.ErrBadPayload) {
				t.Fatalf("error %v does not wrap ErrBadPayload", err)
			}
			return
		}
		if op != kv.OpKeys && len(r.Key) == 0 || r.Limit < 0 {
			t.Fatalf("accepted %+v for %s", r, op)
		}
	})
}

// BenchmarkKVIncrement compares an increment through the trellis:kv handler
// (decode, dispatch, grant check, encode) with the store's own increment in
// the same run. The actor-level comparison (through a guest) is the agent's.
func BenchmarkKVIncrement(b *testing.B) {
	_, d := newHandler(b)
	payload := mustMarshal(m{"key": []byte("n"), "delta": 1})
	b.Run("handler", func(b *testing.B) {
		for b.Loop() {
			if _, err := d.Dispatch(context.Background(), capabilities.Call{Actor: "counter", Contract: capabilities.KV, Operation: kv.OpIncrement, Payload: payload}); err != nil {
				b.Fatal(err)
			}
		}
	})
	s, err := store.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.Run("store", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.KVIncrement("counter", []byte("n"), 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}
