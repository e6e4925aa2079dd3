package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellis-edge/trellis/agent/actor"
	"github.com/trellis-edge/trellis/mesh"
)

const (
	echoWasm  = "../../examples/actors/echo/echo.wasm"
	helloWasm = "../../examples/actors/hello-as/hello.wasm"
	fixtures  = "../../agent/actor/testdata/"
)

// trellis runs the command line in-process and returns its exit code and output.
func trellis(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestRun(t *testing.T) {
	loopLimits := filepath.Join(t.TempDir(), "limits.yaml")
	if err := os.WriteFile(loopLimits, []byte("call_timeout: 200ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badLimits := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badLimits, []byte("call_timout: 2s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string // exact
		stderr string // part
	}{
		{"go echo", "", []string{"run", echoWasm, "echo", "hello"}, exitOK, "hello", ""},
		{"assemblyscript", "", []string{"run", helloWasm, "hello", "world"}, exitOK, "Hello, world!", ""},
		{"no payload", "", []string{"run", echoWasm, "echo"}, exitOK, "", ""},
		{"stdin", "from stdin", []string{"run", "--stdin", echoWasm, "echo"}, exitOK, "from stdin", ""},
		{"guest error", "", []string{"run", echoWasm, "nope"}, exitError, "", `unknown operation "nope"`},
		{"trap", "", []string{"run", fixtures + "trap.wasm", "x"}, exitGuestFault, "", "[trap]"},
		{"timeout", "", []string{"run", "--timeout", "200ms", fixtures + "loop.wasm", "x"}, exitGuestFault, "", "[timeout]"},
		{"limits file", "", []string{"run", "--limits", loopLimits, fixtures + "loop.wasm", "x"}, exitGuestFault, "", "[timeout]"},
		{"memory limit", "", []string{"run", "--max-memory-pages", "20", fixtures + "membomb.wasm", "x"}, exitGuestFault, "", "[limit]"},
		{"not waPC", "", []string{"run", fixtures + "noexport.wasm", "x"}, exitLoad, "", "no __guest_call export"},
		{"missing file", "", []string{"run", "nope.wasm", "x"}, exitLoad, "", "nope.wasm"},
		{"other actor", "", []string{"run", "--actor", "echo=" + fixtures + "echo.wasm", fixtures + "hostcall.wasm", "echo", "relayed"}, exitOK, "relayed", ""},
		{"payload and stdin", "x", []string{"run", "--stdin", echoWasm, "echo", "y"}, exitUsage, "", "not both"},
		{"bad limits file", "", []string{"run", "--limits", badLimits, echoWasm, "echo"}, exitUsage, "", `unknown field "call_timout"`},
		{"bad actor flag", "", []string{"run", "--actor", "nonsense", echoWasm, "echo"}, exitUsage, "", "NAME=PATH.wasm"},
		{"too few args", "", []string{"run", echoWasm}, exitUsage, "", "accepts between 2 and 3 arg(s)"},
		{"unknown command", "", []string{"frobnicate"}, exitUsage, "", "unknown command"},
		{"bad log level", "", []string{"--log-level", "loud", "run", echoWasm, "echo"}, exitUsage, "", "--log-level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := trellis(t, tt.stdin, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			if stdout != tt.stdout {
				t.Fatalf("stdout %q, want %q", stdout, tt.stdout)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("stderr lacks %q:\n%s", tt.stderr, stderr)
			}
		})
	}
}

func TestRunUsesTheCompileCache(t *testing.T) {
	data := t.TempDir()
	for range 2 {
		if code, out, errs := trellis(t, "", "run", "--data", data, echoWasm, "echo", "cached"); code != 0 || out != "cached" {
			t.Fatalf("exit %d, %q, %s", code, out, errs)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(data, "cache", "wazero"))
	if wantCache := actor.EngineName() == actor.EngineCompiler; wantCache != (len(entries) > 0) {
		t.Fatalf("cache dir has %d entries; compiler engine: %v", len(entries), wantCache)
	}
}

func TestNameFromPath(t *testing.T) {
	for in, want := range map[string]string{
		"a/b/Hello_AS.wasm": "hello_as",
		"echo.wasm":         "echo",
		"--x.y.wasm":        "x-y",
		"???.wasm":          "actor",
	} {
		if got := nameFromPath(in); got != want {
			t.Errorf("nameFromPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestVersionAndHelp(t *testing.T) {
	code, out, _ := trellis(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "trellis ") || !strings.Contains(out, "wazero") {
		t.Fatalf("version: %d %q", code, out)
	}
	code, out, _ = trellis(t, "", "run", "--help")
	if code != 0 || !strings.Contains(out, "Exit codes") || !strings.Contains(out, "--max-memory-pages") {
		t.Fatalf("run --help: %d %q", code, out)
	}
}

func TestTelemetryString(t *testing.T) {
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		st   *mesh.TelemetryStatus
		want string
	}{
		{nil, "-"},
		{&mesh.TelemetryStatus{Forwarded: 9}, "ok"},
		{&mesh.TelemetryStatus{Backlog: 120, Oldest: at.Add(-90 * time.Second), Offline: mesh.Duration(2 * time.Minute), Dropped: 3, Rejected: 4},
			"120 queued (oldest 1m30s), offline 2m0s, 3 dropped, 4 rejected"},
	} {
		if got := telemetryString(tc.st, at); got != tc.want {
			t.Errorf("telemetryString(%+v) = %q, want %q", tc.st, got, tc.want)
		}
	}
}
