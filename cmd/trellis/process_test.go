package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trellis-edge/trellis/mesh"
)

// Multi-process tests: real `trellis hub` and `trellis agent` processes on
// loopback (port 0 everywhere), driven by the CLI and, where installed, by
// the real nats CLI.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// trellisBinary builds the command once per test run.
func trellisBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "trellis-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "trellis")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building trellis: %v", buildErr)
	}
	return binPath
}

// process is a running trellis process whose output is scanned for a pattern.
type process struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	seen chan []string
}

// spawn starts `trellis args...` and waits until a line of its output
// matches re, returning the submatches.
func spawn(t *testing.T, re *regexp.Regexp, args ...string) []string {
	t.Helper()
	cmd := exec.Command(trellisBinary(t), args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, seen: make(chan []string, 1)}
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			p.mu.Unlock()
			if m := re.FindStringSubmatch(line); m != nil && !sent {
				p.seen <- m
				sent = true
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("trellis %s did not stop on SIGTERM", args[0])
		}
		pw.Close()
	})
	select {
	case m := <-p.seen:
		return m
	case <-time.After(60 * time.Second):
		p.mu.Lock()
		defer p.mu.Unlock()
		t.Fatalf("trellis %v never printed %s:\n%s", args, re, p.out.String())
	}
	return nil
}

var (
	hubLine   = regexp.MustCompile(`hub: clients (nats://\S+), leaf nodes (nats-leaf://\S+)`)
	agentLine = regexp.MustCompile(`msg="agent serving".* listen=(nats://\S+)`)
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(trellisBinary(t), args...).CombinedOutput()
	return string(out), err
}

func TestProcesses(t *testing.T) {
	hub := spawn(t, hubLine, "hub", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--leaf-listen", "127.0.0.1:0")
	hubURL, leafURL := hub[1], hub[2]
	var agentURLs []string
	for i, actorSpec := range []string{"", "", "echo=" + fixtures + "echo.wasm"} {
		args := []string{"agent", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--hub", leafURL,
			"--name", "dev" + string(rune('a'+i)), "--label", "site=test"}
		if actorSpec != "" {
			args = append(args, "--actor", actorSpec)
		}
		agentURLs = append(agentURLs, spawn(t, agentLine, args...)[1])
	}

	// A call from the hub side and from device a reaches echo on device c.
	for _, url := range []string{hubURL, agentURLs[0]} {
		var out string
		var err error
		for range 200 {
			if out, err = runCLI(t, "call", "--server", url, "echo", "echo", "across processes"); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || out != "across processes" {
			t.Fatalf("trellis call via %s: %q, %v", url, out, err)
		}
	}

	// get hosts -o json lists the three agents.
	var invs []mesh.Inventory
	for range 100 {
		out, err := runCLI(t, "get", "hosts", "-o", "json", "--server", hubURL)
		if err != nil {
			t.Fatalf("get hosts: %v\n%s", err, out)
		}
		if err := json.Unmarshal([]byte(out), &invs); err != nil {
			t.Fatalf("get hosts -o json: %v\n%s", err, out)
		}
		if len(invs) == 3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(invs) != 3 || invs[0].Host.Labels["site"] != "test" {
		t.Fatalf("get hosts: %+v", invs)
	}
	out, err := runCLI(t, "get", "actors", "--server", hubURL)
	if err != nil || !strings.Contains(out, "echo") || !strings.Contains(out, "devc") {
		t.Fatalf("get actors: %v\n%s", err, out)
	}

	t.Run("actor start, scale, stop on one host", func(t *testing.T) {
		for _, args := range [][]string{
			{"actor", "start", "hello", helloWasm, "--host", "deva", "--max-instances", "2"},
			{"actor", "scale", "hello", "--host", "deva", "--max-instances", "3"},
		} {
			if out, err := runCLI(t, append(args, "--server", hubURL)...); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out)
			}
		}
		out, err := runCLI(t, "call", "--server", hubURL, "--host", "deva", "hello", "hello", "cli")
		if err != nil || out != "Hello, cli!" {
			t.Fatalf("call after actor start: %q, %v", out, err)
		}
		out, err = runCLI(t, "actor", "update", "hello", fixtures+"noexport.wasm", "--host", "deva", "--server", hubURL)
		if err == nil || !strings.Contains(out, "__guest_call") {
			t.Fatalf("update with a broken module: %v\n%s", err, out)
		}
		if out, err := runCLI(t, "call", "--server", hubURL, "hello", "hello", "still"); err != nil || out != "Hello, still!" {
			t.Fatalf("after the failed update: %q, %v", out, err)
		}
		if out, err := runCLI(t, "actor", "stop", "hello", "--host", "deva", "--server", hubURL); err != nil {
			t.Fatalf("actor stop: %v\n%s", err, out)
		}
		out, err = runCLI(t, "call", "--server", hubURL, "hello", "hello", "gone")
		if err == nil || !strings.Contains(out, "not_found") && !strings.Contains(out, "no ") {
			t.Fatalf("call after stop: %v\n%s", err, out)
		}
	})
	t.Run("actor start with grants", func(t *testing.T) {
		grants := filepath.Join(t.TempDir(), "grants.yaml")
		if err := os.WriteFile(grants, []byte("kv: true\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := runCLI(t, "actor", "start", "kitchen", fixtures+"kitchen.wasm", "--host", "devb", "--grants", grants, "--server", hubURL); err != nil {
			t.Fatalf("actor start --grants: %v\n%s", err, out)
		}
		// kitchen's hostcall op: "namespace\noperation\npayload"; Increment {key: "k", delta: 1}.
		inc := "trellis:kv\nIncrement\n\x82\xa3key\xc4\x01k\xa5delta\x01"
		out, err := runCLI(t, "call", "--server", hubURL, "kitchen", "hostcall", inc)
		if err != nil || out != "\x81\xa5value\xd3\x00\x00\x00\x00\x00\x00\x00\x01" { // {value: int64 1}
			t.Fatalf("a granted kv call through the CLI-started actor: %q, %v", out, err)
		}
		if err := os.WriteFile(grants, []byte("kv: yes please\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := runCLI(t, "actor", "start", "kitchen2", fixtures+"kitchen.wasm", "--host", "devb", "--grants", grants, "--server", hubURL); err == nil || !strings.Contains(out, "grants.yaml") {
			t.Fatalf("a bad grants file: %v\n%s", err, out)
		}
	})
	t.Run("nats context", func(t *testing.T) {
		cfg := t.TempDir()
		ctxDir := filepath.Join(cfg, "nats", "context")
		if err := os.MkdirAll(ctxDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ctxDir, "lab.json"), []byte(`{"url": "`+hubURL+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(trellisBinary(t), "call", "--context", "lab", "echo", "echo", "via context")
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+cfg)
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "via context" {
			t.Fatalf("call --context lab: %q, %v", out, err)
		}
		cmd = exec.Command(trellisBinary(t), "call", "--context", "nope", "echo", "echo", "x")
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+cfg)
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), `nats context "nope"`) {
			t.Fatalf("missing context: %v\n%s", err, out)
		}
	})
	t.Run("bench call", func(t *testing.T) {
		out, err := runCLI(t, "bench", "call", "echo", "echo", "--server", hubURL, "--clients", "3", "--calls", "300", "--size", "32", "-o", "json")
		if err != nil {
			t.Fatalf("bench call: %v\n%s", err, out)
		}
		var r benchResult
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("bench call -o json: %v\n%s", err, out)
		}
		if r.OK != 300 || r.Failed != 0 || r.PerSecond <= 0 || r.P50 <= 0 || r.P99 < r.P50 || r.Max < r.P99 {
			t.Fatalf("bench result %+v", r)
		}
		out, err = runCLI(t, "bench", "call", "nobody", "op", "--server", hubURL, "--clients", "1", "--calls", "3")
		if err == nil || !strings.Contains(out, "3 calls failed") {
			t.Fatalf("bench of a missing actor: %v\n%s", err, out)
		}
	})
	t.Run("nats CLI", func(t *testing.T) {
		nats, err := exec.LookPath("nats")
		if err != nil {
			if os.Getenv("TRELLIS_REQUIRE_NATS_CLI") != "" {
				t.Fatal("nats CLI not on PATH, and TRELLIS_REQUIRE_NATS_CLI is set (.ci/run installs it)")
			}
			t.Skip("nats CLI not installed: go install github.com/nats-io/natscli/nats@v0.5.1")
		}
		out, err := exec.Command(nats, "micro", "ls", "--server", hubURL, "--json").CombinedOutput()
		if err != nil {
			t.Fatalf("nats micro ls: %v\n%s", err, out)
		}
		if n := strings.Count(string(out), mesh.ControlServiceName); n < 3 {
			t.Fatalf("nats micro ls lists %d trellis agents, want 3:\n%s", n, out)
		}
		out, err = exec.Command(nats, "server", "check", "request", "--server", hubURL,
			"--subject", mesh.RPCSubject(mesh.DefaultLattice, "echo", "echo"),
			"--payload", "interop", "--match-payload", "^interop$").CombinedOutput()
		if err != nil {
			t.Fatalf("nats server check request: %v\n%s", err, out)
		}
	})
}

// BenchmarkAgentIdleRSS measures the resident memory of an idle `trellis
// agent` process (embedded NATS leaf + JetStream + one tiny actor), built
// as released (stripped). Budget: ≤ 25 MB.
func BenchmarkAgentIdleRSS(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "trellis")
	if out, err := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	for b.Loop() {
		cmd := exec.Command(bin, "agent", "--data", b.TempDir(), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
			"--hub", "nats-leaf://127.0.0.1:1", "--actor", "echo="+fixtures+"echo.wasm", "--log-level", "warn")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(5 * time.Second) // idle: started, JetStream up, nothing to do
		status, err := os.ReadFile(filepath.Join("/proc", fmt.Sprint(cmd.Process.Pid), "status"))
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			if kb, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				var n float64
				fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(kb), " kB"), &n)
				b.ReportMetric(n/1024, "RSS-MiB")
			}
		}
	}
}

// TestDevStopsCleanly runs `trellis dev` from the repository root, calls its
// example actors, and stops it with Ctrl-C (SIGINT): it must exit 0.
func TestDevStopsCleanly(t *testing.T) {
	cmd := exec.Command(trellisBinary(t), "dev", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", t.TempDir())
	cmd.Dir = "../.."
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(pr)
	re := regexp.MustCompile(`device bus\s+(nats://\S+)`)
	counterRe := regexp.MustCompile(`curl (http://\S+/api/counter/demo)`)
	var url, counter string
	var out strings.Builder
	for counter == "" && lines.Scan() {
		out.WriteString(lines.Text() + "\n")
		if m := re.FindStringSubmatch(lines.Text()); m != nil {
			url = m[1]
		}
		if m := counterRe.FindStringSubmatch(lines.Text()); m != nil {
			counter = m[1]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if url == "" || counter == "" {
		t.Fatalf("trellis dev never printed its device bus and the kvcounter URL:\n%s", out.String())
	}
	for _, want := range []string{`{"counter":1}`, `{"counter":2}`} {
		resp, err := http.Get(counter)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Fatalf("GET %s on trellis dev: %q, want %s", counter, body, want)
		}
	}
	// The simulated devices, through the CLI.
	if got, err := runCLI(t, "sensor", "set", "--server", url, "room", "temperature", "12.5"); err != nil || !strings.Contains(got, "12.5") {
		t.Fatalf("trellis sensor set: %q, %v", got, err)
	}
	if _, err := runCLI(t, "gpio", "set", "--server", url, "BUTTON", "high"); err != nil {
		t.Fatalf("trellis gpio set: %v", err)
	}
	got, err := runCLI(t, "gpio", "get", "--server", url, "BUTTON", "-o", "json")
	var lines2 []mesh.GPIOLine
	if err != nil || json.Unmarshal([]byte(got), &lines2) != nil || len(lines2) != 1 || !lines2[0].Level {
		t.Fatalf("trellis gpio get BUTTON after set high: %q, %v", got, err)
	}
	if _, err := runCLI(t, "gpio", "set", "--server", url, "NOPE", "high"); err == nil {
		t.Fatal("trellis gpio set of a line the device does not have succeeded")
	}
	for actor, want := range map[string][]string{"echo": {"echo", "hi", "hi"}, "hello": {"hello", "dev", "Hello, dev!"}} {
		got, err := runCLI(t, "call", "--server", url, actor, want[0], want[1])
		if err != nil || got != want[2] {
			t.Fatalf("call %s on trellis dev: %q, %v", actor, got, err)
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("trellis dev after Ctrl-C: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("trellis dev did not stop on Ctrl-C")
	}
	pw.Close()
}
