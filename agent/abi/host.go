package abi

import (
	"context"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Instantiate registers the waPC host functions in r under both import module
// names, ModuleWapc and ModuleWasmbus.
func Instantiate(ctx context.Context, r wazero.Runtime) error {
	for _, name := range []string{ModuleWapc, ModuleWasmbus} {
		b := r.NewHostModuleBuilder(name)
		Export(b)
		if _, err := b.Instantiate(ctx); err != nil {
			return fmt.Errorf("abi: instantiate %s: %w", name, err)
		}
	}
	return nil
}

// hostFunc describes one host function of the protocol.
type hostFunc struct {
	name    string
	fn      api.GoModuleFunc
	params  []api.ValueType
	results []api.ValueType
}

var (
	i32   = api.ValueTypeI32
	i32x1 = []api.ValueType{i32}
	i32x2 = []api.ValueType{i32, i32}
	i32x8 = []api.ValueType{i32, i32, i32, i32, i32, i32, i32, i32}
)

// hostFuncs is the protocol: names and signatures as the waPC SDKs import them.
var hostFuncs = []hostFunc{
	{"__guest_request", guestRequest, i32x2, nil},
	{"__guest_response", guestResponse, i32x2, nil},
	{"__guest_error", guestError, i32x2, nil},
	{"__host_call", hostCall, i32x8, i32x1},
	{"__host_response_len", hostResponseLen, nil, i32x1},
	{"__host_response", hostResponse, i32x1, nil},
	{"__host_error_len", hostErrorLen, nil, i32x1},
	{"__host_error", hostError, i32x1, nil},
	{"__console_log", consoleLog, i32x2, nil},
}

// Export adds the nine host functions to a host module builder.
func Export(b wazero.HostModuleBuilder) {
	for _, f := range hostFuncs {
		b.NewFunctionBuilder().
			WithGoModuleFunction(f.fn, f.params, f.results).
			WithName(f.name).
			Export(f.name)
	}
}

// IsHostFunction reports whether name is one of the protocol's host functions.
func IsHostFunction(name string) bool {
	for _, f := range hostFuncs {
		if f.name == name {
			return true
		}
	}
	return false
}

// fault aborts the guest: wazero recovers the panic and returns it, wrapped,
// from the guest call. The Fault is also recorded on the invocation so the
// caller can classify it without parsing errors.
func fault(inv *Invocation, fn string, err error, format string, args ...any) {
	f := &Fault{Func: fn, Err: err, Msg: fmt.Sprintf(format, args...)}
	if inv != nil && inv.Fault == nil {
		inv.Fault = f
	}
	panic(f)
}

func invocation(ctx context.Context, fn string) *Invocation {
	inv := InvocationFrom(ctx)
	if inv == nil {
		fault(nil, fn, ErrNoInvocation, "no invocation")
	}
	return inv
}

// read returns a view of guest memory [ptr, ptr+n), faulting if it is out of
// bounds or n is over max. The view aliases guest memory: copy what is kept.
func read(inv *Invocation, mod api.Module, fn string, ptr, n, max uint32) []byte {
	if n > max {
		fault(inv, fn, ErrTooLarge, "%d bytes, limit %d", n, max)
	}
	mem := mod.Memory()
	if mem == nil {
		fault(inv, fn, ErrOutOfBounds, "guest has no memory")
	}
	b, ok := mem.Read(ptr, n)
	if !ok {
		fault(inv, fn, ErrOutOfBounds, "ptr=%#x len=%d beyond memory of %d bytes", ptr, n, mem.Size())
	}
	return b
}

func write(inv *Invocation, mod api.Module, fn string, ptr uint32, data []byte) {
	if len(data) == 0 {
		return
	}
	if mem := mod.Memory(); mem == nil || !mem.Write(ptr, data) {
		outOfBounds(inv, mod, fn, ptr, len(data))
	}
}

// writeString is write for a string, without converting it to bytes.
func writeString(inv *Invocation, mod api.Module, fn string, ptr uint32, s string) {
	if s == "" {
		return
	}
	if mem := mod.Memory(); mem == nil || !mem.WriteString(ptr, s) {
		outOfBounds(inv, mod, fn, ptr, len(s))
	}
}

func outOfBounds(inv *Invocation, mod api.Module, fn string, ptr uint32, n int) {
	size := uint32(0)
	if mem := mod.Memory(); mem != nil {
		size = mem.Size()
	}
	fault(inv, fn, ErrOutOfBounds, "ptr=%#x len=%d beyond memory of %d bytes", ptr, n, size)
}

// __guest_request(operation_ptr, payload_ptr)
func guestRequest(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "__guest_request"
	inv := invocation(ctx, fn)
	writeString(inv, mod, fn, api.DecodeU32(stack[0]), inv.Operation)
	write(inv, mod, fn, api.DecodeU32(stack[1]), inv.Request)
}

// __guest_response(ptr, len)
func guestResponse(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "__guest_response"
	inv := invocation(ctx, fn)
	b := read(inv, mod, fn, api.DecodeU32(stack[0]), api.DecodeU32(stack[1]), inv.Limits.MaxResponse)
	inv.Response = append(inv.Response[:0], b...)
}

// __guest_error(ptr, len)
func guestError(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "__guest_error"
	inv := invocation(ctx, fn)
	b := read(inv, mod, fn, api.DecodeU32(stack[0]), api.DecodeU32(stack[1]), inv.Limits.MaxResponse)
	inv.GuestError = string(b)
	inv.GuestErr = true
}

// __host_call(binding_ptr, binding_len, namespace_ptr, namespace_len,
// operation_ptr, operation_len, payload_ptr, payload_len) -> 1 ok, 0 error
func hostCall(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "__host_call"
	inv := invocation(ctx, fn)
	inv.hostCalls++
	if inv.hostCalls > inv.Limits.MaxHostCalls {
		fault(inv, fn, ErrTooManyHostCalls, "limit %d per call", inv.Limits.MaxHostCalls)
	}
	var lens [4]uint32
	total := uint64(0)
	for i := range lens {
		lens[i] = api.DecodeU32(stack[2*i+1])
		total += uint64(lens[i])
	}
	if total > uint64(inv.Limits.MaxHostPayload) {
		fault(inv, fn, ErrTooLarge, "%d bytes, limit %d", total, inv.Limits.MaxHostPayload)
	}
	max := inv.Limits.MaxHostPayload
	binding := string(read(inv, mod, fn, api.DecodeU32(stack[0]), lens[0], max))
	namespace := string(read(inv, mod, fn, api.DecodeU32(stack[2]), lens[1], max))
	operation := string(read(inv, mod, fn, api.DecodeU32(stack[4]), lens[2], max))
	payload := append([]byte(nil), read(inv, mod, fn, api.DecodeU32(stack[6]), lens[3], max)...)

	inv.hostResp, inv.hostErr = nil, ""
	if inv.Host == nil {
		inv.hostErr = "host calls are not available"
		stack[0] = 0
		return
	}
	resp, err := inv.Host.HostCall(ctx, binding, namespace, operation, payload)
	if err != nil {
		inv.hostErr = err.Error()
		stack[0] = 0
		return
	}
	inv.hostResp = resp
	stack[0] = 1
}

// __host_response_len() -> len
func hostResponseLen(ctx context.Context, _ api.Module, stack []uint64) {
	inv := invocation(ctx, "__host_response_len")
	stack[0] = api.EncodeU32(uint32(len(inv.hostResp)))
}

// __host_response(ptr)
func hostResponse(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "__host_response"
	inv := invocation(ctx, fn)
	write(inv, mod, fn, api.DecodeU32(stack[0]), inv.hostResp)
}

// __host_error_len() -> len
func hostErrorLen(ctx context.Context, _ api.Module, stack []uint64) {
	inv := invocation(ctx, "__host_error_len")
	stack[0] = api.EncodeU32(uint32(len(inv.hostErr)))
}

// __host_error(ptr)
func hostError(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "__host_error"
	inv := invocation(ctx, fn)
	writeString(inv, mod, fn, api.DecodeU32(stack[0]), inv.hostErr)
}

// __console_log(ptr, len)
func consoleLog(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "__console_log"
	inv := invocation(ctx, fn)
	b := read(inv, mod, fn, api.DecodeU32(stack[0]), api.DecodeU32(stack[1]), inv.Limits.MaxResponse)
	if inv.Log != nil {
		inv.Log.ConsoleLog(ctx, string(b))
	}
}
