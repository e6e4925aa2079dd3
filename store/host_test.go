package store

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nkeys"
	bolt "go.etcd.io/bbolt"
)

// publicKey returns kp's public key or fails the test.
func publicKey(t testing.TB, kp nkeys.KeyPair) string {
	t.Helper()
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatalf("PublicKey: %v", err)
	}
	return pub
}

func TestIdentityStable(t *testing.T) {
	s := openTest(t, nil)
	kp, err := s.Identity()
	if err != nil {
		t.Fatalf("Identity: %v", err)
	}
	id := publicKey(t, kp)
	if !nkeys.IsValidPublicServerKey(id) {
		t.Fatalf("host id %q is not a server public key", id)
	}
	sig, err := kp.Sign([]byte("nonce"))
	if err != nil {
		t.Fatal(err)
	}
	kp.Wipe()

	again, err := s.Identity()
	if err != nil {
		t.Fatalf("second Identity: %v", err)
	}
	if got := publicKey(t, again); got != id {
		t.Errorf("second Identity = %s, want %s", got, id)
	}

	s = reopen(t, s, nil)
	after, err := s.Identity()
	if err != nil {
		t.Fatalf("Identity after reopen: %v", err)
	}
	if got := publicKey(t, after); got != id {
		t.Errorf("Identity after reopen = %s, want %s", got, id)
	}
	if err := after.Verify([]byte("nonce"), sig); err != nil {
		t.Errorf("the reopened key does not verify the first key's signature: %v", err)
	}
}

// TestIdentityConcurrentFirstCalls: concurrent first calls agree on one key.
func TestIdentityConcurrentFirstCalls(t *testing.T) {
	s := openTest(t, nil)
	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			kp, err := s.Identity()
			if err != nil {
				t.Error(err)
				return
			}
			ids[i], _ = kp.PublicKey()
		})
	}
	wg.Wait()
	for i, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("Identity call %d = %q, call 0 = %q: want one key", i, id, ids[0])
		}
	}
}

// TestIdentityKeptWhenCorrupt: a damaged seed is reported, never replaced by
// a new key (which would silently change the host id).
func TestIdentityKeptWhenCorrupt(t *testing.T) {
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	userSeed, _ := user.Seed()
	for _, c := range []struct {
		name string
		seed []byte
		want string // part of the error
	}{
		{"garbage", []byte("not a seed"), "does not decode"},
		{"empty", []byte{}, "does not decode"},
		{"user seed", bytes.Clone(userSeed), "user key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openTest(t, nil)
			path := s.Path()
			s.Close()
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(bucketHost).Put(keyHostSeed, c.seed)
			})
			s = reopen(t, s, nil)
			for range 2 {
				kp, err := s.Identity()
				if !errors.Is(err, ErrCorrupt) || kp != nil {
					t.Fatalf("Identity = %v, %v; want ErrCorrupt", kp, err)
				}
				if !strings.Contains(err.Error(), c.want) {
					t.Errorf("error %q does not say %q", err, c.want)
				}
				if len(c.seed) > 0 && strings.Contains(err.Error(), string(c.seed)) {
					t.Errorf("error %q quotes the seed", err)
				}
			}
			var stored []byte
			if err := s.db.View(func(tx *bolt.Tx) error {
				stored = bytes.Clone(tx.Bucket(bucketHost).Get(keyHostSeed))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(stored, c.seed) {
				t.Errorf("stored seed changed to %q", stored)
			}
		})
	}
}

// TestMigrateV1 builds a schema-1 file (see downgrade) and checks that Open
// upgrades it and keeps its contents.
func TestMigrateV1(t *testing.T) {
	s := openTest(t, nil)
	d := putModule(t, s, "v1 module")
	for _, name := range []string{"echo", "thermostat"} {
		if err := s.PutActor(Actor{Name: name, Artifact: d, Revision: 3}); err != nil {
			t.Fatal(err)
		}
	}
	before, err := s.Actors()
	if err != nil {
		t.Fatal(err)
	}
	s = migrateFrom(t, s, 1, bucketHost, bucketHostLabels)
	after, err := s.Actors()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("Actors after migration = %+v, want %+v", after, before)
	}
	for i := range after {
		if !actorEqual(after[i], before[i]) {
			t.Errorf("actor %d after migration = %+v, want %+v", i, after[i], before[i])
		}
	}
	if _, err := s.Artifact(d); err != nil {
		t.Errorf("artifact after migration: %v", err)
	}
	if _, err := s.Identity(); err != nil {
		t.Errorf("Identity after migration: %v", err)
	}
	if err := s.PutLabels(map[string]string{"site": "berlin"}); err != nil {
		t.Errorf("PutLabels after migration: %v", err)
	}
}

func TestLabelsRoundTrip(t *testing.T) {
	s := openTest(t, nil)
	got, err := s.Labels()
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Labels of a new store = %#v, %v; want an empty map", got, err)
	}
	steps := []struct {
		name   string
		put    map[string]string
		delete []string
		want   map[string]string
	}{
		{name: "put", put: map[string]string{"site": "berlin", "model": "pi4", "trellis.dev/role": "gateway"},
			want: map[string]string{"site": "berlin", "model": "pi4", "trellis.dev/role": "gateway"}},
		{name: "merge", put: map[string]string{"model": "pi5", "rack": "3", "gpu": ""},
			want: map[string]string{"site": "berlin", "model": "pi5", "trellis.dev/role": "gateway", "rack": "3", "gpu": ""}},
		{name: "delete with a missing key", delete: []string{"rack", "never-set"},
			want: map[string]string{"site": "berlin", "model": "pi5", "trellis.dev/role": "gateway", "gpu": ""}},
		{name: "empty put", put: map[string]string{},
			want: map[string]string{"site": "berlin", "model": "pi5", "trellis.dev/role": "gateway", "gpu": ""}},
	}
	for _, step := range steps {
		if step.put != nil {
			if err := s.PutLabels(step.put); err != nil {
				t.Fatalf("%s: PutLabels: %v", step.name, err)
			}
		}
		if step.delete != nil {
			if err := s.DeleteLabels(step.delete); err != nil {
				t.Fatalf("%s: DeleteLabels: %v", step.name, err)
			}
		}
		got, err := s.Labels()
		if err != nil || !maps.Equal(got, step.want) {
			t.Fatalf("%s: Labels = %v, %v; want %v", step.name, got, err, step.want)
		}
	}
	s = reopen(t, s, nil)
	got, err = s.Labels()
	if want := steps[len(steps)-1].want; err != nil || !maps.Equal(got, want) {
		t.Errorf("Labels after reopen = %v, %v; want %v", got, err, want)
	}
}

func labelCases() []struct {
	name       string
	key, value string
	valid      bool
} {
	return []struct {
		name       string
		key, value string
		valid      bool
	}{
		{"simple", "site", "berlin", true},
		{"digits", "0", "1", true},
		{"prefixed key", "trellis.dev/role", "gateway", true},
		{"inner punctuation", "a-b_c.d/e", "v", true},
		{"empty value", "gpu", "", true},
		{"punctuated value", "url", "https://x.example/a?b;c", true},
		{"upper-case key", "Model", "pi4", false},
		{"upper-case value ok", "model", "Pi4", true},
		{"longest", strings.Repeat("k", 63), strings.Repeat("v", 63), true},
		{"empty key", "", "x", false},
		{"long key", strings.Repeat("k", 64), "x", false},
		{"long value", "k", strings.Repeat("v", 64), false},
		{"key starts with dash", "-k", "x", false},
		{"key ends with slash", "k/", "x", false},
		{"key with space", "my key", "x", false},
		{"key with equals", "a=b", "x", false},
		{"key with comma", "a,b", "x", false},
		{"non-ascii key", "größe", "x", false},
		{"value with space", "k", "a b", false},
		{"value with comma", "k", "a,b", false},
		{"value with equals", "k", "a=b", false},
		{"value with tab", "k", "a\tb", false},
		{"value with newline", "k", "a\n", false},
		{"value with DEL", "k", "a\x7f", false},
		{"non-ascii value", "k", "größe", false},
	}
}

func TestValidateLabel(t *testing.T) {
	for _, c := range labelCases() {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateLabel(c.key, c.value)
			if c.valid {
				if err != nil {
					t.Fatalf("ValidateLabel(%q, %q) = %v, want nil", c.key, c.value, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ValidateLabel(%q, %q) = %v, want ErrInvalid", c.key, c.value, err)
			}
			for _, part := range []string{quote(c.key), quote(c.value)} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not name %s", err, part)
				}
			}
		})
	}
}

func TestPutLabelsRejects(t *testing.T) {
	s := openTest(t, nil)
	if err := s.PutLabels(map[string]string{"site": "berlin"}); err != nil {
		t.Fatal(err)
	}
	err := s.PutLabels(map[string]string{"model": "pi4", "Bad Key": "x"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"Bad Key"`) {
		t.Fatalf("PutLabels with a bad key = %v, want ErrInvalid naming it", err)
	}
	if err := s.DeleteLabels([]string{"site", "Bad Key"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("DeleteLabels with a bad key = %v, want ErrInvalid", err)
	}
	// Neither call changed anything.
	if got, err := s.Labels(); err != nil || !maps.Equal(got, map[string]string{"site": "berlin"}) {
		t.Errorf("Labels after rejected calls = %v, %v; want only site=berlin", got, err)
	}
}

func TestMaxLabels(t *testing.T) {
	s := openTest(t, nil)
	many := make(map[string]string)
	for i := range MaxLabels - 2 {
		many[fmt.Sprint("l", i)] = "x"
	}
	if err := s.PutLabels(many); err != nil {
		t.Fatal(err)
	}
	// Three new labels, one of them replacing nothing: one too many.
	err := s.PutLabels(map[string]string{"a": "1", "b": "2", "c": "3"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprint(MaxLabels+1)) {
		t.Fatalf("PutLabels beyond MaxLabels = %v, want ErrInvalid naming %d", err, MaxLabels+1)
	}
	if err := s.PutLabels(map[string]string{"a": "1", "b": "2", "l0": "changed"}); err != nil {
		t.Fatalf("PutLabels up to MaxLabels: %v", err)
	}
	if got, err := s.Labels(); err != nil || len(got) != MaxLabels || got["l0"] != "changed" {
		t.Fatalf("Labels = %d labels (l0=%q), %v; want %d", len(got), got["l0"], err, MaxLabels)
	}
	// A full host can still change a label it has.
	if err := s.PutLabels(map[string]string{"l1": "changed"}); err != nil {
		t.Errorf("changing a label at MaxLabels: %v", err)
	}
}

// TestLabelsCorrupt: a stored label that breaks the rules is reported, and
// the valid ones are still returned.
func TestLabelsCorrupt(t *testing.T) {
	s := openTest(t, nil)
	if err := s.PutLabels(map[string]string{"site": "berlin"}); err != nil {
		t.Fatal(err)
	}
	path := s.Path()
	s.Close()
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHostLabels).Put([]byte("Bad Key"), []byte("x"))
	})
	s = reopen(t, s, nil)
	got, err := s.Labels()
	if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"Bad Key"`) {
		t.Errorf("Labels error = %v, want ErrCorrupt naming the key", err)
	}
	if !maps.Equal(got, map[string]string{"site": "berlin"}) {
		t.Errorf("Labels = %v, want the valid label site=berlin", got)
	}
}

type identityCase struct {
	name  string
	in    []byte
	valid bool
}

func identityDecodeCases(tb testing.TB) []identityCase {
	seedOf := func(create func() (nkeys.KeyPair, error)) []byte {
		kp, err := create()
		if err != nil {
			tb.Fatal(err)
		}
		seed, _ := kp.Seed()
		return bytes.Clone(seed)
	}
	server := seedOf(nkeys.CreateServer)
	flipped := bytes.Clone(server)
	flipped[len(flipped)/2] ^= 1
	return []identityCase{
		{"server seed", server, true},
		{"empty", nil, false},
		{"user seed", seedOf(nkeys.CreateUser), false},
		{"account seed", seedOf(nkeys.CreateAccount), false},
		{"curve seed", seedOf(nkeys.CreateCurveKeys), false},
		{"public key", []byte("NDJYWL6EKMYVBJQK6JWMRRZPQSBTT3EOMAWJJ3HM6FE3OVNVVQRQR6SC"), false},
		{"bad checksum", flipped, false},
		{"truncated", server[:len(server)-1], false},
		{"not base32", []byte("S!!!!!!!"), false},
		{"short", []byte("SNAA"), false},
	}
}

func TestDecodeIdentity(t *testing.T) {
	for _, c := range identityDecodeCases(t) {
		t.Run(c.name, func(t *testing.T) {
			kp, err := decodeIdentity(c.in)
			if c.valid {
				if err != nil {
					t.Fatalf("decodeIdentity = %v, want success", err)
				}
				checkIdentity(t, kp, c.in)
				return
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeIdentity = %v, want ErrCorrupt", err)
			}
		})
	}
}

// FuzzDecodeIdentity: a stored seed decodes to a working server key pair
// holding exactly those bytes, or fails with ErrCorrupt without quoting it.
func FuzzDecodeIdentity(f *testing.F) {
	for _, c := range identityDecodeCases(f) {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		kp, err := decodeIdentity(in)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeIdentity error %v does not wrap ErrCorrupt", err)
			}
			if len(in) >= 8 && strings.Contains(err.Error(), string(in)) {
				t.Fatalf("decodeIdentity error %q quotes the seed", err)
			}
			return
		}
		checkIdentity(t, kp, in)
	})
}

// checkIdentity checks that kp is a server key pair built from seed, which it
// holds in its own memory.
func checkIdentity(t *testing.T, kp nkeys.KeyPair, seed []byte) {
	t.Helper()
	got, err := kp.Seed()
	if err != nil || !bytes.Equal(got, seed) {
		t.Fatalf("Seed() = %q, %v; want %q", got, err, seed)
	}
	if len(seed) > 0 && &got[0] == &seed[0] {
		t.Fatal("the key pair shares memory with the stored seed")
	}
	if id := publicKey(t, kp); !nkeys.IsValidPublicServerKey(id) {
		t.Fatalf("public key %q is not a server key", id)
	}
	sig, err := kp.Sign([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := kp.Verify([]byte("x"), sig); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeLabel(t *testing.T) {
	for _, c := range labelCases() {
		t.Run(c.name, func(t *testing.T) {
			key, value, err := decodeLabel([]byte(c.key), []byte(c.value))
			switch {
			case c.valid && (err != nil || key != c.key || value != c.value):
				t.Errorf("decodeLabel = %q, %q, %v; want %q, %q", key, value, err, c.key, c.value)
			case !c.valid && (!errors.Is(err, ErrCorrupt) || errors.Is(err, ErrInvalid)):
				t.Errorf("decodeLabel = %v, want ErrCorrupt only", err)
			}
		})
	}
	if _, _, err := decodeLabel([]byte("bucket"), nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("decodeLabel of a nested bucket = %v, want ErrCorrupt", err)
	}
}

// FuzzDecodeLabel: a stored label decodes to itself and passes ValidateLabel,
// or fails with ErrCorrupt.
func FuzzDecodeLabel(f *testing.F) {
	for _, c := range labelCases() {
		f.Add([]byte(c.key), []byte(c.value))
	}
	f.Fuzz(func(t *testing.T, k, v []byte) {
		key, value, err := decodeLabel(k, v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrInvalid) {
				t.Fatalf("decodeLabel error %v: want ErrCorrupt only", err)
			}
			return
		}
		if key != string(k) || value != string(v) {
			t.Fatalf("decodeLabel(%q, %q) = %q, %q", k, v, key, value)
		}
		if err := ValidateLabel(key, value); err != nil {
			t.Fatalf("decoded label fails ValidateLabel: %v", err)
		}
	})
}

// migrateFrom closes s, turns its file back into schema version from,
// reopens it (which migrates it) and checks that it is at SchemaVersion
// with the buckets the migration creates. The reopened store is closed at
// the end of the test.
func migrateFrom(t *testing.T, s *Store, from uint64, buckets ...[]byte) *Store {
	t.Helper()
	path := s.Path()
	s.Close()
	downgrade(t, path, from)
	s, err := Open(filepath.Dir(path), nil)
	if err != nil {
		t.Fatalf("Open of a schema-%d file: %v", from, err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.db.View(func(tx *bolt.Tx) error {
		v, err := schemaVersion(tx)
		if err != nil || v != SchemaVersion {
			return fmt.Errorf("schema version after migration = %d, %v; want %d", v, err, SchemaVersion)
		}
		for _, b := range buckets {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("bucket %s missing after migration", b)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return s
}
