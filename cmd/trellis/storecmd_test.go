package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/trellis-edge/trellis/store"
)

// storeCLI runs `trellis store ...` in-process, with the store command on a
// root of its own (so the test does not depend on root.go registering it),
// mapping errors to exit codes as run does.
func storeCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	io := &streams{stdin: strings.NewReader(stdin), stdout: &stdout, stderr: &stderr}
	root := &cobra.Command{Use: "trellis", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newStoreCmd(io))
	root.SetArgs(append([]string{"store"}, args...))
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	err := root.ExecuteContext(context.Background())
	code := exitOK
	var ce *codeError
	switch {
	case errors.As(err, &ce):
		code = ce.code
		stderr.WriteString("trellis: " + ce.err.Error() + "\n")
	case err != nil:
		code = exitUsage
		stderr.WriteString("trellis: " + err.Error() + "\n")
	}
	return code, stdout.String(), stderr.String()
}

// newDataDir makes a data dir whose store holds a counter at 1, snapshots
// it as the last good copy when snapshot is set, then counts on to 3.
func newDataDir(t *testing.T, snapshot bool) string {
	t.Helper()
	dir := t.TempDir()
	s, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		if _, err := s.KVIncrement("counter", []byte("n"), 1); err != nil {
			t.Fatal(err)
		}
		if i == 0 && snapshot {
			if _, _, err := s.SnapshotLastGood(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// damageStore zeroes the store's header pages.
func damageStore(t *testing.T, dir string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, store.FileName), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, 2*os.Getpagesize()), 0); err != nil {
		t.Fatal(err)
	}
}

// counter reads the counter of newDataDir.
func counter(t *testing.T, dir string) string {
	t.Helper()
	s, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, _, err := s.KVGet("counter", []byte("n"))
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

func TestStoreCheck(t *testing.T) {
	healthy := newDataDir(t, true)
	damaged := newDataDir(t, true)
	damageStore(t, damaged)
	tests := []struct {
		name   string
		dir    string
		code   int
		stdout []string // parts
		stderr string   // part
	}{
		{"healthy", healthy, exitOK, []string{"trellis.db: ok", "schema version  4", "last good copy  " + filepath.Join(healthy, store.LastGoodFileName), "BUCKET", "kv"}, ""},
		{"damaged", damaged, exitError, []string{"trellis.db: DAMAGED", "problems:"}, "trellis store recover --data " + damaged},
		{"missing", t.TempDir(), exitError, nil, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := storeCLI(t, "", "check", "--data", tt.dir)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, stderr)
			}
		})
	}
}

func TestStoreCheckLocked(t *testing.T) {
	dir := newDataDir(t, false)
	s, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	code, _, stderr := storeCLI(t, "", "check", "--data", dir)
	if code != exitError || !strings.Contains(stderr, "another trellis") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
}

func TestStoreRecover(t *testing.T) {
	dir := newDataDir(t, true)
	damageStore(t, dir)
	damaged, err := os.ReadFile(filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}

	// No --yes and no terminal: refused, nothing changed.
	code, stdout, stderr := storeCLI(t, "y\n", "recover", "--data", dir)
	if code != exitUsage || !strings.Contains(stderr, "--yes") || !strings.Contains(stdout, "is damaged") {
		t.Fatalf("without --yes: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if now, _ := os.ReadFile(filepath.Join(dir, store.FileName)); !bytes.Equal(now, damaged) {
		t.Fatal("recover without --yes changed the store")
	}

	code, stdout, stderr = storeCLI(t, "", "recover", "--data", dir, "--yes")
	if code != exitOK {
		t.Fatalf("recover --yes: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, want := range []string{"kept the damaged store as " + filepath.Join(dir, store.CorruptFilePrefix), "restored " + filepath.Join(dir, store.FileName), "lost: what was written after"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if got := counter(t, dir); got != "1" {
		t.Errorf("counter after recover = %q, want the snapshot's 1", got)
	}

	// Now the store is fine: nothing to do.
	code, _, stderr = storeCLI(t, "", "recover", "--data", dir, "--yes")
	if code != exitError || !strings.Contains(stderr, "not damaged") {
		t.Fatalf("recover of a healthy store: exit %d, stderr %s", code, stderr)
	}
}

func TestStoreRecoverWithoutLastGood(t *testing.T) {
	dir := newDataDir(t, false)
	damageStore(t, dir)
	code, _, stderr := storeCLI(t, "", "recover", "--data", dir, "--yes")
	if code != exitError || !strings.Contains(stderr, "no last good copy") || !strings.Contains(stderr, "nothing was changed") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the data dir holds %d files, want the damaged store alone", len(entries))
	}
}

// TestStoreRecoverConfirm answers the question on a terminal.
func TestStoreRecoverConfirm(t *testing.T) {
	for _, c := range []struct {
		answer  string
		recover bool
	}{{"n\n", false}, {"\n", false}, {"", false}, {"yes\n", true}, {"Y\n", true}} {
		dir := newDataDir(t, true)
		damageStore(t, dir)
		var stdout bytes.Buffer
		io := &streams{stdin: strings.NewReader(c.answer), stdout: &stdout, stderr: &stdout}
		err := recoverStore(io, dir, false, true)
		if !strings.Contains(stdout.String(), "Recover? [y/N]") {
			t.Errorf("answer %q: no question asked:\n%s", c.answer, stdout.String())
		}
		if (err == nil) != c.recover {
			t.Errorf("answer %q: err %v, want recovery %v", c.answer, err, c.recover)
		}
		if c.recover {
			if got := counter(t, dir); got != "1" {
				t.Errorf("answer %q: counter %q after recovery", c.answer, got)
			}
		} else if !strings.Contains(err.Error(), "nothing was changed") {
			t.Errorf("answer %q: %v", c.answer, err)
		}
	}
}
