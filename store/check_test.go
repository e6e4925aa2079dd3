package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// populate writes a little of everything under tag: an artifact spanning
// overflow pages, an actor, labels, the identity, key-value data in two
// buckets (one too big to stay inline) and capability state.
func populate(t testing.TB, s *Store, tag string) {
	t.Helper()
	d, err := s.PutArtifact(bytes.Repeat([]byte("wasm "+tag), 3000))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutActor(Actor{Name: "actor-" + tag, Artifact: d}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutLabels(map[string]string{"site": tag}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Identity(); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		kvSet(t, s, "big", fmt.Sprintf("%s-%03d", tag, i), strings.Repeat("v", 100))
	}
	kvSet(t, s, "small", "key-"+tag, tag)
	if err := s.CapStatePut("timer", "actor-"+tag, "tick", []byte(tag)); err != nil {
		t.Fatal(err)
	}
}

// dump returns every key and value in the store by bucket path, to compare
// whole states.
func dump(t testing.TB, s *Store) map[string]string {
	t.Helper()
	out := make(map[string]string)
	var walk func(prefix string, b *bolt.Bucket) error
	walk = func(prefix string, b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return walk(prefix+string(k)+"/", b.Bucket(k))
			}
			out[prefix+string(k)] = string(v)
			return nil
		})
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walk(string(name)+"/", b) })
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// metaOf reads the meta bbolt uses for the file at path.
func metaOf(t testing.TB, path string) fileMeta {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := readMeta(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// writeAt overwrites part of the file at path.
func writeAt(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestCheckReport(t *testing.T) {
	s := openTest(t, nil)
	populate(t, s, "a")
	dir := filepath.Dir(s.Path())
	if _, err := Check(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("Check while the store is open = %v, want ErrLocked", err)
	}
	s.Close()

	rep, err := Check(dir)
	if err != nil {
		t.Fatalf("Check: %v (problems %q)", err, rep.Problems)
	}
	if rep.Path != s.Path() || rep.SchemaVersion != SchemaVersion || rep.PageSize < minPageSize || rep.TxID < 2 ||
		rep.Size < int64(rep.Pages)*int64(rep.PageSize) || len(rep.Problems) > 0 || rep.MetaFallback != "" || rep.LastGood.Path != "" {
		t.Errorf("report = %+v", rep)
	}
	buckets := make(map[string]BucketReport)
	for _, b := range rep.Buckets {
		buckets[b.Name] = b
	}
	for name, want := range map[string]BucketReport{
		"kv":        {Name: "kv", Keys: 41, Buckets: 2, Bytes: 40*(5+100) + 5 + 1},
		"actors":    {Name: "actors", Keys: 1},
		"cap-state": {Name: "cap-state", Keys: 1, Buckets: 1, Bytes: int64(len("actor-a\x00tick") + 1)},
	} {
		got := buckets[name]
		if name == "actors" {
			got.Bytes = 0 // the record's size is not the point
		}
		if got != want {
			t.Errorf("bucket %s = %+v, want %+v", name, got, want)
		}
	}
	if len(rep.Buckets) != len(bucketsAddedIn[1])+len(bucketsAddedIn[2])+len(bucketsAddedIn[3])+len(bucketsAddedIn[4])+1 {
		t.Errorf("buckets = %+v", rep.Buckets)
	}
}

func TestCheckMissingAndEmpty(t *testing.T) {
	dir := t.TempDir()
	if _, err := Check(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Check of a dir without a store = %v, want fs.ErrNotExist", err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(dir); !errors.Is(err, ErrNotFound) {
		t.Errorf("Check of an empty file = %v, want ErrNotFound", err)
	}
	if _, err := Check(""); !errors.Is(err, ErrInvalid) {
		t.Errorf("Check(\"\") = %v, want ErrInvalid", err)
	}
}

// TestCheckFindsDamage overwrites each page of a populated store in turn.
// Every page bbolt interprets (b-tree pages, the free list) is caught, and
// the file is left as it was. Free pages, and overflow pages (which hold
// only the tail of a large value: bbolt keeps no checksums of data), may
// change unnoticed; artifacts are re-hashed on every read for that reason.
func TestCheckFindsDamage(t *testing.T) {
	s := openTest(t, nil)
	populate(t, s, "a")
	path := s.Path()
	s.Close()
	m := metaOf(t, path)
	clean := readFile(t, path)
	ps := int64(m.pageSize)

	// What each page is, from bbolt itself.
	kind := make(map[uint64]string)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	errRollback := errors.New("roll back")
	err = db.Update(func(tx *bolt.Tx) error { // tx.Page needs a writable transaction
		for id := uint64(2); id < m.pgid; id++ {
			if kind[id] != "" {
				continue
			}
			info, err := tx.Page(int(id))
			if err != nil || info == nil {
				return fmt.Errorf("page %d: %v", id, err)
			}
			kind[id] = info.Type
			if info.Type != "free" {
				for o := uint64(1); o <= uint64(info.OverflowCount); o++ {
					kind[id+o] = "overflow of " + info.Type
				}
			}
		}
		return errRollback // change nothing
	})
	db.Close()
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, clean, 0o600); err != nil {
		t.Fatal(err)
	}
	fills := map[string]func(int) []byte{
		"0xA5": func(n int) []byte { return bytes.Repeat([]byte{0xA5}, n) },
		"zero": func(n int) []byte { return make([]byte, n) },
	}
	for id := uint64(2); id < m.pgid; id++ {
		for name, fill := range fills {
			if err := os.WriteFile(path, clean, 0o600); err != nil {
				t.Fatal(err)
			}
			writeAt(t, path, int64(id)*ps, fill(int(ps)))
			damaged := readFile(t, path)
			rep, err := Check(filepath.Dir(path))
			if !bytes.Equal(readFile(t, path), damaged) {
				t.Fatalf("page %d (%s): Check changed the file", id, name)
			}
			mayPass := kind[id] == "free" || strings.HasPrefix(kind[id], "overflow of leaf")
			switch {
			case err == nil && !mayPass:
				t.Errorf("page %d (%s, %s): damage not caught", id, kind[id], name)
			case err != nil && (!errors.Is(err, ErrCorrupt) || len(rep.Problems) == 0 || !strings.Contains(err.Error(), path)):
				t.Errorf("page %d (%s, %s): Check = %v, problems %q; want ErrCorrupt naming the file", id, kind[id], name, err, rep.Problems)
			}
		}
	}
}

// TestCheckOneMetaPage: one invalid meta page is bbolt's own crash recovery
// (a torn header write): the file reads as of the other, and Check says so.
func TestCheckOneMetaPage(t *testing.T) {
	s := openTest(t, nil)
	populate(t, s, "a")
	path := s.Path()
	before := dump(t, s)
	kvSet(t, s, "small", "late", "x")
	s.Close()
	m := metaOf(t, path)
	// Damage the newest meta page: the file falls back one transaction.
	writeAt(t, path, int64(m.txid%2)*int64(m.pageSize)+pageHeaderSize+20, []byte{0xFF, 0xEE})
	rep, err := Check(filepath.Dir(path))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if rep.MetaFallback == "" || rep.TxID != m.txid-1 {
		t.Errorf("report: fallback %q, transaction %d; want a fallback to %d", rep.MetaFallback, rep.TxID, m.txid-1)
	}
	s, err = Open(filepath.Dir(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := dump(t, s); !mapsEqual(got, before) {
		t.Errorf("after the fallback the store holds %d entries, want the %d before the last write", len(got), len(before))
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/trellis": "/var/lib/trellis",
		"./data":           "./data",
		"my data":          "'my data'",
		"it's":             `'it'\''s'`,
		"":                 "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzVerifyFile feeds damaged store files to the walk. It must not panic,
// and a file it passes must be safe for bbolt: opening it and reading every
// bucket, key and value neither panics nor faults.
func FuzzVerifyFile(f *testing.F) {
	dir := f.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		f.Fatal(err)
	}
	populate(f, s, "f")
	s.Close()
	clean, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		f.Fatal(err)
	}
	m, err := readMeta(bytes.NewReader(clean), int64(len(clean)))
	if err != nil {
		f.Fatal(err)
	}
	ps := int(m.pageSize)
	f.Add(clean)
	f.Add(clean[:len(clean)/2])
	f.Add(clean[:2*ps])
	f.Add([]byte("not a database"))
	for id := 2; id < int(m.pgid); id++ {
		b := bytes.Clone(clean)
		b[id*ps+pageHeaderSize+3] ^= 0x40 // inside the elements
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var rep Report
		if err := verifyFile(bytes.NewReader(data), int64(len(data)), &rep); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("verifyFile = %v, want nil or ErrCorrupt", err)
			}
			return
		}
		path := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(path, 0, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			return // bbolt refuses it itself
		}
		defer db.Close()
		err = viewGuarded(db, func(tx *bolt.Tx) error {
			var walk func(b *bolt.Bucket) error
			walk = func(b *bolt.Bucket) error {
				return b.ForEach(func(k, v []byte) error {
					if v == nil {
						return walk(b.Bucket(k))
					}
					_ = bytes.Count(v, []byte{0}) // read every byte
					return nil
				})
			}
			return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) })
		})
		if err != nil {
			t.Fatalf("verifyFile passed a file that bbolt fails on: %v", err)
		}
	})
}

// benchStore builds a store of about 16 MiB: artifacts, and 20000 keys in
// 20 actors' buckets (written in a few transactions, for speed).
func benchStore(b *testing.B) *Store {
	b.Helper()
	s := openTest(b, nil)
	for i := range 16 {
		if _, err := s.PutArtifact(bytes.Repeat([]byte{byte(i)}, 1<<20)); err != nil {
			b.Fatal(err)
		}
	}
	for a := range 20 {
		if err := s.db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.Bucket(bucketKV).CreateBucket(fmt.Appendf(nil, "actor-%02d", a))
			if err != nil {
				return err
			}
			for k := range 1000 {
				if err := bk.Put(fmt.Appendf(nil, "key-%05d", k), bytes.Repeat([]byte("v"), 100)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkOpenVerified measures Open of a 16 MiB store, which verifies
// every page (the store's walk, then bbolt's Check) before opening it.
func BenchmarkOpenVerified(b *testing.B) {
	s := benchStore(b)
	dir := filepath.Dir(s.Path())
	s.Close()
	fi, err := os.Stat(s.Path())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	for b.Loop() {
		s, err := Open(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkSnapshotLastGood measures writing the last good copy of a
// 16 MiB store: copy, fsync, verify, rename. One write between snapshots
// keeps it from being skipped.
func BenchmarkSnapshotLastGood(b *testing.B) {
	s := benchStore(b)
	fi, err := os.Stat(s.Path())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	for b.Loop() {
		b.StopTimer()
		kvSet(b, s, "bench", "k", "v")
		b.StartTimer()
		if _, wrote, err := s.SnapshotLastGood(); err != nil || !wrote {
			b.Fatal(wrote, err)
		}
	}
}

// TestVerifyAcceptsWhatBboltWrites: whatever bbolt writes (puts, deletes,
// nested and inline buckets, values spanning pages, page splits and merges,
// free-list reuse) verifies: the walk has no false alarms.
func TestVerifyAcceptsWhatBboltWrites(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := mathrand.New(mathrand.NewPCG(seed, 1))
			path := filepath.Join(t.TempDir(), "x.db")
			db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true}) // speed: durability is not the point
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			names := []string{"a", "b", "c"}
			for tx := range 300 {
				err := db.Update(func(tx *bolt.Tx) error {
					top, err := tx.CreateBucketIfNotExists([]byte(names[rng.IntN(len(names))]))
					if err != nil {
						return err
					}
					b := top
					if rng.IntN(2) == 0 {
						if b, err = top.CreateBucketIfNotExists(fmt.Appendf(nil, "sub-%d", rng.IntN(5))); err != nil {
							return err
						}
					}
					for range 1 + rng.IntN(40) {
						key := fmt.Appendf(nil, "k%04d", rng.IntN(500))
						switch r := rng.IntN(10); {
						case r < 5:
							err = b.Put(key, bytes.Repeat([]byte{byte(r)}, rng.IntN(200)))
						case r < 6:
							err = b.Put(key, bytes.Repeat([]byte{byte(r)}, 5000+rng.IntN(20000)))
						case r < 9:
							err = b.Delete(key)
						default:
							if err = top.DeleteBucket(fmt.Appendf(nil, "sub-%d", rng.IntN(5))); errors.Is(err, bolterrors.ErrBucketNotFound) {
								err = nil
							}
							b = top // b may have been the deleted bucket
						}
						if err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					t.Fatalf("transaction %d: %v", tx, err)
				}
				if tx%50 == 49 {
					if err := verifyPath(path); err != nil {
						t.Fatalf("after transaction %d: %v", tx, err)
					}
				}
			}
		})
	}
}
