// Package sdk lets a standard Go program be a Trellis actor: a WebAssembly
// module that speaks the waPC protocol. It is imported by actors only; the
// host side lives in agent/.
//
// An actor registers one Handler per operation and calls the host through
// HostCall, CallActor, Log and the leveled Debug, Info, Warn and Error:
//
//	//go:build wasip1
//
//	package main
//
//	import "github.com/trellis-edge/trellis/sdk"
//
//	func init() {
//		sdk.Handle("echo", func(payload []byte) ([]byte, error) {
//			return payload, nil
//		})
//	}
//
//	func main() {}
//
// Build it as a reactor (c-shared) module; -trimpath and the empty build ID
// make the output reproducible, -s -w drop the wasm name section (36 KB;
// the Go runtime's own panic traces keep their function names):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -ldflags="-s -w -buildid=" -o echo.wasm .
//
// # Register handlers in init
//
// A c-shared module exports _initialize, which the host calls once after
// instantiating it. _initialize starts the Go runtime and runs the package
// init functions, then returns to the host: main.main never runs (see
// runtime.main, "c-archive or c-shared has a main, but it is not
// executed"). So call Handle from init functions; main must exist and can
// stay empty. A call that arrives while no handler is registered fails with
// an error that says so. Without -buildmode=c-shared the module has _start
// instead, which runs main and then exits the module: no call can follow.
//
// # Calls
//
// The host calls __guest_call, which reads the operation name and the
// payload, runs the operation's handler and returns its response (1) or its
// error text (0). An operation nobody registered is an error naming it.
// Calls into one instance run one at a time. The host must not call the
// instance again from inside one of its host calls (an actor calling
// itself): the Go runtime cannot return from such a nested call without
// losing the outer one, so the SDK reports it and traps.
//
// Goroutines started by a handler run only while some call is in progress
// and blocked (on a channel, a sleep, a host call that blocks): between
// calls the module does not run at all. A handler that blocks while no
// other goroutine can make progress dies with "all goroutines are asleep".
//
// # Panics and traps
//
// A handler panic is not recovered: the Go runtime writes the panic and its
// stack trace to stderr and aborts the module with a wasm "unreachable"
// trap (in a c-shared module Go crashes rather than calling proc_exit).
// The host discards a trapped instance, so the next call meets a fresh
// instance with fresh package state. Fatal runtime errors, such as running
// out of memory under the host's page limit, end the same way. os.Exit
// calls WASI proc_exit, which also ends the instance.
//
// # Memory
//
// A Go module declares its initial memory as its static data plus 1 MiB,
// and no maximum: 32 pages (2 MiB) for a small actor like the echo example,
// more for bigger ones (the kitchen test actor, with fmt and encoding/json,
// declares 44). A host page limit below that rejects the module when it is
// compiled. The heap grows the memory in steps as the actor allocates and
// never gives it back: wasm memory cannot shrink, so an instance that once
// held 100 MB keeps 100 MB of linear memory until the host discards it.
// Go's allocator also needs headroom: under a 32 MiB limit an allocation of
// 20 MB with 10 MB live already fails.
//
// # Cost
//
// Measured under wazero's compiler, an allocation costs about a microsecond
// in a Go guest, a map lookup half of one, a defer a third of one, and a
// whole echo call through a minimal host about 1.7 µs. The call path
// therefore reuses its buffers (see Handler for what that means for
// payload), finds handlers by a linear scan and defers nothing: it costs
// about half a microsecond more than a bare export that copies its payload
// back, against two microseconds more when it allocated the payload, used
// a map and recovered panics.
//
// # Host services
//
// Standard library I/O goes through WASI, configured by the host: in
// Trellis stdout and stderr are captured by the host, time.Now and
// crypto/rand are real, and there is no filesystem, no environment and no
// argument. Without the host's nanosleep (wazero WithSysNanosleep)
// time.Sleep still waits the right time, but by polling the clock, which
// costs CPU.
//
// # Contracts
//
// The packages below this one wrap the native contracts in typed Go calls,
// with the msgpack shapes of docs/capabilities.md; each call is a host call
// that the host allows only where the actor's grants do, and a refused
// call is an error whose text says "denied":
//
//	sdk/kv          trellis:kv         the actor's own key-value bucket
//	sdk/sensor      trellis:sensor     named sensors (temperature, humidity, pressure)
//	sdk/gpio        trellis:gpio       GPIO lines: read, write, PWM, watch edges
//	sdk/messaging   trellis:messaging  NATS publish, request, subscribe; HandleMessage
//	sdk/telemetry   trellis:telemetry  telemetry topics
//	sdk/timer       trellis:timer      timers on the actor itself; HandleTicks
//	sdk/httpserver  trellis:http       HTTP routes to the actor; Handle
//	sdk/numbergen   trellis:numbergen  random numbers and GUIDs
//
// trellis:log is Debug, Info, Warn and Error here. Errors the host returns
// are *HostError; an answer that does not decode is an error that names
// the operation and the key at fault. The SDK imports nothing but the
// standard library: none of the host's packages end up in an actor.
//
// # Native builds and tests
//
// On other targets than wasip1 the package compiles so that the module
// builds and vets as a whole, and so that actors are tested natively;
// there, HostCall fails because there is no host, and Log writes to
// stderr. Package sdktest installs a fake host instead, which a test
// serves (with its own answers, or with the host's real handlers) while
// it calls the actor's operations as the host would. An actor whose
// main.go has no build constraint is tested like any Go package.
package sdk
