// Package wire is what the SDK's contract packages share: the host call to
// a native contract and the decoding of a msgpack map payload with errors
// that say which operation and which key. Only packages of the SDK import
// it.
package wire

import (
	"github.com/trellis-edge/trellis/sdk"
	"github.com/trellis-edge/trellis/sdk/internal/msgpack"
)

// Call calls operation of the native contract namespace through the
// default binding. Host errors are *sdk.HostError.
func Call(namespace, operation string, payload []byte) ([]byte, error) {
	return sdk.HostCall("default", namespace, operation, payload)
}

// DecodeMap decodes b, which what names in errors ("sdk/kv: Get
// response"), as exactly one map: field reads the value of each key and
// skips keys it does not know (d.Skip), so that a host may add keys.
func DecodeMap(what string, b []byte, field func(d *msgpack.Decoder, key string) error) error {
	d := msgpack.NewDecoder(b)
	err := d.Map(func(key string) error { return field(d, key) })
	if err == nil {
		err = d.End()
	}
	if err != nil {
		return &Error{What: what, Err: err}
	}
	return nil
}

// Error is a payload that does not decode.
type Error struct {
	What string // the payload, such as "sdk/kv: Get response"
	Err  error
}

func (e *Error) Error() string { return e.What + ": " + e.Err.Error() }

// Unwrap returns the decoding error.
func (e *Error) Unwrap() error { return e.Err }

// Invalid returns an *Error for what with a reason of its own ("no value").
func Invalid(what, reason string) error {
	return &Error{What: what, Err: reasonError(reason)}
}

type reasonError string

func (r reasonError) Error() string { return string(r) }
