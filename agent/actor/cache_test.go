package actor

import (
	"io/fs"
	"path/filepath"
	"testing"
	"time"
)

// cacheFiles lists the files under dir with their modification times.
func cacheFiles(t *testing.T, dir string) map[string]time.Time {
	t.Helper()
	files := map[string]time.Time{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files[path] = info.ModTime()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestCompileCacheAfterRestart: a module is compiled once; a new runtime on
// the same cache dir (an agent restart) loads the native code and writes
// nothing. On the interpreter (32-bit ARM) there is no native code and the
// cache stays empty, as wazero documents.
func TestCompileCacheAfterRestart(t *testing.T) {
	dir := t.TempDir()
	mods := []string{"echo", "init_all"}
	boot := func() {
		r, err := New(Options{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mods {
			start(t, r, m[:4], m, Limits{})
			invoke(t, r, m[:4], "x", []byte("y"))
		}
		if err := r.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	boot()
	first := cacheFiles(t, dir)
	if EngineName() == EngineInterpreter {
		if len(first) != 0 {
			t.Fatalf("the interpreter wrote %d cache files", len(first))
		}
		boot() // still works from the same data dir
		return
	}
	if len(first) < len(mods) {
		t.Fatalf("cache holds %d files after compiling %d modules", len(first), len(mods))
	}
	boot()
	second := cacheFiles(t, dir)
	if len(second) != len(first) {
		t.Fatalf("restart wrote to the cache: %d files, then %d", len(first), len(second))
	}
	for path, mod := range first {
		if !second[path].Equal(mod) {
			t.Fatalf("restart rewrote %s: the module was compiled again", path)
		}
	}
}
