package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// damages are the ways a store file gets broken in these tests.
var damages = []struct {
	name   string
	damage func(t *testing.T, path string, m fileMeta)
}{
	{"truncated mid-page", func(t *testing.T, path string, m fileMeta) {
		ps := int64(m.pageSize)
		if err := os.Truncate(path, int64(m.pgid-1)*ps-ps/2); err != nil {
			t.Fatal(err)
		}
	}},
	{"truncated to one page", func(t *testing.T, path string, m fileMeta) {
		if err := os.Truncate(path, int64(m.pageSize)); err != nil {
			t.Fatal(err)
		}
	}},
	{"bytes flipped in both meta pages", func(t *testing.T, path string, m fileMeta) {
		for page := range int64(2) {
			writeAt(t, path, page*int64(m.pageSize)+pageHeaderSize+40, []byte{0xDE, 0xAD, 0xBE, 0xEF})
		}
	}},
	{"first four pages zeroed", func(t *testing.T, path string, m fileMeta) {
		writeAt(t, path, 0, make([]byte, 4*m.pageSize))
	}},
	{"root page overwritten", func(t *testing.T, path string, m fileMeta) {
		writeAt(t, path, int64(m.root)*int64(m.pageSize), bytes.Repeat([]byte{0xA5}, int(m.pageSize)))
	}},
	{"garbage", func(t *testing.T, path string, m fileMeta) {
		b := make([]byte, 64<<10)
		rand.Read(b)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}},
}

// damagedStore builds a store with state "a", optionally snapshots it, adds
// state "b" (which a recovery loses), closes it and damages it. It returns
// the dir, the state of the snapshot, and the damaged bytes.
func damagedStore(t *testing.T, snapshot bool, damage func(*testing.T, string, fileMeta)) (dir string, snap map[string]string, damaged []byte) {
	t.Helper()
	dir = t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	populate(t, s, "a")
	if snapshot {
		snap = dump(t, s)
		if _, _, err := s.SnapshotLastGood(); err != nil {
			t.Fatal(err)
		}
	}
	populate(t, s, "b")
	s.Close()
	path := filepath.Join(dir, FileName)
	damage(t, path, metaOf(t, path))
	return dir, snap, readFile(t, path)
}

// listDir returns the names in dir with their sizes.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Name()+" "+fi.ModTime().String()+" "+strings.Repeat("#", int(fi.Size()%97)))
	}
	return out
}

func TestRecoverFromLastGood(t *testing.T) {
	for _, c := range damages {
		t.Run(c.name, func(t *testing.T) {
			dir, snap, damaged := damagedStore(t, true, c.damage)
			path := filepath.Join(dir, FileName)
			lgPath := filepath.Join(dir, LastGoodFileName)

			s, err := Open(dir, &Options{Timeout: 100 * time.Millisecond})
			if err == nil {
				s.Close()
				t.Fatal("Open of a damaged store succeeded")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
			for _, want := range []string{path, "not replaced", lgPath, "ago", "trellis store recover --data " + dir} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if !bytes.Equal(readFile(t, path), damaged) {
				t.Fatal("Open changed the damaged file")
			}

			rep, err := Recover(dir)
			if err != nil {
				t.Fatalf("Recover: %v", err)
			}
			if !strings.HasPrefix(filepath.Base(rep.MovedAside), CorruptFilePrefix) || filepath.Dir(rep.MovedAside) != dir {
				t.Errorf("MovedAside = %q", rep.MovedAside)
			}
			if !bytes.Equal(readFile(t, rep.MovedAside), damaged) {
				t.Error("the file moved aside is not the damaged file")
			}
			lg, err := readLastGood(lgPath)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Path != path || rep.Restored != lg || rep.Damage == "" || rep.SchemaVersion != SchemaVersion {
				t.Errorf("report = %+v; last good %+v", rep, lg)
			}

			s, err = Open(dir, nil)
			if err != nil {
				t.Fatalf("Open after Recover: %v", err)
			}
			defer s.Close()
			if got := dump(t, s); !mapsEqual(got, snap) {
				t.Errorf("restored store holds %d entries, the snapshot %d", len(got), len(snap))
			}
			if _, ok := kvGet(t, s, "small", "key-b"); ok {
				t.Error("a write made after the snapshot survived")
			}
		})
	}
}

func TestRecoverWithoutLastGood(t *testing.T) {
	for _, c := range damages {
		t.Run(c.name, func(t *testing.T) {
			dir, _, damaged := damagedStore(t, false, c.damage)
			path := filepath.Join(dir, FileName)

			s, err := Open(dir, &Options{Timeout: 100 * time.Millisecond})
			if err == nil {
				s.Close()
				t.Fatal("Open of a damaged store succeeded")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
			for _, want := range []string{path, "not replaced", "no last good copy", "backup"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}

			before := listDir(t, dir)
			_, err = Recover(dir)
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Recover = %v, want fs.ErrNotExist", err)
			}
			for _, want := range []string{"no last good copy", "nothing was changed"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if after := listDir(t, dir); !slices.Equal(after, before) {
				t.Errorf("Recover changed the dir: %q, was %q", after, before)
			}
			if !bytes.Equal(readFile(t, path), damaged) {
				t.Error("Recover changed the damaged file")
			}
		})
	}
}

// TestRecoverRefuses: Recover changes nothing when there is nothing to
// recover, when an agent holds the store, or when the copy is damaged too.
func TestRecoverRefuses(t *testing.T) {
	snapshotted := func(t *testing.T) (*Store, string) {
		s := openTest(t, nil)
		populate(t, s, "a")
		if _, _, err := s.SnapshotLastGood(); err != nil {
			t.Fatal(err)
		}
		return s, filepath.Dir(s.Path())
	}
	for _, c := range []struct {
		name  string
		setup func(t *testing.T) string
		want  error
		says  string
	}{
		{"store is fine", func(t *testing.T) string {
			s, dir := snapshotted(t)
			s.Close()
			return dir
		}, ErrInvalid, "not damaged"},
		{"store is open", func(t *testing.T) string {
			_, dir := snapshotted(t)
			return dir
		}, ErrLocked, "another trellis"},
		{"schema too new", func(t *testing.T) string {
			s, dir := snapshotted(t)
			s.Close()
			rawUpdate(t, s.Path(), func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keySchemaVersion, encodeUint64(SchemaVersion+1))
			})
			return dir
		}, ErrInvalid, "not damaged"},
		{"copy damaged too", func(t *testing.T) string {
			s, dir := snapshotted(t)
			s.Close()
			lg := filepath.Join(dir, LastGoodFileName)
			m := metaOf(t, lg)
			writeAt(t, lg, int64(m.root)*int64(m.pageSize), bytes.Repeat([]byte{0xA5}, int(m.pageSize)))
			writeAt(t, s.Path(), 0, make([]byte, 2*m.pageSize))
			return dir
		}, ErrCorrupt, "last good copy"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := c.setup(t)
			before := listDir(t, dir)
			content := readFile(t, filepath.Join(dir, FileName))
			_, err := Recover(dir)
			if !errors.Is(err, c.want) {
				t.Fatalf("Recover = %v, want %v", err, c.want)
			}
			for _, want := range []string{c.says, "nothing was changed"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if after := listDir(t, dir); !slices.Equal(after, before) {
				t.Errorf("Recover changed the dir: %q, was %q", after, before)
			}
			if !bytes.Equal(readFile(t, filepath.Join(dir, FileName)), content) {
				t.Error("Recover changed the store file")
			}
		})
	}
}

// TestLostStoreIsNotRecreated: a data dir with a last good copy but no
// store (missing or empty) is a store that was lost; Open refuses to start
// empty there, and Recover restores the copy.
func TestLostStoreIsNotRecreated(t *testing.T) {
	for _, empty := range []bool{false, true} {
		t.Run(map[bool]string{false: "missing", true: "empty"}[empty], func(t *testing.T) {
			s := openTest(t, nil)
			populate(t, s, "a")
			snap := dump(t, s)
			if _, _, err := s.SnapshotLastGood(); err != nil {
				t.Fatal(err)
			}
			s.Close()
			dir := filepath.Dir(s.Path())
			if err := os.Remove(s.Path()); err != nil {
				t.Fatal(err)
			}
			if empty {
				if err := os.WriteFile(s.Path(), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			before := listDir(t, dir)
			_, err := Open(dir, nil)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "trellis store recover") {
				t.Fatalf("Open = %v, want ErrCorrupt with the recovery path", err)
			}
			if after := listDir(t, dir); !slices.Equal(after, before) {
				t.Fatalf("Open changed the dir: %q, was %q", after, before)
			}

			rep, err := Recover(dir)
			if err != nil {
				t.Fatalf("Recover: %v", err)
			}
			if (rep.MovedAside != "") != empty {
				t.Errorf("MovedAside = %q", rep.MovedAside)
			}
			s, err = Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := dump(t, s); !mapsEqual(got, snap) {
				t.Errorf("restored store holds %d entries, the snapshot %d", len(got), len(snap))
			}
		})
	}
}

// TestOpenInterruptedCreation: a file bbolt began to create and never
// committed to (the first start was killed) holds nothing, so Open starts
// it afresh; unless the dir has a last good copy.
func TestOpenInterruptedCreation(t *testing.T) {
	for _, size := range []int64{4096, 8192, 12288} {
		dir := t.TempDir()
		path := filepath.Join(dir, FileName)
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second}) // creates, commits nothing
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, LastGoodFileName+".unrelated"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, nil)
		if err != nil {
			t.Fatalf("%d bytes: Open: %v", size, err)
		}
		populate(t, s, "a")
		if _, _, err := s.SnapshotLastGood(); err != nil {
			t.Fatal(err)
		}
		s.Close()

		// The same with a last good copy present: refused.
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, nil); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%d bytes with a last good copy: Open = %v, want ErrCorrupt", size, err)
		}
	}
}

func TestRecoverKeepsEveryDamagedFile(t *testing.T) {
	dir, _, _ := damagedStore(t, true, damages[0].damage)
	path := filepath.Join(dir, FileName)
	seen := map[string]bool{}
	for i := range 3 {
		writeAt(t, path, 0, make([]byte, 8192)) // damage it again
		damaged := readFile(t, path)
		rep, err := Recover(dir)
		if err != nil {
			t.Fatalf("recovery %d: %v", i, err)
		}
		if seen[rep.MovedAside] {
			t.Fatalf("recovery %d reused the name %s", i, rep.MovedAside)
		}
		seen[rep.MovedAside] = true
		if !bytes.Equal(readFile(t, rep.MovedAside), damaged) {
			t.Errorf("recovery %d: %s does not hold the damaged file", i, rep.MovedAside)
		}
	}
}
