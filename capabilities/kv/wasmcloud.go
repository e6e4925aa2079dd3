package kv

import (
	"context"
	"fmt"
	"math"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
)

// WasmCloud serves wasmcloud:keyvalue and wascc:keyvalue, in the wasmbus,
// 0.18 and waSCC eras, from the same per-actor buckets as trellis:kv: an
// unmodified wasmCloud kvcounter keeps its counter in the device's store.
// It needs the kv grant. The key-value operations are served; the list and
// set operations are not yet, and say so.
type WasmCloud struct {
	Store Store
}

// Handle implements capabilities.Handler.
func (h WasmCloud) Handle(ctx context.Context, call capabilities.Call) ([]byte, error) {
	if !call.Grants.KV {
		return nil, fmt.Errorf("%w: actor %s has no kv grant", capabilities.ErrDenied, call.Actor)
	}
	op, ok := wasmcloud.LookupHostCall(call.Contract, call.Operation)
	if !ok {
		return nil, fmt.Errorf("%w: %s %q", capabilities.ErrUnknownOperation, call.Contract, call.Operation)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e, a, p := op.Era, call.Actor, call.Payload
	switch call.Operation {
	case wasmcloud.OpKVGet, wasmcloud.OpLegacyGet, wasmcloud.OpLegacyKeyExists:
		key, err := wasmcloud.DecodeKey(e, p)
		if err != nil {
			return nil, err
		}
		v, ok, err := h.Store.KVGet(a, []byte(key))
		if err != nil {
			return nil, err
		}
		return wasmcloud.EncodeGetResponse(wasmcloud.GetResponse{Value: string(v), Exists: ok})
	case wasmcloud.OpKVContains:
		key, err := wasmcloud.DecodeKey(e, p)
		if err != nil {
			return nil, err
		}
		_, ok, err := h.Store.KVGet(a, []byte(key))
		if err != nil {
			return nil, err
		}
		return wasmcloud.EncodeBool(ok)
	case wasmcloud.OpKVSet, wasmcloud.OpLegacySet:
		r, err := wasmcloud.DecodeSetRequest(e, p)
		if err != nil {
			return nil, err
		}
		if r.Expires != 0 {
			return nil, fmt.Errorf("%w: %s: expires %d: keys that expire are not supported on this host", capabilities.ErrBadPayload, call.Operation, r.Expires)
		}
		if err := h.Store.KVSet(a, []byte(r.Key), []byte(r.Value)); err != nil {
			return nil, err
		}
		if e == wasmcloud.EraWasmbus {
			return nil, nil
		}
		return wasmcloud.EncodeSetResponse(r.Value)
	case wasmcloud.OpKVDel, wasmcloud.OpLegacyDel:
		key, err := wasmcloud.DecodeKey(e, p)
		if err != nil {
			return nil, err
		}
		existed, err := h.Store.KVDelete(a, []byte(key))
		if err != nil {
			return nil, err
		}
		if e == wasmcloud.EraWasmbus {
			return wasmcloud.EncodeBool(existed)
		}
		return wasmcloud.EncodeDelResponse(key)
	case wasmcloud.OpKVIncrement, wasmcloud.OpLegacyAdd:
		r, err := wasmcloud.DecodeIncrementRequest(p)
		if err != nil {
			return nil, err
		}
		n, err := h.Store.KVIncrement(a, []byte(r.Key), int64(r.Value))
		if err != nil {
			return nil, err
		}
		if n > math.MaxInt32 || n < math.MinInt32 {
			return nil, fmt.Errorf("%s %s: counter %q is %d, beyond the contract's i32", call.Contract, call.Operation, r.Key, n)
		}
		return wasmcloud.EncodeIncrementResponse(e, int32(n))
	}
	return nil, fmt.Errorf("%w: %s %q is not supported on this host yet", capabilities.ErrUnknownOperation, call.Contract, call.Operation)
}
