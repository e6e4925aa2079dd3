package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openTest opens a store in a fresh temp dir and closes it when the test ends.
func openTest(t testing.TB, opts *Options) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// reopen closes s and opens its file again.
func reopen(t testing.TB, s *Store, opts *Options) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s, err := Open(filepath.Dir(s.Path()), opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// rawUpdate changes the bbolt file under a closed store directly, as damage or
// another binary would.
func rawUpdate(t testing.TB, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatalf("raw update: %v", err)
	}
}

func TestOpenCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "dir")
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if want := filepath.Join(dir, FileName); s.Path() != want {
		t.Errorf("Path() = %q, want %q", s.Path(), want)
	}
	for _, c := range []struct {
		name string
		path string
		want os.FileMode
	}{
		{"data dir", dir, 0o700},
		{"file", s.Path(), 0o600},
	} {
		t.Run(c.name, func(t *testing.T) {
			fi, err := os.Stat(c.path)
			if err != nil {
				t.Fatal(err)
			}
			// The umask can only remove bits; none beyond the wanted ones may be set.
			if got := fi.Mode().Perm(); got&^c.want != 0 {
				t.Errorf("mode %v, want at most %v", got, c.want)
			}
		})
	}
	var version uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		version, err = schemaVersion(tx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if version != SchemaVersion {
		t.Errorf("schema version of a new file = %d, want %d", version, SchemaVersion)
	}
}

func TestOpenInvalidOptions(t *testing.T) {
	for _, c := range []struct {
		name string
		dir  string
		opts *Options
	}{
		{"empty dir", "", nil},
		{"negative timeout", t.TempDir(), &Options{Timeout: -time.Second}},
		{"negative max size", t.TempDir(), &Options{MaxSize: -1}},
		{"negative kv max value", t.TempDir(), &Options{KVMaxValue: -1}},
		{"kv max value beyond bbolt", t.TempDir(), &Options{KVMaxValue: bolt.MaxValueSize + 1}},
		{"negative kv max keys", t.TempDir(), &Options{KVMaxKeys: -1}},
		{"negative kv max bytes", t.TempDir(), &Options{KVMaxBytes: -1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(c.dir, c.opts)
			if !errors.Is(err, ErrInvalid) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("Open = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestMigrationsComplete(t *testing.T) {
	for v, m := range migrations {
		if m == nil {
			t.Errorf("no migration from schema version %d to %d", v, v+1)
		}
	}
	// bucketsAddedIn must know every bucket, or downgrade builds files that
	// no older binary ever wrote.
	s := openTest(t, nil)
	var got, want []string
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			got = append(got, string(name))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	want = append(want, string(bucketMeta))
	for v := uint64(1); v <= SchemaVersion; v++ {
		if _, ok := bucketsAddedIn[v]; !ok {
			t.Errorf("bucketsAddedIn has no entry for schema version %d", v)
		}
		for _, b := range bucketsAddedIn[v] {
			want = append(want, string(b))
		}
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("buckets of a new file = %q, bucketsAddedIn says %q", got, want)
	}
}

// bucketsAddedIn lists the top-level buckets that each schema version added
// (besides meta, which every version has).
var bucketsAddedIn = map[uint64][][]byte{
	1: {bucketArtifacts, bucketActors, bucketActorRevisions},
	2: {bucketHost, bucketHostLabels},
	3: {bucketKV, bucketKVUsage},
	4: {bucketCapState},
}

// downgrade turns the closed store file at path into a file of schema
// version v: it deletes the buckets that later versions added and sets the
// version back, which is exactly what a file of version v was.
func downgrade(t testing.TB, path string, v uint64) {
	t.Helper()
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		for w := v + 1; w <= SchemaVersion; w++ {
			for _, b := range bucketsAddedIn[w] {
				if err := tx.DeleteBucket(b); err != nil {
					return fmt.Errorf("delete %s: %w", b, err)
				}
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, encodeUint64(v))
	})
}

func TestReopenPersists(t *testing.T) {
	clock := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	opts := &Options{Now: func() time.Time { return clock }}
	s := openTest(t, opts)
	module := []byte("\x00asm\x01\x00\x00\x00 module")
	d, err := s.PutArtifact(module)
	if err != nil {
		t.Fatal(err)
	}
	want := []Actor{
		{Name: "echo", Artifact: d, Revision: 7, Limits: Limits{MaxInstances: 4, MemoryPages: 32,
			CallTimeout: 2 * time.Second, MaxRequest: 1 << 20, MaxResponse: 2 << 20, MaxHostPayload: 64 << 10, MaxHostCalls: 500}, Grants: []byte(`{"kv":true}`)},
		{Name: "thermostat", Artifact: d, Revision: 1},
	}
	for _, a := range want {
		if err := s.PutActor(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteActor("thermostat"); err != nil {
		t.Fatal(err)
	}

	s = reopen(t, s, opts)
	got, err := s.Actors()
	if err != nil {
		t.Fatal(err)
	}
	want[0].UpdatedAt = clock
	if len(got) != 1 || !actorEqual(got[0], want[0]) {
		t.Errorf("Actors() after reopen = %+v, want %+v", got, want[:1])
	}
	data, err := s.Artifact(d)
	if err != nil || !bytes.Equal(data, module) {
		t.Errorf("Artifact after reopen = %q, %v; want %q", data, err, module)
	}
	// The highest revision of a deleted actor survives the reopen too.
	if err := s.PutActor(Actor{Name: "thermostat", Artifact: d}); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Actor("thermostat"); err != nil || a.Revision != 2 {
		t.Errorf("assigned revision after reopen = %d, %v; want 2", a.Revision, err)
	}
}

func TestOpenSchemaTooNew(t *testing.T) {
	for _, version := range []uint64{SchemaVersion + 1, 1 << 40} {
		t.Run(strconv.FormatUint(version, 10), func(t *testing.T) {
			s := openTest(t, nil)
			path := s.Path()
			s.Close()
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keySchemaVersion, encodeUint64(version))
			})
			before := readFile(t, path)

			s, err := Open(filepath.Dir(path), nil)
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, ErrSchemaTooNew) {
				t.Fatalf("Open = %v, want ErrSchemaTooNew", err)
			}
			for _, want := range []string{strconv.FormatUint(version, 10), strconv.Itoa(SchemaVersion), path} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			if !bytes.Equal(readFile(t, path), before) {
				t.Error("Open changed a file with a newer schema")
			}
		})
	}
}

func TestOpenNotATrellisDatabase(t *testing.T) {
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	for _, c := range []struct {
		name    string
		content []byte                  // written as the file, or
		raw     func(tx *bolt.Tx) error // applied to a new bbolt file
	}{
		{name: "text", content: []byte("actors:\n  - echo\n")},
		{name: "one page of text", content: bytes.Repeat([]byte("trellis "), 4096/8)},
		{name: "random 5000 bytes", content: random(5000)},
		{name: "random 64 KiB", content: random(64 << 10)},
		{name: "bbolt file of another program", raw: func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte("widgets"))
			return err
		}},
		{name: "meta bucket without version", raw: func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket(bucketMeta)
			return err
		}},
		{name: "short schema version", raw: func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket(bucketMeta)
			if err != nil {
				return err
			}
			return b.Put(keySchemaVersion, []byte{1})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			if c.raw != nil {
				rawUpdate(t, path, c.raw)
			} else if err := os.WriteFile(path, c.content, 0o600); err != nil {
				t.Fatal(err)
			}
			before := readFile(t, path)

			s, err := Open(dir, nil)
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the path %q", err, path)
			}
			if !bytes.Equal(readFile(t, path), before) {
				t.Error("Open changed the file")
			}
		})
	}
}

func TestOpenEmptyFileIsNew(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatalf("Open of an empty file: %v", err)
	}
	s.Close()
}

func TestOpenLocked(t *testing.T) {
	s := openTest(t, nil)
	dir := filepath.Dir(s.Path())

	second, err := Open(dir, &Options{Timeout: 50 * time.Millisecond})
	if err == nil {
		second.Close()
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	for _, want := range []string{s.Path(), "another trellis"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	third, err := Open(dir, &Options{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	third.Close()
}

func TestFull(t *testing.T) {
	s := openTest(t, &Options{MaxSize: 1 << 20})
	_, err := s.PutArtifact(bytes.Repeat([]byte{1}, 2<<20))
	if !errors.Is(err, ErrFull) {
		t.Fatalf("PutArtifact beyond MaxSize = %v, want ErrFull", err)
	}
	// The failed write rolled back; small writes still fit.
	if _, err := s.PutArtifact([]byte("small")); err != nil {
		t.Errorf("PutArtifact after ErrFull: %v", err)
	}
}

func TestClosed(t *testing.T) {
	s := openTest(t, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := s.PutArtifact([]byte("x")); err == nil {
		t.Error("PutArtifact on a closed store succeeded")
	}
	if _, err := s.Actors(); err == nil {
		t.Error("Actors on a closed store succeeded")
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// actorEqual compares actors with time.Time.Equal for UpdatedAt.
func actorEqual(a, b Actor) bool {
	ua, ub := a.UpdatedAt, b.UpdatedAt
	ga, gb := a.Grants, b.Grants
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	a.Grants, b.Grants = nil, nil
	return reflect.DeepEqual(a, b) && ua.Equal(ub) && bytes.Equal(ga, gb)
}

func TestConcurrentUse(t *testing.T) {
	s := openTest(t, nil)
	d, err := s.PutArtifact([]byte("module"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		name := "actor-" + strconv.Itoa(i)
		wg.Go(func() {
			for range 5 {
				if err := s.PutActor(Actor{Name: name, Artifact: d}); err != nil {
					t.Error(err)
				}
				if _, err := s.Actors(); err != nil {
					t.Error(err)
				}
				if _, err := s.Artifact(d); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for i := range 4 {
		if a, err := s.Actor("actor-" + strconv.Itoa(i)); err != nil || a.Revision != 5 {
			t.Errorf("actor-%d = revision %d, %v; want 5", i, a.Revision, err)
		}
	}
}

// TestOpenDamagedPages: a file whose header is intact but whose data pages
// are overwritten opens with an error (ErrCorrupt) or, where bbolt cannot
// see the damage at open, fails cleanly on first use; it never crashes the
// process and never reads as an empty store.
func TestOpenDamagedPages(t *testing.T) {
	for _, page := range []int64{2, 3, 4, 5} {
		t.Run(fmt.Sprint("page ", page), func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			d, err := s.PutArtifact([]byte("wasm bytes"))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.PutActor(Actor{Name: "a", Artifact: d}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			f, err := os.OpenFile(filepath.Join(dir, FileName), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			pageSize := int64(os.Getpagesize())
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, int(pageSize)), page*pageSize); err != nil {
				t.Fatal(err)
			}
			f.Close()

			s, err = Open(dir, &Options{Timeout: 100 * time.Millisecond})
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("open: %v, want ErrCorrupt", err)
				}
				return
			}
			defer s.Close()
			actors, err := s.Actors()
			if err == nil && len(actors) == 0 {
				t.Fatal("a damaged store read as empty")
			}
		})
	}
}
