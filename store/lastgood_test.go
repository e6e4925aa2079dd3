package store

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// openCopy opens the file at src as the store of a fresh dir.
func openCopy(t testing.TB, src string) *Store {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), readFile(t, src), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatalf("open the copy: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSnapshotLastGood(t *testing.T) {
	s := openTest(t, nil)
	populate(t, s, "a")
	want := dump(t, s)
	dst := filepath.Join(filepath.Dir(s.Path()), LastGoodFileName)

	lg, wrote, err := s.SnapshotLastGood()
	if err != nil || !wrote {
		t.Fatalf("first SnapshotLastGood = %v, wrote %v", err, wrote)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if lg.Path != dst || lg.Size != fi.Size() || lg.TxID != metaOf(t, s.Path()).txid || time.Since(lg.Time) > time.Minute {
		t.Errorf("LastGood = %+v; file %d bytes, store at transaction %d", lg, fi.Size(), metaOf(t, s.Path()).txid)
	}
	if perm := fi.Mode().Perm(); perm&^0o600 != 0 {
		t.Errorf("copy mode %v, want at most 0600", perm)
	}
	if _, err := os.Stat(dst + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
	if got := dump(t, openCopy(t, dst)); !mapsEqual(got, want) {
		t.Errorf("the copy holds %d entries, the store %d", len(got), len(want))
	}

	// Unchanged: no copy, but the time moves on.
	again, wrote, err := s.SnapshotLastGood()
	if err != nil || wrote {
		t.Fatalf("SnapshotLastGood of an unchanged store = %v, wrote %v", err, wrote)
	}
	if again.TxID != lg.TxID || again.Time.Before(lg.Time) {
		t.Errorf("unchanged: %+v after %+v", again, lg)
	}

	// A write makes the next call copy again.
	kvSet(t, s, "small", "later", "x")
	next, wrote, err := s.SnapshotLastGood()
	if err != nil || !wrote || next.TxID <= lg.TxID {
		t.Fatalf("after a write: %+v, wrote %v, %v", next, wrote, err)
	}
	if v, _ := kvGet(t, openCopy(t, dst), "small", "later"); v != "x" {
		t.Errorf("the new copy lacks the write: %q", v)
	}

	// The store reports its copy.
	s.Close()
	rep, err := Check(filepath.Dir(s.Path()))
	if err != nil || rep.LastGood.Path != dst || rep.LastGood.TxID != next.TxID {
		t.Errorf("Check: %v, last good %+v", err, rep.LastGood)
	}
}

// TestSnapshotLastGoodReplacesDamage: a damaged copy, or a temporary file a
// crash left, does not stop the next snapshot.
func TestSnapshotLastGoodReplacesDamage(t *testing.T) {
	s := openTest(t, nil)
	populate(t, s, "a")
	dst := filepath.Join(filepath.Dir(s.Path()), LastGoodFileName)
	for _, f := range []string{dst, dst + ".tmp"} {
		if err := os.WriteFile(f, []byte("garbage left by a crash"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, wrote, err := s.SnapshotLastGood(); err != nil || !wrote {
		t.Fatalf("SnapshotLastGood = %v, wrote %v", err, wrote)
	}
	if err := verifyPath(dst); err != nil {
		t.Errorf("copy: %v", err)
	}
	if _, err := os.Stat(dst + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

// TestSnapshotLastGoodWhileWriting: the copy is one consistent transaction
// even while other goroutines write.
func TestSnapshotLastGoodWhileWriting(t *testing.T) {
	s := openTest(t, nil)
	populate(t, s, "a")
	dst := filepath.Join(filepath.Dir(s.Path()), LastGoodFileName)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := "w" + strconv.Itoa(w)
				if _, err := s.KVIncrement("counter", []byte(key), 1); err != nil {
					t.Error(err)
					return
				}
				if err := s.CapStatePut("timer", "actor-a", key, []byte(strconv.Itoa(i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 5 {
		if _, _, err := s.SnapshotLastGood(); err != nil {
			t.Error(err)
			break
		}
		if err := verifyPath(dst); err != nil {
			t.Errorf("copy taken during writes: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	c := openCopy(t, dst)
	if _, err := c.KVIncrement("counter", []byte("w0"), 1); err != nil {
		t.Errorf("the copy is not usable: %v", err)
	}
}
