package numbergen

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
)

// WasmCloud serves wasmCloud's number generators: wasmbus
// wasmcloud:builtin:numbergen (NumberGen.GenerateGuid, NumberGen.Random32,
// NumberGen.RandomInRange) and 0.18's wasmcloud:extras (RequestGuid,
// RequestRandom, RequestSequence), with their exact payloads (see
// capabilities/wasmcloud). NumberGen.RandomBytes and waSCC's wascc:extras,
// whose wire forms are unconfirmed, answer that they are not served.
type WasmCloud struct {
	Handler
	seq *atomic.Uint64 // RequestSequence's counter; shared by copies
}

// NewWasmCloud returns the compatibility handler over h's source.
func NewWasmCloud(h Handler) WasmCloud { return WasmCloud{Handler: h, seq: new(atomic.Uint64)} }

// Namespaces the WasmCloud handler serves.
var Namespaces = []string{wasmcloud.NumberGen, wasmcloud.Extras018}

// Handle implements capabilities.Handler.
func (h WasmCloud) Handle(ctx context.Context, call capabilities.Call) ([]byte, error) {
	op, ok := wasmcloud.LookupHostCall(call.Contract, call.Operation)
	if !ok {
		return nil, fmt.Errorf("%w: %s %q", capabilities.ErrUnknownOperation, call.Contract, call.Operation)
	}
	switch op.Name {
	case wasmcloud.OpGenerateGuid, wasmcloud.OpLegacyRequestGuid:
		g, err := Guid(h.source())
		if err != nil {
			return nil, err
		}
		return wasmcloud.EncodeString(g)
	case wasmcloud.OpRandom32:
		n, err := uint32From(h.source())
		if err != nil {
			return nil, err
		}
		return wasmcloud.EncodeUint32(n)
	case wasmcloud.OpRandomInRange, wasmcloud.OpLegacyRequestRandom:
		if err := capabilities.CheckMsgpack(call.Payload, capabilities.MaxPayloadDepth); err != nil {
			return nil, fmt.Errorf("%s: %w", call.Operation, err)
		}
		r, err := wasmcloud.DecodeRangeLimit(call.Payload)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", capabilities.ErrBadPayload, call.Operation, err)
		}
		if r.Min > r.Max {
			return nil, fmt.Errorf("%w: %s: min %d is over max %d", capabilities.ErrBadPayload, call.Operation, r.Min, r.Max)
		}
		n, err := InRange(h.source(), r.Min, r.Max)
		if err != nil {
			return nil, err
		}
		return wasmcloud.EncodeUint32(n)
	case wasmcloud.OpLegacyRequestSequence:
		return wasmcloud.EncodeUint64(h.seq.Add(1))
	}
	return nil, fmt.Errorf("%w: %s %q is not served on this host", capabilities.ErrUnknownOperation, call.Contract, call.Operation)
}
