package actor

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tests of actors built by real guest toolchains: Go (Trellis's sdk),
// AssemblyScript (@wapc/as-guest). They show the runtime behaves like the
// reference waPC host on them.

func TestGoActor(t *testing.T) {
	r, logs := newRuntime(t, Options{})
	a := start(t, r, "kitchen", "kitchen", Limits{MaxInstances: 1})
	start(t, r, "echo", "echo", Limits{})

	t.Run("echo", func(t *testing.T) {
		for _, p := range [][]byte{nil, []byte("hello"), bytes.Repeat([]byte{0, 1, 0xff}, 400_000)} {
			if got := invoke(t, r, "kitchen", "echo", p); !bytes.Equal(got, p) {
				t.Fatalf("echo of %d bytes came back as %d bytes", len(p), len(got))
			}
		}
	})
	t.Run("guest error", func(t *testing.T) {
		_, err := r.Invoke(t.Context(), "kitchen", "fail", []byte("x"))
		if ce := wantCode(t, err, CodeGuestError); ce.Message != "fail: x" {
			t.Fatalf("message %q", ce.Message)
		}
	})
	t.Run("unknown operation", func(t *testing.T) {
		_, err := r.Invoke(t.Context(), "kitchen", "no-such-op", nil)
		if ce := wantCode(t, err, CodeGuestError); !strings.Contains(ce.Message, "no-such-op") {
			t.Fatalf("message %q does not name the operation", ce.Message)
		}
	})
	t.Run("instance reuse and discard after a trap", func(t *testing.T) {
		base := a.Stats().Discarded
		n1, _ := strconv.Atoi(string(invoke(t, r, "kitchen", "count", nil)))
		n2, _ := strconv.Atoi(string(invoke(t, r, "kitchen", "count", nil)))
		if n2 != n1+1 {
			t.Fatalf("count %d then %d: one instance should serve both", n1, n2)
		}
		_, err := r.Invoke(t.Context(), "kitchen", "panic", []byte("boom"))
		wantCode(t, err, CodeTrap)
		if got := string(invoke(t, r, "kitchen", "count", nil)); got != "1" {
			t.Fatalf("count after a trap = %s, want 1 from a fresh instance", got)
		}
		if d := a.Stats().Discarded - base; d != 1 {
			t.Fatalf("%d instances discarded, want 1", d)
		}
		if !strings.Contains(logs.String(), "kitchen: boom") {
			t.Fatal("the panic message did not reach the actor's log")
		}
	})
	t.Run("host calls", func(t *testing.T) {
		if got := invoke(t, r, "kitchen", "hostcall", []byte("echo\necho\nvia the runtime")); string(got) != "via the runtime" {
			t.Fatalf("actor-to-actor: %q", got)
		}
		invoke(t, r, "kitchen", "hostcall", []byte("trellis:log\nwarn\nfrom kitchen"))
		if !logLine(logs, "level=WARN", `msg="from kitchen"`, "actor=kitchen", "stream=log") {
			t.Fatalf("trellis:log line missing:\n%s", logs.String())
		}
		_, err := r.Invoke(t.Context(), "kitchen", "hostcall", []byte("wasmcloud:keyvalue\nGet\nk"))
		if ce := wantCode(t, err, CodeGuestError); !strings.Contains(ce.Message, "denied") {
			t.Fatalf("denied call: %q", ce.Message)
		}
	})
	t.Run("logs", func(t *testing.T) {
		invoke(t, r, "kitchen", "log", []byte("console words"))
		invoke(t, r, "kitchen", "stdout", []byte("stdout words"))
		for _, want := range [][]string{
			{`msg="console words"`, "stream=console"},
			{`msg="stdout words"`, "stream=stdout", "level=INFO"},
			{`msg="stdout words"`, "stream=stderr", "level=WARN"},
		} {
			if !logLine(logs, append(want, "actor=kitchen")...) {
				t.Errorf("no log line with %q", want)
			}
		}
	})
	t.Run("real clock and randomness", func(t *testing.T) {
		before := time.Now()
		ns, err := strconv.ParseInt(string(invoke(t, r, "kitchen", "now", nil)), 10, 64)
		after := time.Now()
		if err != nil || ns < before.UnixNano() || ns > after.UnixNano() {
			t.Fatalf("guest time %d not between host readings %d and %d: the clock is not real", ns, before.UnixNano(), after.UnixNano())
		}
		r1, r2 := invoke(t, r, "kitchen", "random", nil), invoke(t, r, "kitchen", "random", nil)
		if len(r1) != 32 || bytes.Equal(r1, r2) || bytes.Equal(r1, make([]byte, 32)) {
			t.Fatalf("random bytes %x then %x: not real randomness", r1, r2)
		}
	})
	t.Run("sandbox", func(t *testing.T) {
		var got struct {
			Env, Args       int
			ReadErr, DirErr string
		}
		if err := json.Unmarshal(invoke(t, r, "kitchen", "sandbox", nil), &got); err != nil {
			t.Fatal(err)
		}
		if got.Env != 0 || got.Args != 0 || got.ReadErr == "" || got.DirErr == "" {
			t.Fatalf("sandbox %+v: want no env, no args, no filesystem", got)
		}
	})
	t.Run("spin is stopped at the deadline", func(t *testing.T) {
		var err error
		within(t, func() {
			ctx, cancel := contextWithTimeout(t, 300*time.Millisecond)
			defer cancel()
			_, err = r.Invoke(ctx, "kitchen", "spin", nil)
		})
		wantCode(t, err, CodeTimeout)
		if got := invoke(t, r, "kitchen", "echo", []byte("after")); string(got) != "after" {
			t.Fatalf("after a timeout: %q", got)
		}
	})
}

func TestGoActorMemoryLimit(t *testing.T) {
	r, logs := newRuntime(t, Options{})
	start(t, r, "kitchen", "kitchen", Limits{MemoryPages: 128}) // 8 MiB
	if got := invoke(t, r, "kitchen", "alloc", []byte("1000000")); string(got) != "ok" {
		t.Fatalf("1 MB allocation: %q", got)
	}
	// A Go guest whose heap cannot grow crashes with "out of memory"
	// (an unreachable trap); it must not take the host with it.
	_, err := r.Invoke(t.Context(), "kitchen", "alloc", []byte("64000000"))
	if c := CodeOf(err); c != CodeTrap && c != CodeLimit {
		t.Fatalf("64 MB allocation under an 8 MiB cap: %v, want trap or limit", err)
	}
	if !strings.Contains(logs.String(), "out of memory") {
		t.Fatalf("the guest's out-of-memory report is not in the log")
	}
	if got := invoke(t, r, "kitchen", "echo", []byte("alive")); string(got) != "alive" {
		t.Fatalf("after the out-of-memory crash: %q", got)
	}
}

func TestExampleActors(t *testing.T) {
	r, logs := newRuntime(t, Options{})
	start(t, r, "echo", "examples/actors/echo/echo", Limits{})
	start(t, r, "hello", "examples/actors/hello-as/hello", Limits{})
	tests := []struct {
		actor, op, payload string
		want               string
		code               Code // "" for success
	}{
		{"echo", "echo", "hi", "hi", ""},
		{"echo", "echo", "", "", ""},
		{"echo", "shout", "hi", "", CodeGuestError},
		{"hello", "hello", "world", "Hello, world!", ""},
		{"hello", "hello", "héllo ✓", "Hello, héllo ✓!", ""},
		{"hello", "fail", "x", "", CodeGuestError},
		{"hello", "log", "as log line", "as log line", ""},
		{"hello", "nope", "", "", CodeGuestError},
	}
	for _, tt := range tests {
		t.Run(tt.actor+"/"+tt.op, func(t *testing.T) {
			got, err := r.Invoke(t.Context(), tt.actor, tt.op, []byte(tt.payload))
			if tt.code != "" {
				wantCode(t, err, tt.code)
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if !strings.Contains(logs.String(), `msg="as log line"`) {
		t.Error("hello-as's trellis:log line is not in the log")
	}
	// 1 MB through the Go echo actor.
	big := bytes.Repeat([]byte("x"), 1<<20)
	if got := invoke(t, r, "echo", "echo", big); !bytes.Equal(got, big) {
		t.Fatalf("1 MiB echo came back as %d bytes", len(got))
	}
}
