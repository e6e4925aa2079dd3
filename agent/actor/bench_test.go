package actor

import (
	"context"
	"os"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/trellis-edge/trellis/agent/abi"
)

// Benchmarks for the budgets in docs/benchmarks.md. Run with `make bench`.

var benchActors = []struct{ name, fixture string }{
	{"tiny-wat", "echo"},
	{"go-echo", "examples/actors/echo/echo"},
}

// BenchmarkInvoke measures in-process calls through the runtime: pool,
// deadline, invocation state, copies, error mapping; every core busy.
func BenchmarkInvoke(b *testing.B) {
	for _, ba := range benchActors {
		b.Run(ba.name, func(b *testing.B) {
			r, _ := newRuntime(b, Options{})
			start(b, r, "bench", ba.fixture, Limits{MaxInstances: runtime.GOMAXPROCS(0)})
			payload := []byte("hello, trellis")
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if _, err := r.Invoke(ctx, "bench", "echo", payload); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}

// BenchmarkRawCall is the floor for BenchmarkInvoke: the same export called
// straight through wazero, with the same runtime config, a minimal waPC host
// (no limits, no copies, no pool) and one instance per goroutine.
func BenchmarkRawCall(b *testing.B) {
	for _, ba := range benchActors {
		b.Run(ba.name, func(b *testing.B) {
			ctx := context.Background()
			wr := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(true))
			defer wr.Close(ctx)
			if err := instantiateRawHost(ctx, wr); err != nil {
				b.Fatal(err)
			}
			compiled, err := wr.CompileModule(ctx, fixture(b, ba.fixture))
			if err != nil {
				b.Fatal(err)
			}
			inits, err := checkModule(compiled)
			if err != nil {
				b.Fatal(err)
			}
			payload := []byte("hello, trellis")
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				st := &rawState{op: "echo", req: payload}
				ctx := context.WithValue(ctx, rawKey{}, st)
				mod, err := wr.InstantiateModule(ctx, compiled, wazero.NewModuleConfig().WithName("").WithStartFunctions())
				if err != nil {
					b.Error(err)
					return
				}
				for _, f := range inits {
					if _, err := mod.ExportedFunction(f).Call(ctx); err != nil {
						b.Error(err)
						return
					}
				}
				gc := mod.ExportedFunction("__guest_call")
				var stack [2]uint64
				for pb.Next() {
					stack[0], stack[1] = uint64(len(st.op)), uint64(len(st.req))
					if err := gc.CallWithStack(ctx, stack[:]); err != nil || stack[0] != 1 {
						b.Error("raw call failed", err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}

type rawKey struct{}

type rawState struct {
	op   string
	req  []byte
	resp []byte
}

// instantiateRawHost is the thinnest waPC host that can run the echo
// actors: WASI for the Go actor, and the waPC functions with no checks,
// copies or limits (the ones echo does not use do nothing).
func instantiateRawHost(ctx context.Context, wr wazero.Runtime) error {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, wr); err != nil {
		return err
	}
	st := func(ctx context.Context) *rawState { return ctx.Value(rawKey{}).(*rawState) }
	b := wr.NewHostModuleBuilder("wapc")
	for _, f := range hostFuncSigs() {
		fn := api.GoModuleFunc(func(context.Context, api.Module, []uint64) {})
		switch f.name {
		case "__guest_request":
			fn = func(ctx context.Context, m api.Module, s []uint64) {
				x := st(ctx)
				m.Memory().WriteString(uint32(s[0]), x.op)
				m.Memory().Write(uint32(s[1]), x.req)
			}
		case "__guest_response":
			fn = func(ctx context.Context, m api.Module, s []uint64) {
				st(ctx).resp, _ = m.Memory().Read(uint32(s[0]), uint32(s[1]))
			}
		}
		b.NewFunctionBuilder().WithGoModuleFunction(fn, f.params, f.results).Export(f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

type sig struct {
	name            string
	params, results []api.ValueType
}

func hostFuncSigs() []sig {
	i := api.ValueTypeI32
	return []sig{
		{"__guest_request", []api.ValueType{i, i}, nil},
		{"__guest_response", []api.ValueType{i, i}, nil},
		{"__guest_error", []api.ValueType{i, i}, nil},
		{"__host_call", []api.ValueType{i, i, i, i, i, i, i, i}, []api.ValueType{i}},
		{"__host_response_len", nil, []api.ValueType{i}},
		{"__host_response", []api.ValueType{i}, nil},
		{"__host_error_len", nil, []api.ValueType{i}},
		{"__host_error", []api.ValueType{i}, nil},
		{"__console_log", []api.ValueType{i, i}, nil},
	}
}

// BenchmarkStart compares starting the Go echo actor from a cold data dir
// (compile to native code) with a warm compilation cache (load native code),
// each in a fresh Runtime as after a reboot.
func BenchmarkStart(b *testing.B) {
	wasm := fixture(b, "examples/actors/echo/echo")
	startOnce := func(b *testing.B, dir string) {
		r, err := New(Options{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Start(context.Background(), "echo", wasm, Limits{}); err != nil {
			b.Fatal(err)
		}
		if err := r.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			dir, err := os.MkdirTemp(b.TempDir(), "cold")
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			startOnce(b, dir)
		}
	})
	b.Run("warm", func(b *testing.B) {
		dir := b.TempDir()
		startOnce(b, dir) // fill the cache
		for b.Loop() {
			startOnce(b, dir)
		}
	})
}

// BenchmarkInstanceMemory measures the heap each pooled instance of the tiny
// actor costs beyond its guest memory.
func BenchmarkInstanceMemory(b *testing.B) {
	const n = 500
	for b.Loop() {
		r, _ := newRuntime(b, Options{})
		a := start(b, r, "tiny", "echo", Limits{MaxInstances: n + 1})
		instances := make([]*instance, 0, n)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		guest := uint64(0)
		for range n {
			a.slots <- struct{}{}
			in, err := a.newInstance(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			// A pooled instance has served calls: its call engine and
			// stack exist. Count that too.
			inv := &abi.Invocation{Operation: "echo", Request: []byte("warm"), Limits: a.abiLimits}
			in.stack[0], in.stack[1] = 4, 4
			if err := in.guestCall.CallWithStack(abi.WithInvocation(context.Background(), inv), in.stack[:]); err != nil {
				b.Fatal(err)
			}
			guest += uint64(in.mod.Memory().Size())
			instances = append(instances, in)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perInstance := (float64(after.HeapInuse) - float64(before.HeapInuse) - float64(guest)) / n
		b.ReportMetric(perInstance/1024, "KiB/instance")
		b.ReportMetric(float64(guest)/n/1024, "guest-KiB/instance")
		for _, in := range instances {
			a.idle <- in
		}
	}
}

// BenchmarkTimeoutOvershoot measures how far past its deadline an infinite
// loop runs before the host stops it.
func BenchmarkTimeoutOvershoot(b *testing.B) {
	const deadline = 20 * time.Millisecond
	r, _ := newRuntime(b, Options{})
	start(b, r, "loop", "loop", Limits{CallTimeout: deadline})
	var over []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := r.Invoke(context.Background(), "loop", "op", nil); CodeOf(err) != CodeTimeout {
			b.Fatalf("want a timeout, got %v", err)
		}
		over = append(over, time.Since(t0)-deadline)
	}
	sort.Slice(over, func(i, j int) bool { return over[i] < over[j] })
	b.ReportMetric(float64(over[len(over)/2].Microseconds()), "overshoot-µs-p50")
}
