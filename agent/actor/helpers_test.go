package actor

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixture reads a committed .wasm: a name from testdata/, or a path from the
// module root for the examples.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	path := filepath.Join("testdata", name+".wasm")
	if strings.Contains(name, "/") {
		path = filepath.Join("..", "..", name+".wasm")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("fixture %s: %v (run `make fixtures`)", name, err)
	}
	return b
}

// logBuffer collects a runtime's logs for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newRuntime returns a runtime closed at the end of the test, and its log.
func newRuntime(t testing.TB, opts Options) (*Runtime, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return r, logs
}

func start(t testing.TB, r *Runtime, name, fix string, limits Limits) *Actor {
	t.Helper()
	a, err := r.Start(context.Background(), name, fixture(t, fix), limits)
	if err != nil {
		t.Fatalf("start %s (%s): %v", name, fix, err)
	}
	return a
}

func invoke(t testing.TB, r *Runtime, name, op string, payload []byte) []byte {
	t.Helper()
	resp, err := r.Invoke(context.Background(), name, op, payload)
	if err != nil {
		t.Fatalf("invoke %s %s: %v", name, op, err)
	}
	return resp
}

// wantCode fails unless err is a *CallError of code.
func wantCode(t testing.TB, err error, code Code) *CallError {
	t.Helper()
	var ce *CallError
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v (%T), want a CallError with code %s", err, err, code)
	}
	if ce.Code != code {
		t.Fatalf("code = %s (%v), want %s", ce.Code, err, code)
	}
	return ce
}

// within runs f and fails the test if it does not return before the
// watchdog: a hang detector, not a timing assertion (the watchdog is orders
// of magnitude above any deadline in these tests).
func within(t testing.TB, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("call hung: the host did not stop the guest")
	}
}

func contextWithTimeout(t testing.TB, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// logLine reports whether one line of the log contains every part.
func logLine(logs *logBuffer, parts ...string) bool {
	for _, line := range strings.Split(logs.String(), "\n") {
		all := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}
