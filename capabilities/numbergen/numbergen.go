// Package numbergen is the trellis:numbergen contract: random numbers and
// GUIDs from the host's cryptographic source. It needs no grant.
//
// Operations and their msgpack payloads:
//
//	GenerateGuid   nil              → str (RFC 4122 version 4 UUID)
//	RandomInRange  {min: u32, max: u32} → u32 in [min, max]
//	Random32       nil              → u32
package numbergen

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/capabilities"
)

// Operation names (the same as wasmCloud's builtin numbergen).
const (
	OpGenerateGuid  = "GenerateGuid"
	OpRandomInRange = "RandomInRange"
	OpRandom32      = "Random32"
)

// Range is RandomInRange's input.
type Range struct {
	Min uint32 `msgpack:"min"`
	Max uint32 `msgpack:"max"`
}

// Handler serves trellis:numbergen.
type Handler struct {
	// Rand is the source; nil means crypto/rand.
	Rand io.Reader
}

func (h Handler) source() io.Reader {
	if h.Rand != nil {
		return h.Rand
	}
	return rand.Reader
}

// Handle implements capabilities.Handler.
func (h Handler) Handle(_ context.Context, call capabilities.Call) ([]byte, error) {
	switch call.Operation {
	case OpGenerateGuid:
		g, err := Guid(h.source())
		if err != nil {
			return nil, err
		}
		return msgpack.Marshal(g)
	case OpRandom32:
		n, err := uint32From(h.source())
		if err != nil {
			return nil, err
		}
		return msgpack.Marshal(n)
	case OpRandomInRange:
		var r Range
		if err := capabilities.CheckMsgpack(call.Payload, capabilities.MaxPayloadDepth); err != nil {
			return nil, fmt.Errorf("%s: %w", OpRandomInRange, err)
		}
		if err := msgpack.Unmarshal(call.Payload, &r); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", capabilities.ErrBadPayload, OpRandomInRange, err)
		}
		if r.Min > r.Max {
			return nil, fmt.Errorf("%w: %s: min %d is over max %d", capabilities.ErrBadPayload, OpRandomInRange, r.Min, r.Max)
		}
		n, err := InRange(h.source(), r.Min, r.Max)
		if err != nil {
			return nil, err
		}
		return msgpack.Marshal(n)
	}
	return nil, fmt.Errorf("%w: %s %q", capabilities.ErrUnknownOperation, capabilities.Numbergen, call.Operation)
}

// Guid returns a version 4 UUID in its canonical text form.
func Guid(r io.Reader) (string, error) {
	var u [16]byte
	if _, err := io.ReadFull(r, u[:]); err != nil {
		return "", fmt.Errorf("numbergen: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]), nil
}

func uint32From(r io.Reader) (uint32, error) {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, fmt.Errorf("numbergen: %w", err)
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

// InRange returns a uniform number in [min, max] (rejection sampling, no
// modulo bias).
func InRange(r io.Reader, min, max uint32) (uint32, error) {
	span := uint64(max) - uint64(min) + 1
	if span == 1<<32 {
		return uint32From(r)
	}
	limit := (1 << 32) - (1<<32)%span
	for {
		n, err := uint32From(r)
		if err != nil {
			return 0, err
		}
		if uint64(n) < limit {
			return min + uint32(uint64(n)%span), nil
		}
	}
}
