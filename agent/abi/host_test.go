package abi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// memoryModule is a wasm module with one page of memory and nothing else:
// the smallest real guest the host functions can act on.
var memoryModule = []byte("\x00asm\x01\x00\x00\x00\x05\x03\x01\x00\x01")

func newGuest(t testing.TB) api.Module {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	t.Cleanup(func() { r.Close(ctx) })
	mod, err := r.InstantiateWithConfig(ctx, memoryModule, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	return mod
}

type echoHost struct{}

func (echoHost) HostCall(_ context.Context, _, ns, _ string, payload []byte) ([]byte, error) {
	if ns == "fail" {
		return nil, errors.New("refused")
	}
	return payload, nil
}

// call runs one host function as wazero would, returning its panic.
func call(ctx context.Context, mod api.Module, fn int, stack []uint64) (p any) {
	defer func() { p = recover() }()
	hostFuncs[fn].fn(ctx, mod, stack)
	return nil
}

func TestGuestRoundTrip(t *testing.T) {
	mod := newGuest(t)
	mem := mod.Memory()
	inv := &Invocation{Operation: "op", Request: []byte("payload"), Host: echoHost{},
		Limits: Limits{MaxResponse: 64, MaxHostPayload: 64, MaxHostCalls: 2}}
	ctx := WithInvocation(context.Background(), inv)
	run := func(name string, params ...uint64) uint64 {
		t.Helper()
		for i, f := range hostFuncs {
			if f.name == name {
				stack := make([]uint64, max(len(params), 1))
				copy(stack, params)
				if p := call(ctx, mod, i, stack); p != nil {
					t.Fatalf("%s panicked: %v", name, p)
				}
				return stack[0]
			}
		}
		t.Fatalf("no host function %s", name)
		return 0
	}
	run("__guest_request", 100, 200)
	if op, _ := mem.Read(100, 2); string(op) != "op" {
		t.Fatalf("operation written as %q", op)
	}
	if p, _ := mem.Read(200, 7); string(p) != "payload" {
		t.Fatalf("payload written as %q", p)
	}
	mem.WriteString(300, "ns")
	mem.WriteString(310, "hello")
	if ok := run("__host_call", 0, 0, 300, 2, 0, 0, 310, 5); ok != 1 {
		t.Fatal("host call failed")
	}
	if n := run("__host_response_len"); n != 5 {
		t.Fatalf("host response len %d", n)
	}
	run("__host_response", 400)
	if r, _ := mem.Read(400, 5); string(r) != "hello" {
		t.Fatalf("host response %q", r)
	}
	mem.WriteString(300, "fail")
	if ok := run("__host_call", 0, 0, 300, 4, 0, 0, 310, 5); ok != 0 {
		t.Fatal("failing host call reported success")
	}
	if n := run("__host_error_len"); n != 7 {
		t.Fatalf("host error len %d", n)
	}
	run("__host_error", 500)
	if e, _ := mem.Read(500, 7); string(e) != "refused" {
		t.Fatalf("host error %q", e)
	}
	run("__guest_response", 310, 5)
	mem.WriteString(310, "XXXXX") // the response must have been copied out
	if string(inv.Response) != "hello" {
		t.Fatalf("response %q aliases guest memory", inv.Response)
	}
	// A third host call is over MaxHostCalls.
	for i, f := range hostFuncs {
		if f.name == "__host_call" {
			p := call(ctx, mod, i, []uint64{0, 0, 300, 2, 0, 0, 310, 5})
			var fault *Fault
			if e, ok := p.(error); !ok || !errors.As(e, &fault) || !errors.Is(fault, ErrTooManyHostCalls) {
				t.Fatalf("third host call: panic %v, want a Fault with ErrTooManyHostCalls", p)
			}
		}
	}
}

// FuzzHostFunctions drives the host functions with arbitrary sequences of
// calls and arbitrary pointers, lengths and limits against real guest
// memory. The only panic allowed is a *Fault (which wazero turns into a
// failed call); nothing may be read or written outside guest memory, and an
// accepted response never exceeds its limit.
func FuzzHostFunctions(f *testing.F) {
	seed := func(limit uint32, calls ...[9]uint32) []byte {
		var b bytes.Buffer
		binary.Write(&b, binary.LittleEndian, limit)
		for _, c := range calls {
			binary.Write(&b, binary.LittleEndian, c)
		}
		return b.Bytes()
	}
	f.Add(seed(64, [9]uint32{0, 100, 200}, [9]uint32{1, 200, 7}))                         // request, response
	f.Add(seed(64, [9]uint32{3, 0, 0, 300, 2, 0, 0, 310, 5}, [9]uint32{5, 400}))          // host call, response
	f.Add(seed(1<<20, [9]uint32{1, 0xFFFFFFF0, 100}))                                     // wild response
	f.Add(seed(8, [9]uint32{3, 0xFFFF0000, 0x7FFFFFFF, 0, 0, 0, 0, 0, 0}))                // wild host call
	f.Add(seed(64, [9]uint32{0, 65535, 65535}, [9]uint32{8, 65530, 10}, [9]uint32{7, 0})) // edges
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 4 {
			return
		}
		limit := binary.LittleEndian.Uint32(data) % (128 << 10)
		data = data[4:]
		mod := newGuest(t)
		inv := &Invocation{Operation: "operation", Request: []byte("request body"), Host: echoHost{},
			Limits: Limits{MaxResponse: limit, MaxHostPayload: limit, MaxHostCalls: 4}}
		ctx := WithInvocation(context.Background(), inv)
		for len(data) >= 36 {
			var c [9]uint32
			for i := range c {
				c[i] = binary.LittleEndian.Uint32(data[4*i:])
			}
			data = data[36:]
			fn := int(c[0] % uint32(len(hostFuncs)))
			stack := make([]uint64, 8)
			for i := range stack {
				stack[i] = uint64(c[i+1])
			}
			if p := call(ctx, mod, fn, stack); p != nil {
				if _, ok := p.(*Fault); !ok {
					t.Fatalf("%s panicked with %T %v, want only *Fault", hostFuncs[fn].name, p, p)
				}
				return // wazero would have ended the call here
			}
			if uint32(len(inv.Response)) > limit {
				t.Fatalf("accepted a response of %d bytes over the limit %d", len(inv.Response), limit)
			}
		}
	})
}
