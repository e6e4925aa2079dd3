package kv_test

import (
	"context"
	"errors"
	"testing"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/kv"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
	"github.com/trellis-edge/trellis/store"
)

// TestWasmCloudKeyValue drives the compatibility contract with the exact
// payloads wasmCloud actors send in each era (built with the codecs from the
// public interface definitions) and checks the replies they expect.
func TestWasmCloudKeyValue(t *testing.T) {
	s, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := capabilities.NewDispatcher(capabilities.DispatcherOptions{})
	h := kv.WasmCloud{Store: s}
	for _, ns := range []string{"wasmcloud:keyvalue", "wascc:keyvalue"} {
		d.Register(ns, h)
	}
	d.Register(capabilities.KV, kv.Handler{Store: s})
	if err := d.SetGrants("kvcounter", capabilities.Grants{KV: true}); err != nil {
		t.Fatal(err)
	}
	do := func(ns, op string, payload []byte, encErr error) []byte {
		t.Helper()
		if encErr != nil {
			t.Fatal(encErr)
		}
		out, err := d.Dispatch(context.Background(), capabilities.Call{Actor: "kvcounter", Contract: ns, Operation: op, Payload: payload})
		if err != nil {
			t.Fatalf("%s %s: %v", ns, op, err)
		}
		return out
	}

	// wasmbus kvcounter: KeyValue.Increment answers a bare i32.
	inc, err := wasmcloud.EncodeIncrementRequest(wasmcloud.IncrementRequest{Key: "counter:home", Value: 1})
	for want := int32(1); want <= 2; want++ {
		n, err2 := wasmcloud.DecodeIncrementResponse(wasmcloud.EraWasmbus, do("wasmcloud:keyvalue", wasmcloud.OpKVIncrement, inc, err))
		if err2 != nil || n != want {
			t.Fatalf("wasmbus Increment: %d, %v", n, err2)
		}
	}
	// 0.18 kvcounter: Add answers {value}; the same bucket.
	n, err := wasmcloud.DecodeIncrementResponse(wasmcloud.Era018, do("wasmcloud:keyvalue", wasmcloud.OpLegacyAdd, inc, nil))
	if err != nil || n != 3 {
		t.Fatalf("0.18 Add: %d, %v", n, err)
	}
	// Get reads the counter back as text, in both eras.
	key, err := wasmcloud.EncodeKey(wasmcloud.EraWasmbus, "counter:home")
	g, err2 := wasmcloud.DecodeGetResponse(do("wasmcloud:keyvalue", wasmcloud.OpKVGet, key, err))
	if err2 != nil || !g.Exists || g.Value != "3" {
		t.Fatalf("wasmbus Get: %+v, %v", g, err2)
	}
	key, err = wasmcloud.EncodeKey(wasmcloud.Era018, "counter:home")
	g, err2 = wasmcloud.DecodeGetResponse(do("wascc:keyvalue", wasmcloud.OpLegacyGet, key, err))
	if err2 != nil || g.Value != "3" {
		t.Fatalf("waSCC Get: %+v, %v", g, err2)
	}
	// Native trellis:kv sees the same bucket.
	set, err := wasmcloud.EncodeSetRequest(wasmcloud.EraWasmbus, wasmcloud.SetRequest{Key: "greeting", Value: "hi"})
	if out := do("wasmcloud:keyvalue", wasmcloud.OpKVSet, set, err); out != nil {
		t.Fatalf("wasmbus Set answers nothing, got %x", out)
	}
	key, err = wasmcloud.EncodeKey(wasmcloud.EraWasmbus, "greeting")
	has, err2 := wasmcloud.DecodeBool(do("wasmcloud:keyvalue", wasmcloud.OpKVContains, key, err))
	if err2 != nil || !has {
		t.Fatalf("Contains: %v, %v", has, err2)
	}
	del, err2 := wasmcloud.DecodeBool(do("wasmcloud:keyvalue", wasmcloud.OpKVDel, key, nil))
	if err2 != nil || !del {
		t.Fatalf("Del: %v, %v", del, err2)
	}
	// Expiring keys are refused rather than silently kept forever.
	set, _ = wasmcloud.EncodeSetRequest(wasmcloud.EraWasmbus, wasmcloud.SetRequest{Key: "k", Value: "v", Expires: 60})
	if _, err := d.Dispatch(context.Background(), capabilities.Call{Actor: "kvcounter", Contract: "wasmcloud:keyvalue", Operation: wasmcloud.OpKVSet, Payload: set}); !errors.Is(err, capabilities.ErrBadPayload) {
		t.Fatalf("expiring Set: %v", err)
	}
	// Garbage, unknown operations, and no grant.
	if _, err := d.Dispatch(context.Background(), capabilities.Call{Actor: "kvcounter", Contract: "wasmcloud:keyvalue", Operation: wasmcloud.OpKVGet, Payload: []byte{0xc1, 0xff}}); !errors.Is(err, capabilities.ErrBadPayload) {
		t.Fatalf("garbage: %v", err)
	}
	if _, err := d.Dispatch(context.Background(), capabilities.Call{Actor: "kvcounter", Contract: "wasmcloud:keyvalue", Operation: "KeyValue.Explode"}); !errors.Is(err, capabilities.ErrUnknownOperation) {
		t.Fatalf("unknown op: %v", err)
	}
	if _, err := d.Dispatch(context.Background(), capabilities.Call{Actor: "stranger", Contract: "wasmcloud:keyvalue", Operation: wasmcloud.OpKVGet, Payload: key}); !errors.Is(err, capabilities.ErrDenied) {
		t.Fatalf("no grant: %v", err)
	}
}
