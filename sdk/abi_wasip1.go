//go:build wasip1

package sdk

// The waPC ABI as the guest sees it. A Go string parameter is passed as
// (pointer, length) and a *byte as a pointer into linear memory; Go's
// garbage collector does not move objects, so the host may read and write
// through them for the duration of the call.

//go:wasmexport __guest_call
func wasmGuestCall(operationSize, payloadSize uint32) int32 {
	return guestCall(operationSize, payloadSize)
}

//go:wasmimport wapc __guest_request
func guestRequest(operation, payload *byte)

//go:wasmimport wapc __guest_response
func guestResponse(ptr *byte, n uint32)

//go:wasmimport wapc __guest_error
func guestError(msg string)

//go:wasmimport wapc __host_call
func hostCall(binding, namespace, operation string, payload *byte, payloadLen uint32) uint32

//go:wasmimport wapc __host_response_len
func hostResponseLen() uint32

//go:wasmimport wapc __host_response
func hostResponse(ptr *byte)

//go:wasmimport wapc __host_error_len
func hostErrorLen() uint32

//go:wasmimport wapc __host_error
func hostError(ptr *byte)

//go:wasmimport wapc __console_log
func consoleLog(msg string)
