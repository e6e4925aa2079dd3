// Package nativeabi connects package sdk's native (non-wasm) build to a
// fake waPC host: package sdktest installs one through it to run an
// actor's code in ordinary Go tests. In a wasm build nothing uses it.
//
// Package sdk fills in the hooks from its native build's initialisation;
// only sdk and sdktest import this package.
package nativeabi

// ABI is the host's half of the waPC ABI, with the shapes of the wasm
// imports: pointers are into the guest's memory, as they would be in wasm.
type ABI interface {
	GuestRequest(operation, payload *byte)
	GuestResponse(ptr *byte, n uint32)
	GuestError(msg string)
	HostCall(binding, namespace, operation string, payload *byte, payloadLen uint32) uint32
	HostResponseLen() uint32
	HostResponse(ptr *byte)
	HostErrorLen() uint32
	HostError(ptr *byte)
	ConsoleLog(msg string)
}

// Hooks set by package sdk in a native build.
var (
	// Install makes h the host of the sdk's native build, with the
	// handlers registered so far, and returns a function that restores
	// the previous host and drops the handlers registered since.
	Install func(h ABI) (restore func())
	// GuestCall is __guest_call: the host calls it to run an operation.
	GuestCall func(operationSize, payloadSize uint32) int32
)
