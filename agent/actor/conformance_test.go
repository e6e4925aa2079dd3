package actor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestImportModuleNames(t *testing.T) {
	r, _ := newRuntime(t, Options{})
	for _, fix := range []string{"echo", "echo_wasmbus"} {
		t.Run(fix, func(t *testing.T) {
			start(t, r, strings.ReplaceAll(fix, "_", "-"), fix, Limits{})
			got := invoke(t, r, strings.ReplaceAll(fix, "_", "-"), "anything", []byte("hello"))
			if string(got) != "hello" {
				t.Fatalf("response %q, want %q", got, "hello")
			}
		})
	}
}

func TestStartSequence(t *testing.T) {
	tests := []struct {
		fixture string
		want    string // init markers: I=_initialize, S=_start, W=wapc_init
	}{
		{"init_none", ""},
		{"init_start", "S"},
		{"init_initialize", "I"},
		{"init_wapc", "W"},
		{"init_start_wapc", "SW"},
		{"init_all", "IW"}, // _initialize wins over _start; wapc_init after
	}
	r, _ := newRuntime(t, Options{})
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			name := strings.ReplaceAll(tt.fixture, "_", "-")
			start(t, r, name, tt.fixture, Limits{})
			if got := invoke(t, r, name, "x", nil); string(got) != tt.want {
				t.Fatalf("init sequence %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGuestErrorKeepsInstance(t *testing.T) {
	r, _ := newRuntime(t, Options{})
	a := start(t, r, "echo", "echo", Limits{MaxInstances: 1})
	_, err := r.Invoke(t.Context(), "echo", "fail", []byte("x"))
	ce := wantCode(t, err, CodeGuestError)
	if ce.Message != "fail requested" {
		t.Fatalf("message %q, want the guest's text", ce.Message)
	}
	if !errors.Is(err, ErrGuest) || errors.Is(err, ErrTrap) {
		t.Fatalf("errors.Is does not match the code: %v", err)
	}
	if got := invoke(t, r, "echo", "echo", []byte("ok")); string(got) != "ok" {
		t.Fatalf("after a guest error: %q", got)
	}
	if s := a.Stats(); s.Discarded != 0 || s.Instances != 1 || s.Failures != 1 || s.Calls != 2 {
		t.Fatalf("stats %+v: a guest error must not discard the instance", s)
	}
}

func TestPayloadSizes(t *testing.T) {
	r, _ := newRuntime(t, Options{})
	start(t, r, "echo", "echo", Limits{MaxRequest: 2 << 20, MaxResponse: 2 << 20})
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	for _, size := range []int{0, 1, 4096, 1 << 20, 2 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			payload := bytes.Repeat(big, 2)[:size]
			got := invoke(t, r, "echo", "echo", payload)
			if !bytes.Equal(got, payload) {
				t.Fatalf("echoed %d bytes, want %d identical bytes", len(got), len(payload))
			}
		})
	}
	t.Run("over the request limit", func(t *testing.T) {
		_, err := r.Invoke(t.Context(), "echo", "echo", make([]byte, 2<<20+1))
		wantCode(t, err, CodeLimit)
		if got := invoke(t, r, "echo", "echo", []byte("still here")); string(got) != "still here" {
			t.Fatalf("after a rejected request: %q", got)
		}
	})
}

// blocker is a capability that holds host calls until released, so a test
// can keep every instance of an actor busy.
type blocker struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blocker) Dispatch(ctx context.Context, call HostCall) ([]byte, error) {
	if call.Namespace != "block" {
		return nil, fmt.Errorf("unexpected namespace %q", call.Namespace)
	}
	b.entered <- struct{}{}
	select {
	case <-b.release:
		return call.Payload, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestPoolBeyondMaxInstances(t *testing.T) {
	const max = 3
	b := &blocker{entered: make(chan struct{}, 16), release: make(chan struct{})}
	r, _ := newRuntime(t, Options{Capabilities: b})
	a := start(t, r, "relay", "hostcall", Limits{MaxInstances: max, CallTimeout: time.Minute})

	var wg sync.WaitGroup
	errs := make(chan error, max)
	for i := range max {
		wg.Go(func() {
			resp, err := r.Invoke(t.Context(), "relay", "block", []byte(fmt.Sprint(i)))
			if err == nil && string(resp) != fmt.Sprint(i) {
				err = fmt.Errorf("call %d got %q", i, resp)
			}
			errs <- err
		})
	}
	for range max {
		<-b.entered // every instance is now busy in a host call
	}
	if s := a.Stats(); s.Instances != max || s.Idle != 0 {
		t.Fatalf("stats %+v, want %d busy instances", s, max)
	}
	// One more call waits for an instance until its deadline, then is overloaded.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	_, err := r.Invoke(ctx, "relay", "block", nil)
	cancel()
	wantCode(t, err, CodeOverloaded)

	close(b.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s := a.Stats(); s.Instances != max || s.Idle != max || s.Discarded != 0 {
		t.Fatalf("stats %+v after the calls returned", s)
	}
}

func TestConcurrentCalls(t *testing.T) {
	r, _ := newRuntime(t, Options{})
	a := start(t, r, "echo", "echo", Limits{MaxInstances: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				want := fmt.Sprintf("g%d-%d", g, i)
				got, err := r.Invoke(t.Context(), "echo", "echo", []byte(want))
				if err != nil || string(got) != want {
					errs <- fmt.Errorf("call %s: %q, %v", want, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s := a.Stats(); s.Instances > 2 || s.Calls != 800 || s.Failures != 0 {
		t.Fatalf("stats %+v: want ≤ 2 instances, 800 calls, no failures", s)
	}
}

func TestHostCallRouting(t *testing.T) {
	r, logs := newRuntime(t, Options{})
	start(t, r, "relay", "hostcall", Limits{})
	start(t, r, "echo", "echo", Limits{})

	// hostcall.wat calls namespace=<its operation>, operation "echo".
	if got := invoke(t, r, "relay", "echo", []byte("via the runtime")); string(got) != "via the runtime" {
		t.Fatalf("actor-to-actor call: %q", got)
	}
	_, err := r.Invoke(t.Context(), "relay", "wasmcloud:keyvalue", []byte("k"))
	ce := wantCode(t, err, CodeGuestError) // the guest reports the host's refusal
	if !strings.Contains(ce.Message, "denied") || !strings.Contains(ce.Message, "wasmcloud:keyvalue") {
		t.Fatalf("denied host call: guest saw %q, want a denial naming the namespace", ce.Message)
	}
	_, err = r.Invoke(t.Context(), "relay", NamespaceLog, []byte("hi"))
	ce = wantCode(t, err, CodeGuestError)
	if !strings.Contains(ce.Message, "unknown level") {
		t.Fatalf("log with a bad level: %q", ce.Message)
	}
	if logLine(logs, `msg=hi`) {
		t.Fatal("a log call with a bad level was logged")
	}
}

func TestCallDepthLimit(t *testing.T) {
	r, _ := newRuntime(t, Options{MaxCallDepth: 3})
	start(t, r, "k", "kitchen", Limits{MaxInstances: 5})
	nest := func(depth int) []byte {
		return []byte(strings.Repeat("k\nhostcall\n", depth) + "k\necho\nbottom")
	}
	// Three nested actor calls are allowed...
	if got := invoke(t, r, "k", "hostcall", nest(2)); string(got) != "bottom" {
		t.Fatalf("depth 3: %q", got)
	}
	// ...a fourth is refused, and the refusal travels back up as an error.
	_, err := r.Invoke(t.Context(), "k", "hostcall", nest(3))
	if ce := wantCode(t, err, CodeGuestError); !strings.Contains(ce.Message, "deeper than 3") {
		t.Fatalf("depth 4: %q", ce.Message)
	}
}

func TestConsoleAndWASIOutputGoToTheLog(t *testing.T) {
	r, logs := newRuntime(t, Options{})
	start(t, r, "console", "console", Limits{})
	start(t, r, "old-tinygo", "wasi_unstable", Limits{})
	start(t, r, "preview1", "wasi_preview1", Limits{})
	invoke(t, r, "console", "x", []byte("console line"))
	invoke(t, r, "old-tinygo", "x", []byte("p"))
	invoke(t, r, "preview1", "x", []byte("p"))
	for _, want := range [][]string{
		{`msg="console line"`, "actor=console", "stream=console"},
		{`msg="hello from wasi_unstable"`, "actor=old-tinygo", "stream=stdout"},
		{`msg="hello from wasi_snapshot_preview1"`, "actor=preview1", "stream=stderr"},
	} {
		if !logLine(logs, want...) {
			t.Errorf("no log line with %q:\n%s", want, logs.String())
		}
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		fixture string
		limits  Limits
		want    string
	}{
		{"noexport", Limits{}, "no __guest_call export"},
		{"badimport", Limits{}, "env.abort"},
		{"bigmemory", Limits{MemoryPages: 100}, "over limit of 100 pages"},
	}
	r, _ := newRuntime(t, Options{})
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			_, err := r.Start(t.Context(), "bad", fixture(t, tt.fixture), tt.limits)
			if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want ErrInvalidModule mentioning %q", err, tt.want)
			}
			if _, ok := r.Actor("bad"); ok {
				t.Fatal("a module that failed to load is registered")
			}
		})
	}
	t.Run("not wasm", func(t *testing.T) {
		_, err := r.Start(t.Context(), "bad", []byte("\x00asm garbage"), Limits{})
		if !errors.Is(err, ErrInvalidModule) {
			t.Fatalf("error %v, want ErrInvalidModule", err)
		}
	})
	t.Run("bad name", func(t *testing.T) {
		_, err := r.Start(t.Context(), "Bad.Name", fixture(t, "echo"), Limits{})
		if err == nil || !strings.Contains(err.Error(), `"Bad.Name"`) {
			t.Fatalf("error %v, want one naming the name", err)
		}
	})
	t.Run("bad limits", func(t *testing.T) {
		_, err := r.Start(t.Context(), "x", fixture(t, "echo"), Limits{MaxInstances: -1})
		if err == nil || !strings.Contains(err.Error(), "max_instances -1") {
			t.Fatalf("error %v, want one naming the field and value", err)
		}
	})
}

func TestLifecycle(t *testing.T) {
	r, _ := newRuntime(t, Options{})
	start(t, r, "a", "echo", Limits{})
	if _, err := r.Start(t.Context(), "a", fixture(t, "echo"), Limits{}); !errors.Is(err, ErrExists) {
		t.Fatalf("second start: %v, want ErrExists", err)
	}
	// A failed update leaves the old version serving.
	if _, err := r.Update(t.Context(), "a", fixture(t, "noexport"), Limits{}); !errors.Is(err, ErrInvalidModule) {
		t.Fatalf("bad update: %v", err)
	}
	if got := invoke(t, r, "a", "echo", []byte("v1")); string(got) != "v1" {
		t.Fatalf("after a failed update: %q", got)
	}
	// A good update swaps the module.
	if _, err := r.Update(t.Context(), "a", fixture(t, "init_wapc"), Limits{}); err != nil {
		t.Fatal(err)
	}
	if got := invoke(t, r, "a", "x", nil); string(got) != "W" {
		t.Fatalf("after the update: %q, want the new module's answer", got)
	}
	if err := r.Stop(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	_, err := r.Invoke(t.Context(), "a", "x", nil)
	wantCode(t, err, CodeNotFound)
	if err := r.Stop(t.Context(), "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second stop: %v", err)
	}
}

// TestCloseLeavesNothingRunning: after Close, every goroutine the runtime
// and wazero started has ended, and calls fail cleanly.
func TestCloseLeavesNothingRunning(t *testing.T) {
	before := runtime.NumGoroutine()
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	start(t, r, "echo", "echo", Limits{MaxInstances: 4})
	start(t, r, "loop", "loop", Limits{CallTimeout: 50 * time.Millisecond})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { _, _ = r.Invoke(t.Context(), "echo", "echo", []byte("x")) })
	}
	wg.Go(func() { _, _ = r.Invoke(t.Context(), "loop", "x", nil) })
	wg.Wait()
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Invoke(t.Context(), "echo", "echo", nil); CodeOf(err) != CodeNotFound {
		t.Fatalf("call after close: %v", err)
	}
	if _, err := r.Start(t.Context(), "late", fixture(t, "echo"), Limits{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("start after close: %v", err)
	}
	// Goroutines end asynchronously; give them a moment (a liveness wait,
	// not a timing assertion).
	for i := 0; runtime.NumGoroutine() > before && i < 500; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
