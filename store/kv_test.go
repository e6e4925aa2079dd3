package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// kvGet returns the value under key, failing the test on an error.
func kvGet(t testing.TB, s *Store, actor, key string) (string, bool) {
	t.Helper()
	v, ok, err := s.KVGet(actor, []byte(key))
	if err != nil {
		t.Fatalf("KVGet(%q, %q): %v", actor, key, err)
	}
	if ok != (v != nil) {
		t.Fatalf("KVGet(%q, %q) = %q, %v: ok disagrees with the value", actor, key, v, ok)
	}
	return string(v), ok
}

// kvSet stores a value, failing the test on an error.
func kvSet(t testing.TB, s *Store, actor, key, value string) {
	t.Helper()
	if err := s.KVSet(actor, []byte(key), []byte(value)); err != nil {
		t.Fatalf("KVSet(%q, %q): %v", actor, key, err)
	}
}

// kvKeys lists keys as strings, failing the test on an error.
func kvKeys(t testing.TB, s *Store, actor, prefix, after string, limit int) []string {
	t.Helper()
	keys, err := s.KVKeys(actor, []byte(prefix), []byte(after), limit)
	if err != nil {
		t.Fatalf("KVKeys(%q, %q, %q, %d): %v", actor, prefix, after, limit, err)
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = string(k)
	}
	return out
}

// storedUsage returns the usage record of actor and a recount of its bucket.
func storedUsage(t testing.TB, s *Store, actor string) (stored, counted kvUsage) {
	t.Helper()
	if err := s.db.View(func(tx *bolt.Tx) error {
		if raw := tx.Bucket(bucketKVUsage).Get([]byte(actor)); raw != nil {
			var err error
			if stored, err = decodeKVUsage(raw); err != nil {
				return err
			}
		}
		if b := tx.Bucket(bucketKV).Bucket([]byte(actor)); b != nil {
			counted = countKVUsage(b)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return stored, counted
}

// checkUsage fails the test if actor's usage record disagrees with its bucket.
func checkUsage(t testing.TB, s *Store, actor string) kvUsage {
	t.Helper()
	stored, counted := storedUsage(t, s, actor)
	if stored != counted {
		t.Fatalf("usage of %s: record %+v, bucket holds %+v", actor, stored, counted)
	}
	return stored
}

func TestKVRoundTrip(t *testing.T) {
	s := openTest(t, nil)
	if v, ok := kvGet(t, s, "echo", "missing"); ok {
		t.Fatalf("KVGet before any write = %q, true", v)
	}
	binaryKey := string([]byte{0, 0xff, '\n', 0x80})
	for _, c := range []struct{ key, value string }{
		{"greeting", "hello"},
		{"greeting", "hello again"}, // overwrite
		{"empty", ""},
		{binaryKey, string([]byte{0, 1, 2})},
		{strings.Repeat("k", MaxKVKeyLen), strings.Repeat("v", DefaultKVMaxValue)},
	} {
		kvSet(t, s, "echo", c.key, c.value)
		if v, ok := kvGet(t, s, "echo", c.key); !ok || v != c.value {
			t.Errorf("KVGet(%.20q) = %.20q, %v; want %.20q", c.key, v, ok, c.value)
		}
	}
	// An empty value exists, and reads as empty and non-nil.
	if v, ok, err := s.KVGet("echo", []byte("empty")); err != nil || !ok || v == nil || len(v) != 0 {
		t.Errorf("KVGet of an empty value = %#v, %v, %v; want []byte{}, true", v, ok, err)
	}
	// A nil value stores an empty one.
	if err := s.KVSet("echo", []byte("nil"), nil); err != nil {
		t.Fatal(err)
	}
	if v, ok := kvGet(t, s, "echo", "nil"); !ok || v != "" {
		t.Errorf("KVGet after KVSet(nil) = %q, %v; want \"\", true", v, ok)
	}

	for _, c := range []struct {
		key  string
		want bool
	}{{"greeting", true}, {"greeting", false}, {"never", false}, {"empty", true}} {
		existed, err := s.KVDelete("echo", []byte(c.key))
		if err != nil || existed != c.want {
			t.Errorf("KVDelete(%q) = %v, %v; want %v", c.key, existed, err, c.want)
		}
		if v, ok := kvGet(t, s, "echo", c.key); ok {
			t.Errorf("KVGet(%q) after delete = %q, true", c.key, v)
		}
	}
	if got, want := kvKeys(t, s, "echo", "", "", MaxKVPage), []string{binaryKey, strings.Repeat("k", MaxKVKeyLen), "nil"}; !slices.Equal(got, want) {
		t.Errorf("KVKeys = %.20q, want %.20q", got, want)
	}
	checkUsage(t, s, "echo")
}

func TestKVRejects(t *testing.T) {
	s := openTest(t, &Options{KVMaxValue: 10})
	long := bytes.Repeat([]byte("k"), MaxKVKeyLen+1)
	for _, c := range []struct {
		name    string
		call    func() error
		mention []string // the actor, and the key or argument
	}{
		{"get: empty actor", func() error { _, _, err := s.KVGet("", []byte("k")); return err }, []string{`""`}},
		{"get: upper case", func() error { _, _, err := s.KVGet("Echo", []byte("k")); return err }, []string{`"Echo"`}},
		{"get: path", func() error { _, _, err := s.KVGet("a/../b", []byte("k")); return err }, []string{`"a/../b"`}},
		{"get: separator", func() error { _, _, err := s.KVGet("a.b", []byte("k")); return err }, []string{`"a.b"`}},
		{"get: empty key", func() error { _, _, err := s.KVGet("echo", nil); return err }, []string{"echo", `""`, "0 bytes"}},
		{"get: long key", func() error { _, _, err := s.KVGet("echo", long); return err }, []string{"echo", `"kkkk`, "1025 bytes"}},
		{"set: wildcard actor", func() error { return s.KVSet("*", []byte("k"), nil) }, []string{`"*"`}},
		{"set: empty key", func() error { return s.KVSet("echo", []byte{}, []byte("v")) }, []string{"echo", `""`}},
		{"set: long key", func() error { return s.KVSet("echo", long, []byte("v")) }, []string{"echo", "1025 bytes"}},
		{"set: long value", func() error { return s.KVSet("echo", []byte("big"), make([]byte, 11)) }, []string{"echo", `"big"`, "11 bytes", "10"}},
		{"delete: bad actor", func() error { _, err := s.KVDelete("a>", []byte("k")); return err }, []string{`"a>"`}},
		{"delete: empty key", func() error { _, err := s.KVDelete("echo", nil); return err }, []string{"echo", `""`}},
		{"increment: bad actor", func() error { _, err := s.KVIncrement("-x", []byte("k"), 1); return err }, []string{`"-x"`}},
		{"increment: long key", func() error { _, err := s.KVIncrement("echo", long, 1); return err }, []string{"echo", "1025 bytes"}},
		{"cas: bad actor", func() error { _, err := s.KVCompareAndSet("x y", []byte("k"), nil, nil); return err }, []string{`"x y"`}},
		{"cas: long new", func() error {
			_, err := s.KVCompareAndSet("echo", []byte("cas"), nil, make([]byte, 11))
			return err
		}, []string{"echo", `"cas"`, "11 bytes"}},
		{"keys: bad actor", func() error { _, err := s.KVKeys("", nil, nil, 1); return err }, []string{`""`}},
		{"keys: long prefix", func() error { _, err := s.KVKeys("echo", long, nil, 1); return err }, []string{"echo", "prefix", "1025 bytes"}},
		{"keys: long after", func() error { _, err := s.KVKeys("echo", nil, long, 1); return err }, []string{"echo", "after", "1025 bytes"}},
		{"keys: zero limit", func() error { _, err := s.KVKeys("echo", nil, nil, 0); return err }, []string{"echo", "limit 0"}},
		{"keys: negative limit", func() error { _, err := s.KVKeys("echo", nil, nil, -1); return err }, []string{"echo", "limit -1"}},
		{"keys: limit too large", func() error { _, err := s.KVKeys("echo", nil, nil, MaxKVPage+1); return err }, []string{"echo", "limit 1001"}},
		{"delete bucket: bad actor", func() error { return s.KVDeleteBucket("Echo") }, []string{`"Echo"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			for _, m := range append(c.mention, "store: kv ") {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
	// Nothing was written, not even an empty bucket.
	if err := s.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketKV).Cursor().First(); k != nil {
			return fmt.Errorf("bucket kv holds %q after rejected calls", k)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	// The cap is the configured one: exactly KVMaxValue bytes fit.
	if err := s.KVSet("echo", []byte("k"), make([]byte, 10)); err != nil {
		t.Errorf("KVSet of KVMaxValue bytes: %v", err)
	}
}

// TestKVIsolation: each actor sees only its own bucket, whatever the names
// and keys, including names that are prefixes of one another and keys that
// would collide if buckets were prefixes of one keyspace.
func TestKVIsolation(t *testing.T) {
	s := openTest(t, nil)
	actors := []string{"a", "ab", "a-b", "a_b", "b"}
	// In a flat keyspace "a"+"b/x" would be "ab"+"/x"; each actor writes both
	// forms, plus a key that names another actor.
	keys := []string{"b/x", "/x", "x", "ab", "\x00", "\xff"}
	value := func(actor, key string) string { return actor + "=" + key }
	for _, a := range actors {
		for _, k := range keys {
			kvSet(t, s, a, k, value(a, k))
		}
		if _, err := s.KVIncrement(a, []byte("n"), int64(len(a))); err != nil {
			t.Fatal(err)
		}
	}
	sortedKeys := append(slices.Clone(keys), "n")
	slices.Sort(sortedKeys)

	for _, a := range actors {
		t.Run(a, func(t *testing.T) {
			for _, k := range keys {
				if v, ok := kvGet(t, s, a, k); !ok || v != value(a, k) {
					t.Errorf("KVGet(%q, %q) = %q, %v; want %q", a, k, v, ok, value(a, k))
				}
			}
			if v, _ := kvGet(t, s, a, "n"); v != strconv.Itoa(len(a)) {
				t.Errorf("counter of %s = %q, want %d", a, v, len(a))
			}
			for _, c := range []struct {
				prefix, after string
				want          []string
			}{
				{"", "", sortedKeys},
				{"b", "", []string{"b/x"}},
				{"a", "", []string{"ab"}},
				{"", "a", sortedKeys[slices.Index(sortedKeys, "ab"):]},
			} {
				if got := kvKeys(t, s, a, c.prefix, c.after, MaxKVPage); !slices.Equal(got, c.want) {
					t.Errorf("KVKeys(%q, prefix %q, after %q) = %q, want %q", a, c.prefix, c.after, got, c.want)
				}
			}
			checkUsage(t, s, a)
		})
	}

	// Keys that only another actor has are missing here.
	kvSet(t, s, "ab", "only-ab", "secret")
	for _, a := range []string{"a", "a-b", "b"} {
		if v, ok := kvGet(t, s, a, "only-ab"); ok {
			t.Errorf("KVGet(%q, only-ab) = %q, true", a, v)
		}
		if existed, err := s.KVDelete(a, []byte("only-ab")); err != nil || existed {
			t.Errorf("KVDelete(%q, only-ab) = %v, %v; want false", a, existed, err)
		}
		if got := kvKeys(t, s, a, "only", "", MaxKVPage); len(got) != 0 {
			t.Errorf("KVKeys(%q, prefix only) = %q, want none", a, got)
		}
		// Neither CAS against another actor's value nor creation succeeds
		// in a way that touches ab.
		if swapped, err := s.KVCompareAndSet(a, []byte("only-ab"), []byte("secret"), []byte("stolen")); err != nil || swapped {
			t.Errorf("KVCompareAndSet(%q) with ab's value = %v, %v; want false", a, swapped, err)
		}
	}
	if v, _ := kvGet(t, s, "ab", "only-ab"); v != "secret" {
		t.Errorf("ab's key = %q after the other actors' calls, want secret", v)
	}

	// Deleting one actor's bucket leaves the others whole.
	if err := s.KVDeleteBucket("a"); err != nil {
		t.Fatal(err)
	}
	if got := kvKeys(t, s, "a", "", "", MaxKVPage); len(got) != 0 {
		t.Errorf("KVKeys(a) after KVDeleteBucket = %q, want none", got)
	}
	for _, a := range actors[1:] {
		if got := kvKeys(t, s, a, "", "", MaxKVPage); len(got) < len(sortedKeys) {
			t.Errorf("KVKeys(%q) after deleting a's bucket = %q", a, got)
		}
		checkUsage(t, s, a)
	}
}

func TestKVIncrement(t *testing.T) {
	s := openTest(t, nil)
	// The steps run in order against one store.
	for _, step := range []struct {
		name  string
		set   *string // set the key to this first
		delta int64
		want  int64
		err   error
		after string // the stored value afterwards
	}{
		{name: "missing starts at 0", delta: 5, want: 5, after: "5"},
		{name: "adds", delta: 37, want: 42, after: "42"},
		{name: "subtracts", delta: -50, want: -8, after: "-8"},
		{name: "zero reads", delta: 0, want: -8, after: "-8"},
		{name: "set value counts on", set: ptr("41"), delta: 1, want: 42, after: "42"},
		{name: "reaches max", set: ptr(strconv.FormatInt(math.MaxInt64-1, 10)), delta: 1, want: math.MaxInt64, after: "9223372036854775807"},
		{name: "overflow", delta: 1, err: ErrOverflow, after: "9223372036854775807"},
		{name: "overflow by a lot", set: ptr("1"), delta: math.MaxInt64, err: ErrOverflow, after: "1"},
		{name: "reaches min", set: ptr(strconv.FormatInt(math.MinInt64+1, 10)), delta: -1, want: math.MinInt64, after: "-9223372036854775808"},
		{name: "underflow", delta: -1, err: ErrOverflow, after: "-9223372036854775808"},
		{name: "min plus max", delta: math.MaxInt64, want: -1, after: "-1"},
		{name: "text", set: ptr("abc"), delta: 1, err: ErrNotInteger, after: "abc"},
		{name: "empty", set: ptr(""), delta: 1, err: ErrNotInteger, after: ""},
		{name: "plus sign", set: ptr("+1"), delta: 1, err: ErrNotInteger, after: "+1"},
		{name: "leading zero", set: ptr("01"), delta: 1, err: ErrNotInteger, after: "01"},
		{name: "minus zero", set: ptr("-0"), delta: 1, err: ErrNotInteger, after: "-0"},
		{name: "space", set: ptr(" 1"), delta: 1, err: ErrNotInteger, after: " 1"},
		{name: "decimal point", set: ptr("1.5"), delta: 1, err: ErrNotInteger, after: "1.5"},
		{name: "beyond int64", set: ptr("9223372036854775808"), delta: -1, err: ErrNotInteger, after: "9223372036854775808"},
		{name: "8-byte big-endian", set: ptr("\x00\x00\x00\x00\x00\x00\x00\x01"), delta: 1, err: ErrNotInteger, after: "\x00\x00\x00\x00\x00\x00\x00\x01"},
		{name: "zero on text fails", set: ptr("abc"), delta: 0, err: ErrNotInteger, after: "abc"},
		{name: "fresh", set: ptr("0"), delta: 0, want: 0, after: "0"},
	} {
		t.Run(step.name, func(t *testing.T) {
			if step.set != nil {
				kvSet(t, s, "counter", "n", *step.set)
			}
			n, err := s.KVIncrement("counter", []byte("n"), step.delta)
			if step.err != nil {
				if !errors.Is(err, step.err) || !strings.Contains(err.Error(), `"n"`) {
					t.Errorf("KVIncrement = %d, %v; want %v naming the key", n, err, step.err)
				}
			} else if err != nil || n != step.want {
				t.Errorf("KVIncrement = %d, %v; want %d", n, err, step.want)
			}
			if v, ok := kvGet(t, s, "counter", "n"); !ok || v != step.after {
				t.Errorf("stored value = %q, %v; want %q", v, ok, step.after)
			}
		})
	}
	// Increment by zero of a missing key creates it, as Redis does.
	if n, err := s.KVIncrement("counter", []byte("zero"), 0); err != nil || n != 0 {
		t.Errorf("KVIncrement(missing, 0) = %d, %v", n, err)
	}
	if v, ok := kvGet(t, s, "counter", "zero"); !ok || v != "0" {
		t.Errorf("after KVIncrement(missing, 0): %q, %v; want \"0\"", v, ok)
	}
	checkUsage(t, s, "counter")
}

func ptr(s string) *string { return &s }

// TestKVIncrementConcurrent: increments from 8 goroutines are never lost.
func TestKVIncrementConcurrent(t *testing.T) {
	s := openTest(t, nil)
	const goroutines, each = 8, 25
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				// Goroutine g adds g+1 to the shared counter and 1 to its own.
				if _, err := s.KVIncrement("counter", []byte("shared"), int64(g+1)); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.KVIncrement("counter", []byte("g"+strconv.Itoa(g)), 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := int64(each * goroutines * (goroutines + 1) / 2)
	if v, _ := kvGet(t, s, "counter", "shared"); v != strconv.FormatInt(want, 10) {
		t.Errorf("shared counter = %s, want %d", v, want)
	}
	for g := range goroutines {
		if v, _ := kvGet(t, s, "counter", "g"+strconv.Itoa(g)); v != strconv.Itoa(each) {
			t.Errorf("counter g%d = %s, want %d", g, v, each)
		}
	}
	checkUsage(t, s, "counter")
}

func TestKVCompareAndSet(t *testing.T) {
	s := openTest(t, nil)
	// The steps run in order against one store, on key "k".
	for _, step := range []struct {
		name      string
		old, new  []byte
		swapped   bool
		after     string
		afterSeen bool
	}{
		{name: "must not exist, missing", old: nil, new: []byte("v1"), swapped: true, after: "v1", afterSeen: true},
		{name: "must not exist, exists", old: nil, new: []byte("v2"), swapped: false, after: "v1", afterSeen: true},
		{name: "matches", old: []byte("v1"), new: []byte("v2"), swapped: true, after: "v2", afterSeen: true},
		{name: "stale", old: []byte("v1"), new: []byte("v3"), swapped: false, after: "v2", afterSeen: true},
		{name: "prefix of the value", old: []byte("v"), new: []byte("v3"), swapped: false, after: "v2", afterSeen: true},
		{name: "empty old against a value", old: []byte{}, new: []byte("v3"), swapped: false, after: "v2", afterSeen: true},
		{name: "nil new stores empty", old: []byte("v2"), new: nil, swapped: true, after: "", afterSeen: true},
		{name: "empty old matches empty", old: []byte{}, new: []byte("v4"), swapped: true, after: "v4", afterSeen: true},
		{name: "same value", old: []byte("v4"), new: []byte("v4"), swapped: true, after: "v4", afterSeen: true},
	} {
		t.Run(step.name, func(t *testing.T) {
			swapped, err := s.KVCompareAndSet("cas", []byte("k"), step.old, step.new)
			if err != nil || swapped != step.swapped {
				t.Fatalf("KVCompareAndSet = %v, %v; want %v", swapped, err, step.swapped)
			}
			if v, ok := kvGet(t, s, "cas", "k"); ok != step.afterSeen || v != step.after {
				t.Errorf("stored = %q, %v; want %q, %v", v, ok, step.after, step.afterSeen)
			}
		})
	}
	// An empty old never matches a missing key.
	if swapped, err := s.KVCompareAndSet("cas", []byte("missing"), []byte{}, []byte("x")); err != nil || swapped {
		t.Errorf("KVCompareAndSet(missing, old empty) = %v, %v; want false", swapped, err)
	}
	if _, ok := kvGet(t, s, "cas", "missing"); ok {
		t.Error("a failed KVCompareAndSet created the key")
	}
	checkUsage(t, s, "cas")

	// A CAS loop from 8 goroutines counts every increment once.
	const goroutines, each = 8, 10
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				for {
					cur, ok, err := s.KVGet("cas", []byte("loop"))
					if err != nil {
						t.Error(err)
						return
					}
					var n int
					if ok {
						n, _ = strconv.Atoi(string(cur))
					} else {
						cur = nil
					}
					swapped, err := s.KVCompareAndSet("cas", []byte("loop"), cur, []byte(strconv.Itoa(n+1)))
					if err != nil {
						t.Error(err)
						return
					}
					if swapped {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	if v, _ := kvGet(t, s, "cas", "loop"); v != strconv.Itoa(goroutines*each) {
		t.Errorf("CAS loop counter = %s, want %d", v, goroutines*each)
	}
}

func TestKVKeysPagination(t *testing.T) {
	s := openTest(t, nil)
	var want []string
	for i := range 25 {
		k := fmt.Sprintf("p/%02d", i)
		want = append(want, k)
		kvSet(t, s, "lister", k, "v")
	}
	for _, k := range []string{"o", "p", "p0", "q/00", "\xff", "\xff\xff"} {
		kvSet(t, s, "lister", k, "v")
	}
	for _, limit := range []int{1, 3, 7, 25, 26, MaxKVPage} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var got []string
			after := ""
			for pages := 0; ; pages++ {
				if pages > len(want)+1 {
					t.Fatalf("pagination does not end: %q", got)
				}
				page := kvKeys(t, s, "lister", "p/", after, limit)
				if len(page) > limit {
					t.Fatalf("page of %d keys, limit %d", len(page), limit)
				}
				got = append(got, page...)
				if len(page) < limit {
					break
				}
				after = page[len(page)-1]
			}
			if !slices.Equal(got, want) {
				t.Errorf("paged keys = %q, want %q", got, want)
			}
		})
	}
	for _, c := range []struct {
		name          string
		prefix, after string
		limit         int
		want          []string
	}{
		{"after a missing key", "p/", "p/04x", 2, []string{"p/05", "p/06"}},
		{"after the last", "p/", "p/24", 5, nil},
		{"after sorts before the prefix", "p/", "a", 2, []string{"p/00", "p/01"}},
		{"after sorts past the prefix", "p/", "q", 5, nil},
		{"after is the prefix", "p/", "p/", 1, []string{"p/00"}},
		{"no prefix", "", "p/23", 4, []string{"p/24", "p0", "q/00", "\xff"}},
		{"0xff prefix", "\xff", "", 5, []string{"\xff", "\xff\xff"}},
		{"0xff prefix after the first", "\xff", "\xff", 5, []string{"\xff\xff"}},
		{"prefix matches nothing", "zz", "", 5, nil},
		{"prefix is a whole key", "p", "", 2, []string{"p", "p/00"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := kvKeys(t, s, "lister", c.prefix, c.after, c.limit); !slices.Equal(got, c.want) {
				t.Errorf("KVKeys(%q, %q, %d) = %q, want %q", c.prefix, c.after, c.limit, got, c.want)
			}
		})
	}
	if got := kvKeys(t, s, "never-wrote", "", "", 10); len(got) != 0 {
		t.Errorf("KVKeys of an actor that never wrote = %q, want none", got)
	}
}

func TestKVPersists(t *testing.T) {
	s := openTest(t, nil)
	kvSet(t, s, "echo", "greeting", "hello")
	kvSet(t, s, "echo", "empty", "")
	if _, err := s.KVIncrement("echo", []byte("n"), 7); err != nil {
		t.Fatal(err)
	}
	kvSet(t, s, "gone", "k", "v")
	if err := s.KVDeleteBucket("gone"); err != nil {
		t.Fatal(err)
	}
	before := checkUsage(t, s, "echo")

	s = reopen(t, s, nil)
	for _, c := range []struct{ actor, key, value string }{
		{"echo", "greeting", "hello"},
		{"echo", "empty", ""},
		{"echo", "n", "7"},
	} {
		if v, ok := kvGet(t, s, c.actor, c.key); !ok || v != c.value {
			t.Errorf("KVGet(%q, %q) after reopen = %q, %v; want %q", c.actor, c.key, v, ok, c.value)
		}
	}
	if n, err := s.KVIncrement("echo", []byte("n"), 1); err != nil || n != 8 {
		t.Errorf("KVIncrement after reopen = %d, %v; want 8", n, err)
	}
	if got := kvKeys(t, s, "gone", "", "", 10); len(got) != 0 {
		t.Errorf("deleted bucket after reopen holds %q", got)
	}
	if after := checkUsage(t, s, "echo"); after != before {
		t.Errorf("usage after reopen = %+v, want %+v", after, before)
	}
	if stored, _ := storedUsage(t, s, "gone"); stored != (kvUsage{}) {
		t.Errorf("usage of a deleted bucket = %+v, want none", stored)
	}
}

// TestMigrateV2 builds a schema-2 file (see downgrade) and checks that Open
// upgrades it, keeps its contents and serves key-value calls.
func TestMigrateV2(t *testing.T) {
	s := openTest(t, nil)
	d := putModule(t, s, "v2 module")
	if err := s.PutActor(Actor{Name: "echo", Artifact: d, Revision: 4}); err != nil {
		t.Fatal(err)
	}
	before, err := s.Actors()
	if err != nil {
		t.Fatal(err)
	}
	kp, err := s.Identity()
	if err != nil {
		t.Fatal(err)
	}
	id := publicKey(t, kp)
	if err := s.PutLabels(map[string]string{"site": "berlin"}); err != nil {
		t.Fatal(err)
	}
	s = migrateFrom(t, s, 2, bucketKV, bucketKVUsage)
	after, err := s.Actors()
	if err != nil || len(after) != 1 || !actorEqual(after[0], before[0]) {
		t.Errorf("Actors after migration = %+v, %v; want %+v", after, err, before)
	}
	if kp, err := s.Identity(); err != nil || publicKey(t, kp) != id {
		t.Errorf("Identity after migration: %v (the host id must not change)", err)
	}
	if labels, err := s.Labels(); err != nil || labels["site"] != "berlin" {
		t.Errorf("Labels after migration = %v, %v", labels, err)
	}
	if got := kvKeys(t, s, "echo", "", "", 10); len(got) != 0 {
		t.Errorf("KVKeys of a migrated file = %q, want none", got)
	}
	if n, err := s.KVIncrement("echo", []byte("boots"), 1); err != nil || n != 1 {
		t.Errorf("KVIncrement after migration = %d, %v", n, err)
	}
}

// TestKVCopyOut: values and keys returned are the caller's own: changing
// them, or the slices a write was given, changes nothing stored, and they
// survive bbolt remapping the file.
func TestKVCopyOut(t *testing.T) {
	s := openTest(t, nil)
	key, value := []byte("key"), []byte("value")
	if err := s.KVSet("echo", key, value); err != nil {
		t.Fatal(err)
	}
	key[0], value[0] = 'X', 'X'
	if v, ok := kvGet(t, s, "echo", "key"); !ok || v != "value" {
		t.Errorf("after changing the slices given to KVSet: %q, %v", v, ok)
	}
	got, _, err := s.KVGet("echo", []byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := s.KVKeys("echo", nil, nil, 10)
	if err != nil || len(keys) != 1 {
		t.Fatalf("KVKeys = %q, %v", keys, err)
	}
	got[0], keys[0][0] = 'X', 'X'
	if v, _ := kvGet(t, s, "echo", "key"); v != "value" {
		t.Errorf("after changing a returned value: %q", v)
	}
	if k := kvKeys(t, s, "echo", "", "", 10); !slices.Equal(k, []string{"key"}) {
		t.Errorf("after changing a returned key: %q", k)
	}

	got, _, _ = s.KVGet("echo", []byte("key"))
	keys, _ = s.KVKeys("echo", nil, nil, 10)
	// Grow the file so that bbolt maps it anew and unmaps the old mapping: a
	// result that still pointed into it would fault or change here.
	for i := range 4 {
		if err := s.KVSet("filler", []byte{byte(i)}, make([]byte, DefaultKVMaxValue)); err != nil {
			t.Fatal(err)
		}
	}
	if string(got) != "value" || string(keys[0]) != "key" {
		t.Errorf("results read before the remap = %q, %q", got, keys)
	}
}

func TestKVQuota(t *testing.T) {
	opts := &Options{KVMaxKeys: 3, KVMaxBytes: 100}
	s := openTest(t, opts)
	kvSet(t, s, "q", "a", "1")
	kvSet(t, s, "q", "b", "2")
	kvSet(t, s, "q", "c", "3")
	// The steps run in order against one store; usage is {keys, bytes}.
	for _, step := range []struct {
		name  string
		call  func() error
		err   error
		usage kvUsage
	}{
		{"a fourth key", func() error { return s.KVSet("q", []byte("d"), nil) }, ErrQuota, kvUsage{3, 6}},
		{"a fourth key by increment", func() error { _, err := s.KVIncrement("q", []byte("d"), 1); return err }, ErrQuota, kvUsage{3, 6}},
		{"a fourth key by CAS", func() error {
			_, err := s.KVCompareAndSet("q", []byte("d"), nil, nil)
			return err
		}, ErrQuota, kvUsage{3, 6}},
		{"overwrite", func() error { return s.KVSet("q", []byte("a"), []byte("11")) }, nil, kvUsage{3, 7}},
		{"increment in place", func() error { _, err := s.KVIncrement("q", []byte("b"), 7); return err }, nil, kvUsage{3, 7}},
		{"delete", func() error { _, err := s.KVDelete("q", []byte("c")); return err }, nil, kvUsage{2, 5}},
		{"add after delete", func() error { return s.KVSet("q", []byte("c"), []byte("3")) }, nil, kvUsage{3, 7}},
		{"up to the byte quota", func() error {
			return s.KVSet("q", []byte("a"), bytes.Repeat([]byte("x"), 100-5))
		}, nil, kvUsage{3, 100}},
		{"one byte past it", func() error { return s.KVSet("q", []byte("b"), []byte("99")) }, ErrQuota, kvUsage{3, 100}},
		{"increment that grows", func() error { _, err := s.KVIncrement("q", []byte("b"), 1); return err }, ErrQuota, kvUsage{3, 100}},
		{"increment that keeps the length", func() error { _, err := s.KVIncrement("q", []byte("b"), -1); return err }, nil, kvUsage{3, 100}},
		{"CAS that grows", func() error {
			_, err := s.KVCompareAndSet("q", []byte("c"), []byte("3"), []byte("33"))
			return err
		}, ErrQuota, kvUsage{3, 100}},
		{"shrink", func() error { return s.KVSet("q", []byte("a"), []byte("1")) }, nil, kvUsage{3, 6}},
	} {
		t.Run(step.name, func(t *testing.T) {
			err := step.call()
			if !errors.Is(err, step.err) {
				t.Fatalf("got %v, want %v", err, step.err)
			}
			if err != nil && (!strings.Contains(err.Error(), "q key") || errors.Is(err, ErrFull)) {
				t.Errorf("quota error %q does not name the actor and key, or claims the file is full", err)
			}
			if u := checkUsage(t, s, "q"); u != step.usage {
				t.Errorf("usage = %+v, want %+v", u, step.usage)
			}
		})
	}
	// Another actor has a quota of its own.
	for _, k := range []string{"a", "b", "c"} {
		kvSet(t, s, "other", k, "v")
	}

	// A lower quota after a reopen: the bucket over it can shrink, not grow.
	s = reopen(t, s, &Options{KVMaxKeys: 1, KVMaxBytes: 4})
	if err := s.KVSet("q", []byte("d"), nil); !errors.Is(err, ErrQuota) {
		t.Errorf("KVSet of a new key over a lowered quota = %v, want ErrQuota", err)
	}
	if err := s.KVSet("q", []byte("a"), []byte("12")); !errors.Is(err, ErrQuota) {
		t.Errorf("KVSet that grows over a lowered quota = %v, want ErrQuota", err)
	}
	if err := s.KVSet("q", []byte("a"), []byte("9")); err != nil {
		t.Errorf("KVSet of the same size over a lowered quota: %v", err)
	}
	if _, err := s.KVDelete("q", []byte("a")); err != nil {
		t.Errorf("KVDelete over a lowered quota: %v", err)
	}
	checkUsage(t, s, "q")
}

// TestKVUsageRecount: a missing or damaged usage record is recounted from
// the bucket by the next write; the data is untouched.
func TestKVUsageRecount(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(b *bolt.Bucket) error
	}{
		{"missing", func(b *bolt.Bucket) error { return b.Delete([]byte("echo")) }},
		{"short", func(b *bolt.Bucket) error { return b.Put([]byte("echo"), []byte{1, 2, 3}) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openTest(t, nil)
			kvSet(t, s, "echo", "a", "1")
			kvSet(t, s, "echo", "bb", "22")
			path := s.Path()
			s.Close()
			rawUpdate(t, path, func(tx *bolt.Tx) error { return c.damage(tx.Bucket(bucketKVUsage)) })
			s = reopen(t, s, nil)

			if v, ok := kvGet(t, s, "echo", "bb"); !ok || v != "22" {
				t.Errorf("KVGet with a damaged usage record = %q, %v", v, ok)
			}
			kvSet(t, s, "echo", "ccc", "333")
			if u := checkUsage(t, s, "echo"); u != (kvUsage{3, 12}) {
				t.Errorf("usage after the recount = %+v, want {3 12}", u)
			}
		})
	}
}

func TestKVDeleteBucket(t *testing.T) {
	s := openTest(t, &Options{KVMaxKeys: 2})
	kvSet(t, s, "echo", "a", "1")
	kvSet(t, s, "echo", "b", "2")
	if err := s.KVDeleteBucket("echo"); err != nil {
		t.Fatal(err)
	}
	if got := kvKeys(t, s, "echo", "", "", 10); len(got) != 0 {
		t.Errorf("KVKeys after KVDeleteBucket = %q", got)
	}
	if err := s.KVDeleteBucket("echo"); err != nil {
		t.Errorf("KVDeleteBucket of a missing bucket: %v", err)
	}
	if err := s.KVDeleteBucket("never-wrote"); err != nil {
		t.Errorf("KVDeleteBucket of an actor that never wrote: %v", err)
	}
	// The quota starts over with the bucket.
	kvSet(t, s, "echo", "c", "3")
	kvSet(t, s, "echo", "d", "4")
	checkUsage(t, s, "echo")

	// A usage record without a bucket (left by damage) is deleted too.
	path := s.Path()
	s.Close()
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKVUsage).Put([]byte("orphan"), encodeKVUsage(kvUsage{1, 2}))
	})
	s = reopen(t, s, nil)
	if err := s.KVDeleteBucket("orphan"); err != nil {
		t.Fatal(err)
	}
	if stored, _ := storedUsage(t, s, "orphan"); stored != (kvUsage{}) {
		t.Errorf("orphan usage after KVDeleteBucket = %+v", stored)
	}
}

// TestKVNoWriteWhenNothingChanges: deleting a missing key, a failed compare
// and an increment by zero commit no transaction (no fsync).
func TestKVNoWriteWhenNothingChanges(t *testing.T) {
	s := openTest(t, nil)
	kvSet(t, s, "echo", "n", "5")
	txid := func() int {
		var id int
		s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
		return id
	}
	start := txid()
	if _, err := s.KVDelete("echo", []byte("missing")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.KVDelete("never-wrote", []byte("missing")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.KVCompareAndSet("echo", []byte("n"), []byte("4"), []byte("6")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.KVIncrement("echo", []byte("n"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.KVDeleteBucket("never-wrote"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.KVIncrement("echo", []byte("n"), math.MaxInt64); !errors.Is(err, ErrOverflow) {
		t.Fatalf("KVIncrement = %v, want ErrOverflow", err)
	}
	if got := txid(); got != start {
		t.Errorf("%d transactions committed by calls that change nothing", got-start)
	}
	if got := kvKeys(t, s, "never-wrote", "", "", 1); len(got) != 0 {
		t.Errorf("calls that change nothing created keys %q", got)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketKV).Bucket([]byte("never-wrote")) != nil {
			return errors.New("calls that change nothing created a bucket")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

func TestKVFull(t *testing.T) {
	s := openTest(t, &Options{MaxSize: 1 << 20, KVMaxValue: 2 << 20, KVMaxBytes: 4 << 20})
	err := s.KVSet("echo", []byte("big"), make([]byte, 2<<20))
	if !errors.Is(err, ErrFull) || errors.Is(err, ErrQuota) {
		t.Fatalf("KVSet beyond MaxSize = %v, want ErrFull", err)
	}
	if !strings.Contains(err.Error(), `echo key "big"`) {
		t.Errorf("error %q does not name the actor and key", err)
	}
	kvSet(t, s, "echo", "small", "v")
	checkUsage(t, s, "echo")
}

func TestKVClosed(t *testing.T) {
	s := openTest(t, nil)
	kvSet(t, s, "echo", "k", "v")
	s.Close()
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"get", func() error { _, _, err := s.KVGet("echo", []byte("k")); return err }},
		{"set", func() error { return s.KVSet("echo", []byte("k"), nil) }},
		{"delete", func() error { _, err := s.KVDelete("echo", []byte("k")); return err }},
		{"increment", func() error { _, err := s.KVIncrement("echo", []byte("k"), 1); return err }},
		{"cas", func() error { _, err := s.KVCompareAndSet("echo", []byte("k"), nil, nil); return err }},
		{"keys", func() error { _, err := s.KVKeys("echo", nil, nil, 1); return err }},
		{"delete bucket", func() error { return s.KVDeleteBucket("echo") }},
	} {
		if err := c.call(); err == nil {
			t.Errorf("%s on a closed store succeeded", c.name)
		}
	}
}

func counterDecodeCases() []decodeCase {
	return []decodeCase{
		{"zero", []byte("0"), true},
		{"one", []byte("1"), true},
		{"negative", []byte("-42"), true},
		{"max", []byte("9223372036854775807"), true},
		{"min", []byte("-9223372036854775808"), true},
		{"empty", nil, false},
		{"minus", []byte("-"), false},
		{"minus zero", []byte("-0"), false},
		{"plus", []byte("+1"), false},
		{"leading zero", []byte("007"), false},
		{"space", []byte("1 "), false},
		{"underscore", []byte("1_000"), false},
		{"hex", []byte("0x10"), false},
		{"beyond max", []byte("9223372036854775808"), false},
		{"beyond min", []byte("-9223372036854775809"), false},
		{"long", []byte("123456789012345678901"), false},
		{"8-byte big-endian", encodeUint64(1), false},
		{"text", []byte("abc"), false},
		{"NUL", []byte("1\x00"), false},
	}
}

func TestDecodeCounter(t *testing.T) {
	for _, c := range counterDecodeCases() {
		t.Run(c.name, func(t *testing.T) {
			n, err := decodeCounter(c.in)
			switch {
			case c.valid && err != nil:
				t.Errorf("decodeCounter = %v, want success", err)
			case c.valid && !bytes.Equal(encodeCounter(n), c.in):
				t.Errorf("decodeCounter = %d, which encodes to %q, not %q", n, encodeCounter(n), c.in)
			case !c.valid && (!errors.Is(err, ErrNotInteger) || errors.Is(err, ErrCorrupt)):
				t.Errorf("decodeCounter = %d, %v; want ErrNotInteger only", n, err)
			}
		})
	}
	for _, n := range []int64{0, 1, -1, 10, math.MaxInt64, math.MinInt64} {
		if got, err := decodeCounter(encodeCounter(n)); err != nil || got != n {
			t.Errorf("decodeCounter(encodeCounter(%d)) = %d, %v", n, got, err)
		}
	}
}

// FuzzDecodeCounter: a stored value decodes to the counter that encodes to
// exactly those bytes, or fails with ErrNotInteger; and every counter
// encodes to a value that decodes to it.
func FuzzDecodeCounter(f *testing.F) {
	for i, c := range counterDecodeCases() {
		f.Add(c.in, int64(i)*1e17-1)
	}
	f.Fuzz(func(t *testing.T, in []byte, n int64) {
		v, err := decodeCounter(in)
		if err != nil {
			if !errors.Is(err, ErrNotInteger) {
				t.Fatalf("decodeCounter error %v does not wrap ErrNotInteger", err)
			}
		} else if !bytes.Equal(encodeCounter(v), in) {
			t.Fatalf("decodeCounter(%q) = %d, which encodes to %q", in, v, encodeCounter(v))
		}
		if got, err := decodeCounter(encodeCounter(n)); err != nil || got != n {
			t.Fatalf("decodeCounter(encodeCounter(%d)) = %d, %v", n, got, err)
		}
	})
}

func kvUsageDecodeCases() []decodeCase {
	return []decodeCase{
		{"zero", encodeKVUsage(kvUsage{}), true},
		{"some", encodeKVUsage(kvUsage{3, 1 << 20}), true},
		{"max", encodeKVUsage(kvUsage{math.MaxUint64, math.MaxUint64}), true},
		{"empty", nil, false},
		{"one counter", encodeUint64(1), false},
		{"long", make([]byte, 17), false},
	}
}

func TestDecodeKVUsage(t *testing.T) {
	for _, c := range kvUsageDecodeCases() {
		t.Run(c.name, func(t *testing.T) {
			u, err := decodeKVUsage(c.in)
			switch {
			case c.valid && err != nil:
				t.Errorf("decodeKVUsage = %v, want success", err)
			case c.valid && !bytes.Equal(encodeKVUsage(u), c.in):
				t.Errorf("decodeKVUsage = %+v, which encodes to %x, not %x", u, encodeKVUsage(u), c.in)
			case !c.valid && !errors.Is(err, ErrCorrupt):
				t.Errorf("decodeKVUsage = %+v, %v; want ErrCorrupt", u, err)
			}
		})
	}
}

func FuzzDecodeKVUsage(f *testing.F) {
	for _, c := range kvUsageDecodeCases() {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		u, err := decodeKVUsage(in)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeKVUsage error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(encodeKVUsage(u), in) {
			t.Fatalf("decodeKVUsage(%x) = %+v, which encodes differently", in, u)
		}
	})
}

// TestKVErrorsAreShort: an error quotes at most the start of an actor's key
// or value, however long it is.
func TestKVErrorsAreShort(t *testing.T) {
	s := openTest(t, nil)
	big := bytes.Repeat([]byte("z"), DefaultKVMaxValue)
	if err := s.KVSet("echo", []byte("big"), big); err != nil {
		t.Fatal(err)
	}
	_, incErr := s.KVIncrement("echo", []byte("big"), 1)
	_, _, getErr := s.KVGet("echo", big)
	_, keysErr := s.KVKeys("echo", big, nil, 1)
	for _, err := range []error{incErr, getErr, keysErr} {
		if err == nil || len(err.Error()) > 300 || !strings.Contains(err.Error(), `zzz"...`) {
			t.Errorf("error of %d bytes, want a short one that marks the cut: %.400v", len(fmt.Sprint(err)), err)
		}
	}
}
