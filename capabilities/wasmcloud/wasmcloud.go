// Package wasmcloud holds the wire shapes of the wasmCloud 0.x capability
// contracts, so that real wasmCloud and waSCC actors run on Trellis
// unmodified: the namespaces and operation names of each era, and msgpack
// codecs for every payload an actor sends or receives on them.
//
// It is pure data and codecs: no dispatch, no I/O, no providers. The
// handlers that serve wasmcloud:keyvalue and the others import it and
// translate to the native trellis:* contracts. It is a leaf: it imports only
// capabilities and msgpack, and nothing in Trellis below the handlers needs it.
//
// # Eras
//
// Three generations of actors speak these contracts, with different
// operation names and, in places, different shapes for the same operation:
//
//   - [EraWasmbus]: wasmCloud 0.50 and later (wasmbus-rpc, smithy models in the
//     public repo wasmCloud/interfaces). Operation names are qualified with
//     the service, "KeyValue.Increment"; scalar inputs and outputs are bare
//     msgpack values; HTTP headers are map<string, list<string>>.
//   - [Era018]: wasmCloud 0.18 (widl models in wasmCloud/actor-interfaces).
//     Unqualified names ("Add"); every input and output is a map; HTTP
//     headers are map<string, string>.
//   - [EraWaSCC]: waSCC (wascc-codec), namespaces wascc:*. Mostly the 0.18
//     shapes; the differences are noted where they occur.
//
// Both legacy eras (0.18 and waSCC) share op names and most shapes; every
// codec takes the era so that the few differences cannot be forgotten.
//
// # Decoding rules
//
// Structs are msgpack maps with string keys; keys are matched exactly
// (aliases, each with its public source, are listed where they exist);
// unknown keys are skipped, as the reference decoders do. A field an era's
// reference decoder requires is required here too, so that a wrong key name
// (query_string for queryString) is an error that names the field, not a
// silently empty value. Integers are accepted in any msgpack width and
// range-checked; nil reads as the zero value. Every error wraps
// [capabilities.ErrBadPayload] and is a [*PayloadError].
//
// Decoders never panic, allocate in proportion to what a payload holds
// rather than to the lengths it declares, and bound the nesting they skip:
// they use a small bounds-checked reader rather than msgpack/v5's Decoder,
// whose DecodeBytes allocates a bin's declared length before reading it and
// whose Skip recurses without a depth bound. Encoding uses msgpack/v5.
//
// Two framing quirks are handled for every payload: a leading 0xc1 byte (the
// msgpack-format prefix of later wasmbus-rpc releases, wasmCloud/weld
// rpc-rs/src/common.rs message_format) is dropped, and a leading 0x7f (its
// CBOR prefix) is refused as unsupported. Decoders of what an actor returns
// from an invocation ([DecodeHTTPResponse], [DecodeHealthResponse]) also
// accept exactly one trailing 0x00 byte, which one AssemblyScript actor
// appends to its msgpack response (Trellis FIELD-NOTES, "waPC and wasmCloud
// 0.x actors"); any other trailing byte is an error.
package wasmcloud

import (
	"strconv"

	"github.com/trellis-edge/trellis/capabilities"
)

// Era is a generation of wasmCloud actor interfaces.
type Era uint8

// The eras, newest first.
const (
	// EraWasmbus is wasmCloud ≥ 0.50: wasmbus-rpc and the smithy models of
	// wasmCloud/interfaces.
	EraWasmbus Era = iota + 1
	// Era018 is wasmCloud 0.18: the widl models of wasmCloud/actor-interfaces.
	Era018
	// EraWaSCC is waSCC: wascc-codec and the wascc:* namespaces.
	EraWaSCC
)

// String returns the era's name as used in errors and tables.
func (e Era) String() string {
	switch e {
	case EraWasmbus:
		return "wasmbus"
	case Era018:
		return "0.18"
	case EraWaSCC:
		return "waSCC"
	}
	return "era(" + strconv.Itoa(int(e)) + ")"
}

func (e Era) valid() bool { return e >= EraWasmbus && e <= EraWaSCC }

// legacy reports whether e is one of the pre-wasmbus eras, which share op
// names and most shapes.
func (e Era) legacy() bool { return e == Era018 || e == EraWaSCC }

// Namespaces (capability contract ids) an actor's host calls name.
const (
	// KeyValue is wasmcloud:keyvalue, in both the wasmbus and the 0.18 era
	// (the op name tells them apart: "KeyValue.Get" against "Get").
	KeyValue = "wasmcloud:keyvalue"
	// HTTPServer is wasmcloud:httpserver (0.18 and wasmbus); the actor
	// receives on it and makes no host calls.
	HTTPServer = "wasmcloud:httpserver"
	// Messaging is wasmcloud:messaging (0.18 and wasmbus).
	Messaging = "wasmcloud:messaging"
	// Logging is the wasmbus builtin wasmcloud:builtin:logging.
	Logging = "wasmcloud:builtin:logging"
	// NumberGen is the wasmbus builtin wasmcloud:builtin:numbergen.
	NumberGen = "wasmcloud:builtin:numbergen"
	// Logging018 is wasmCloud 0.18's wasmcloud:logging
	// (wasmCloud/actor-interfaces logging/rust/src/generated.rs).
	Logging018 = "wasmcloud:logging"
	// Extras018 is wasmCloud 0.18's wasmcloud:extras, numbergen's predecessor
	// (wasmCloud/actor-interfaces extras/rust/src/generated.rs).
	Extras018 = "wasmcloud:extras"

	// WaSCCKeyValue is wascc:keyvalue (wasmCloud/wascc-actor src/keyvalue.rs).
	WaSCCKeyValue = "wascc:keyvalue"
	// WaSCCHTTPServer is wascc:http_server, with an underscore
	// (protochron/wascc-codec src/http.rs; wascc-host examples bind it).
	WaSCCHTTPServer = "wascc:http_server"
	// WaSCCMessaging is wascc:messaging (wasmCloud/wascc-actor src/messaging.rs).
	WaSCCMessaging = "wascc:messaging"
	// WaSCCLogging is wascc:logging (wasmCloud/wascc-actor src/logging.rs).
	WaSCCLogging = "wascc:logging"
	// WaSCCExtras is wascc:extras (wasmCloud/wascc-actor src/extras.rs). Its
	// payloads are rmp-serde encodings of Rust enums, which this package
	// does not decode; only its op names are in the table.
	WaSCCExtras = "wascc:extras"
)

// PayloadError is a payload that does not have the shape its operation
// needs. It wraps capabilities.ErrBadPayload.
type PayloadError struct {
	// Shape names what was being decoded: a smithy or widl type name such
	// as "HttpRequest", or an op's bare value such as "KeyValue.Increment reply".
	Shape string
	// Field is the msgpack map key at fault ("queryString"), with an index
	// or map key appended for elements ("header[Accept]"); empty when the
	// payload as a whole is wrong.
	Field string
	// Reason says what was wrong.
	Reason string
}

func (e *PayloadError) Error() string {
	where := e.Shape
	if e.Field != "" {
		where += "." + e.Field
	}
	return capabilities.ErrBadPayload.Error() + ": " + where + ": " + e.Reason
}

// Unwrap returns capabilities.ErrBadPayload.
func (e *PayloadError) Unwrap() error { return capabilities.ErrBadPayload }
