// Package kv is the trellis:kv contract: a key-value bucket per actor, kept
// in the device's store. An actor reaches only its own bucket: the bucket is
// chosen by the calling actor's name, never by the payload.
//
// Operations and their msgpack payloads (map keys as shown):
//
//	Get            {key: bin}                         → {value: bin, exists: bool}
//	Set            {key: bin, value: bin}             → nil
//	Delete         {key: bin}                         → {existed: bool}
//	Increment      {key: bin, delta: int}             → {value: int}   (a missing key counts from 0)
//	Keys           {prefix: bin, after: bin, limit: int} → {keys: [bin]} (sorted; limit 0 = 1000)
//	CompareAndSet  {key: bin, old: bin|nil, new: bin} → {swapped: bool} (old nil: the key must not exist)
package kv

import (
	"bytes"
	"context"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/capabilities"
)

// Store is the bucket storage (store.Store implements it).
type Store interface {
	KVGet(actor string, key []byte) ([]byte, bool, error)
	KVSet(actor string, key, value []byte) error
	KVDelete(actor string, key []byte) (bool, error)
	KVIncrement(actor string, key []byte, delta int64) (int64, error)
	KVKeys(actor string, prefix, after []byte, limit int) ([][]byte, error)
	KVCompareAndSet(actor string, key, old, new []byte) (bool, error)
}

// Operation names.
const (
	OpGet           = "Get"
	OpSet           = "Set"
	OpDelete        = "Delete"
	OpIncrement     = "Increment"
	OpKeys          = "Keys"
	OpCompareAndSet = "CompareAndSet"
)

// DefaultKeysLimit is the page size of Keys when the request gives none.
const DefaultKeysLimit = 1000

// Request is the union of the operations' inputs.
type Request struct {
	Key    []byte  `msgpack:"key"`
	Value  []byte  `msgpack:"value"`
	Delta  int64   `msgpack:"delta"`
	Prefix []byte  `msgpack:"prefix"`
	After  []byte  `msgpack:"after"`
	Limit  int     `msgpack:"limit"`
	Old    *[]byte `msgpack:"old"`
	New    []byte  `msgpack:"new"`
}

// The operations' outputs.
type (
	GetResponse struct {
		Value  []byte `msgpack:"value"`
		Exists bool   `msgpack:"exists"`
	}
	DeleteResponse struct {
		Existed bool `msgpack:"existed"`
	}
	IncrementResponse struct {
		Value int64 `msgpack:"value"`
	}
	KeysResponse struct {
		Keys [][]byte `msgpack:"keys"`
	}
	CompareAndSetResponse struct {
		Swapped bool `msgpack:"swapped"`
	}
)

// DecodeRequest decodes an operation's payload; it never panics.
func DecodeRequest(op string, payload []byte) (Request, error) {
	if err := capabilities.CheckMsgpack(payload, capabilities.MaxPayloadDepth); err != nil {
		return Request{}, fmt.Errorf("%s: %w", op, err)
	}
	var r Request
	in := bytes.NewReader(payload) // an io.ByteScanner: the decoder reads it directly
	dec := msgpack.NewDecoder(in)
	dec.DisallowUnknownFields(true)
	if err := dec.Decode(&r); err != nil {
		return Request{}, fmt.Errorf("%w: %s: %v", capabilities.ErrBadPayload, op, err)
	}
	if in.Len() > 0 {
		return Request{}, fmt.Errorf("%w: %s: trailing bytes after the request", capabilities.ErrBadPayload, op)
	}
	if op != OpKeys && len(r.Key) == 0 {
		return Request{}, fmt.Errorf("%w: %s: key is required", capabilities.ErrBadPayload, op)
	}
	if r.Limit < 0 {
		return Request{}, fmt.Errorf("%w: %s: limit %d is negative", capabilities.ErrBadPayload, op, r.Limit)
	}
	return r, nil
}

// Handler serves trellis:kv from a Store.
type Handler struct {
	Store Store
}

// Handle implements capabilities.Handler.
func (h Handler) Handle(ctx context.Context, call capabilities.Call) ([]byte, error) {
	if !call.Grants.KV {
		return nil, fmt.Errorf("%w: actor %s has no kv grant", capabilities.ErrDenied, call.Actor)
	}
	switch call.Operation {
	case OpGet, OpSet, OpDelete, OpIncrement, OpKeys, OpCompareAndSet:
	default:
		return nil, fmt.Errorf("%w: %s %q", capabilities.ErrUnknownOperation, capabilities.KV, call.Operation)
	}
	req, err := DecodeRequest(call.Operation, call.Payload)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var resp any
	a := call.Actor
	switch call.Operation {
	case OpGet:
		var r GetResponse
		r.Value, r.Exists, err = h.Store.KVGet(a, req.Key)
		resp = r
	case OpSet:
		err = h.Store.KVSet(a, req.Key, req.Value)
	case OpDelete:
		var r DeleteResponse
		r.Existed, err = h.Store.KVDelete(a, req.Key)
		resp = r
	case OpIncrement:
		var r IncrementResponse
		r.Value, err = h.Store.KVIncrement(a, req.Key, req.Delta)
		resp = r
	case OpKeys:
		limit := req.Limit
		if limit == 0 {
			limit = DefaultKeysLimit
		}
		var r KeysResponse
		r.Keys, err = h.Store.KVKeys(a, req.Prefix, req.After, limit)
		resp = r
	case OpCompareAndSet:
		var old []byte
		if req.Old != nil {
			old = *req.Old
			if old == nil {
				old = []byte{} // an empty value, not "must not exist"
			}
		}
		var r CompareAndSetResponse
		r.Swapped, err = h.Store.KVCompareAndSet(a, req.Key, old, req.New)
		resp = r
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", capabilities.KV, call.Operation, err)
	}
	if resp == nil {
		return nil, nil
	}
	return msgpack.Marshal(resp)
}
