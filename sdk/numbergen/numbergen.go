// Package numbergen is the guest side of trellis:numbergen: random numbers
// and GUIDs from the host's cryptographic source. It needs no grant.
//
// A Go actor can also read crypto/rand, which the host backs with the same
// kind of source; numbergen is what wasmCloud actors use, and gives
// uniform numbers in a range without modulo bias.
//
//	id, err := numbergen.GenerateGuid()
//	die, err := numbergen.RandomInRange(1, 6)
//
// Errors the host returns are *sdk.HostError; an answer that does not
// decode is an error naming the operation.
package numbergen

import (
	"github.com/trellis-edge/trellis/sdk/internal/msgpack"
	"github.com/trellis-edge/trellis/sdk/internal/wire"
)

// Namespace is the contract's namespace.
const Namespace = "trellis:numbergen"

// GenerateGuid returns a new version 4 UUID in its text form
// ("3f1c...-...").
func GenerateGuid() (string, error) {
	resp, err := wire.Call(Namespace, "GenerateGuid", nil)
	if err != nil {
		return "", err
	}
	d := msgpack.NewDecoder(resp)
	s, err := d.String()
	if err == nil {
		err = d.End()
	}
	if err == nil && s == "" {
		err = wire.Invalid("sdk/numbergen: GenerateGuid response", "empty")
	}
	if err != nil {
		return "", &wire.Error{What: "sdk/numbergen: GenerateGuid response", Err: err}
	}
	return s, nil
}

// Random32 returns a uniformly random 32-bit number.
func Random32() (uint32, error) {
	resp, err := wire.Call(Namespace, "Random32", nil)
	if err != nil {
		return 0, err
	}
	return decodeUint32("sdk/numbergen: Random32 response", resp)
}

// RandomInRange returns a uniformly random number in [min, max]; min over
// max is an error from the host.
func RandomInRange(min, max uint32) (uint32, error) {
	b := msgpack.AppendMapHeader(nil, 2)
	b = msgpack.AppendUint(msgpack.AppendString(b, "min"), uint64(min))
	b = msgpack.AppendUint(msgpack.AppendString(b, "max"), uint64(max))
	resp, err := wire.Call(Namespace, "RandomInRange", b)
	if err != nil {
		return 0, err
	}
	return decodeUint32("sdk/numbergen: RandomInRange response", resp)
}

func decodeUint32(what string, resp []byte) (uint32, error) {
	d := msgpack.NewDecoder(resp)
	if len(resp) == 0 {
		return 0, wire.Invalid(what, "empty")
	}
	n, err := d.Uint32()
	if err == nil {
		err = d.End()
	}
	if err != nil {
		return 0, &wire.Error{What: what, Err: err}
	}
	return n, nil
}
