package actor

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHostileGuests runs every hostile fixture next to an echo actor that is
// called throughout: the hostile call must fail with its typed error, its
// instance must be discarded, and the echo actor must never miss a call.
func TestHostileGuests(t *testing.T) {
	tests := []struct {
		fixture string
		limits  Limits
		code    Code
		msg     string // part of the error message
	}{
		{"loop", Limits{CallTimeout: 200 * time.Millisecond}, CodeTimeout, "deadline exceeded"},
		{"membomb", Limits{MemoryPages: 64}, CodeLimit, "memory at its limit of 64 pages"},
		{"recursion", Limits{}, CodeTrap, "stack overflow"},
		{"trap", Limits{}, CodeTrap, "unreachable"},
		{"guesterr_trap", Limits{}, CodeTrap, "aborted"},
		{"oob_response", Limits{}, CodeTrap, "__guest_response: out-of-bounds"},
		{"oob_request", Limits{}, CodeTrap, "__guest_request: out-of-bounds"},
		{"oob_hostcall", Limits{}, CodeLimit, "__host_call: payload over limit"},
		{"bigresponse", Limits{MaxResponse: 512 << 10}, CodeLimit, "__guest_response: payload over limit"},
		{"storm", Limits{MaxHostCalls: 1000}, CodeLimit, "too many host calls: limit 1000"},
		{"storm", Limits{CallTimeout: 200 * time.Millisecond, MaxHostCalls: 1 << 30}, CodeTimeout, "deadline exceeded"},
	}
	r, logs := newRuntime(t, Options{})
	start(t, r, "echo", "echo", Limits{MaxInstances: 2})

	// The bystander: an echo actor called in a loop for the whole test.
	stop := make(chan struct{})
	var calls, failed atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := r.Invoke(context.Background(), "echo", "echo", []byte("ping"))
			calls.Add(1)
			if err != nil || string(got) != "ping" {
				failed.Add(1)
			}
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
		if calls.Load() == 0 || failed.Load() != 0 {
			t.Errorf("bystander echo: %d calls, %d failed: want many calls, none failed", calls.Load(), failed.Load())
		}
	}()

	for i, tt := range tests {
		t.Run(tt.fixture+"/"+string(tt.code), func(t *testing.T) {
			name := strings.ReplaceAll(tt.fixture, "_", "-") + string(rune('a'+i))
			tt.limits.MaxInstances = 1
			a := start(t, r, name, tt.fixture, tt.limits)
			for round := range 2 { // the second round runs on a fresh instance
				var err error
				within(t, func() { _, err = r.Invoke(t.Context(), name, "op", []byte("payload")) })
				ce := wantCode(t, err, tt.code)
				if !strings.Contains(ce.Message, tt.msg) {
					t.Fatalf("round %d: message %q lacks %q", round, ce.Message, tt.msg)
				}
				if ce.Actor != name || ce.Operation != "op" {
					t.Fatalf("error names actor %q op %q", ce.Actor, ce.Operation)
				}
			}
			if s := a.Stats(); s.Discarded != 2 || s.Instances != 0 {
				t.Fatalf("stats %+v: each failed call must discard its instance", s)
			}
			if err := r.Stop(t.Context(), name); err != nil {
				t.Fatal(err)
			}
		})
	}
	if strings.Contains(logs.String(), "panic") {
		t.Errorf("the runtime logged a panic:\n%s", logs.String())
	}
}

// TestCallerCancel shows a caller's own deadline wins over the actor's.
func TestCallerDeadline(t *testing.T) {
	r, _ := newRuntime(t, Options{})
	start(t, r, "loop", "loop", Limits{CallTimeout: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	var err error
	within(t, func() { _, err = r.Invoke(ctx, "loop", "op", nil) })
	wantCode(t, err, CodeTimeout)

	ctx, cancel = context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	within(t, func() { _, err = r.Invoke(ctx, "loop", "op", nil) })
	wantCode(t, err, CodeCanceled)
}
