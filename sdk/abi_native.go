//go:build !wasip1

package sdk

import (
	"os"
	"slices"
	"unsafe"

	"github.com/trellis-edge/trellis/sdk/internal/nativeabi"
)

// A native build has no waPC host. It exists so that the package compiles
// with the rest of the module and so that the dispatch code can be tested
// natively: the functions below stand in for the wasm imports and forward
// to nativeHost, which the package's tests replace with a fake.

// abi has the same shape as the wasm imports.
type abi interface {
	guestRequest(operation, payload *byte)
	guestResponse(ptr *byte, n uint32)
	guestError(msg string)
	hostCall(binding, namespace, operation string, payload *byte, payloadLen uint32) uint32
	hostResponseLen() uint32
	hostResponse(ptr *byte)
	hostErrorLen() uint32
	hostError(ptr *byte)
	consoleLog(msg string)
}

var nativeHost abi = noHost{}

func guestRequest(operation, payload *byte) { nativeHost.guestRequest(operation, payload) }
func guestResponse(ptr *byte, n uint32)     { nativeHost.guestResponse(ptr, n) }
func guestError(msg string)                 { nativeHost.guestError(msg) }
func hostCall(binding, namespace, operation string, payload *byte, payloadLen uint32) uint32 {
	return nativeHost.hostCall(binding, namespace, operation, payload, payloadLen)
}
func hostResponseLen() uint32 { return nativeHost.hostResponseLen() }
func hostResponse(ptr *byte)  { nativeHost.hostResponse(ptr) }
func hostErrorLen() uint32    { return nativeHost.hostErrorLen() }
func hostError(ptr *byte)     { nativeHost.hostError(ptr) }
func consoleLog(msg string)   { nativeHost.consoleLog(msg) }

// The hooks through which package sdktest installs its fake host. They are
// set here rather than exported from sdk so that the public API stays what
// a wasm actor uses.
func init() {
	nativeabi.Install = installHost
	nativeabi.GuestCall = guestCall
}

// installHost makes h the host and returns what restores the previous host
// and the handlers registered so far.
func installHost(h nativeabi.ABI) (restore func()) {
	oldHost, oldRoutes := nativeHost, slices.Clip(routes)
	nativeHost, inCall = exportedABI{h}, false
	return func() { nativeHost, routes, inCall = oldHost, oldRoutes, false }
}

// exportedABI adapts a nativeabi.ABI to abi.
type exportedABI struct{ h nativeabi.ABI }

func (e exportedABI) guestRequest(operation, payload *byte) { e.h.GuestRequest(operation, payload) }
func (e exportedABI) guestResponse(ptr *byte, n uint32)     { e.h.GuestResponse(ptr, n) }
func (e exportedABI) guestError(msg string)                 { e.h.GuestError(msg) }
func (e exportedABI) hostCall(binding, namespace, operation string, payload *byte, payloadLen uint32) uint32 {
	return e.h.HostCall(binding, namespace, operation, payload, payloadLen)
}
func (e exportedABI) hostResponseLen() uint32 { return e.h.HostResponseLen() }
func (e exportedABI) hostResponse(ptr *byte)  { e.h.HostResponse(ptr) }
func (e exportedABI) hostErrorLen() uint32    { return e.h.HostErrorLen() }
func (e exportedABI) hostError(ptr *byte)     { e.h.HostError(ptr) }
func (e exportedABI) consoleLog(msg string)   { e.h.ConsoleLog(msg) }

// noHost answers every host call with an error and sends the console log to
// stderr. Nothing calls into the guest natively, so the guest half is inert.
type noHost struct{}

const noHostError = "not running in a waPC host (native build)"

func (noHost) guestRequest(operation, payload *byte) {}
func (noHost) guestResponse(ptr *byte, n uint32)     {}
func (noHost) guestError(msg string)                 {}
func (noHost) hostCall(binding, namespace, operation string, payload *byte, payloadLen uint32) uint32 {
	return 0
}
func (noHost) hostResponseLen() uint32 { return 0 }
func (noHost) hostResponse(ptr *byte)  {}
func (noHost) hostErrorLen() uint32    { return uint32(len(noHostError)) }
func (noHost) hostError(ptr *byte)     { copy(unsafe.Slice(ptr, len(noHostError)), noHostError) }
func (noHost) consoleLog(msg string)   { os.Stderr.WriteString(msg + "\n") }
