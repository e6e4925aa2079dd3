package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Per-actor key-value buckets: the storage behind the trellis:kv contract
// (and wasmcloud:keyvalue). Bucket kv holds one nested bucket per actor name,
// created by the actor's first write; bucket kv-usage holds each actor's
// usage (keys and bytes) under its name, updated in the transaction of every
// write, so that a quota check reads 16 bytes instead of scanning the bucket.
//
// Every method takes the actor's name and looks keys up inside that actor's
// own bucket, never in a keyspace shared by prefix, so no key, prefix or
// cursor of one actor reaches another's data, even when one name is a prefix
// of another.

const (
	// MaxKVKeyLen bounds a key, in bytes; a key has at least one byte.
	MaxKVKeyLen = 1024
	// MaxKVPage bounds the limit of one KVKeys call, so that a listing
	// never holds more than this many keys in memory.
	MaxKVPage = 1000
	// DefaultKVMaxValue is the size cap of one value when
	// Options.KVMaxValue is zero.
	DefaultKVMaxValue = 1 << 20
	// DefaultKVMaxKeys is the per-actor key quota when Options.KVMaxKeys is
	// zero.
	DefaultKVMaxKeys = 1 << 16
	// DefaultKVMaxBytes is the per-actor byte quota when Options.KVMaxBytes
	// is zero: a sixteenth of DefaultMaxSize, so that one runaway actor
	// cannot fill the file that every deployment depends on.
	DefaultKVMaxBytes = 16 << 20
)

// kvLimits are the value cap and the per-actor quota, after defaults.
type kvLimits struct {
	maxValue, maxKeys, maxBytes int
}

// errNoChange makes a write transaction roll back: nothing is written, so
// nothing is fsynced. The write method then reports success.
var errNoChange = errors.New("no change")

// KVGet returns a copy of the value stored under key in actor's bucket and
// whether it exists; a missing key (or an actor that never wrote) is not an
// error. A counter written by KVIncrement reads as its decimal digits.
func (s *Store) KVGet(actor string, key []byte) (value []byte, ok bool, err error) {
	const op = "get"
	if err := validateActorName(actor); err != nil {
		return nil, false, fmt.Errorf("store: kv %s: %w", op, err)
	}
	if err := checkKVKey(key); err != nil {
		return nil, false, kvError(op, actor, key, err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketKV).Bucket([]byte(actor)); b != nil {
			// bbolt's bytes are valid only inside the transaction. An empty
			// stored value clones to an empty, non-nil slice.
			value = bytes.Clone(b.Get(key))
		}
		return nil
	})
	if err != nil {
		return nil, false, kvError(op, actor, key, err)
	}
	return value, value != nil, nil
}

// KVSet stores value under key in actor's bucket, replacing any earlier
// value, in one fsynced transaction. A nil value stores an empty one.
//
// The actor's name must match ^[a-z0-9][a-z0-9_-]{0,62}$, the key must have
// 1 to MaxKVKeyLen bytes and the value at most Options.KVMaxValue bytes (else
// ErrInvalid). A write that adds a key past Options.KVMaxKeys, or grows the
// bucket past Options.KVMaxBytes, fails with ErrQuota; one that does neither
// always succeeds, even in a bucket already over a lowered quota. A file that
// would grow past Options.MaxSize fails with ErrFull.
func (s *Store) KVSet(actor string, key, value []byte) error {
	const op = "set"
	if err := validateActorName(actor); err != nil {
		return fmt.Errorf("store: kv %s: %w", op, err)
	}
	if err := s.checkKVWrite(key, value); err != nil {
		return kvError(op, actor, key, err)
	}
	if value == nil {
		// bbolt reads a nil value back as a missing key.
		value = []byte{}
	}
	return s.kvUpdate(op, actor, key, func(b *bolt.Bucket, u *kvUsage) error {
		u.put(key, b.Get(key), value)
		return b.Put(key, value)
	})
}

// KVDelete removes key from actor's bucket and reports whether it was there.
// Deleting a missing key writes nothing and is not an error.
func (s *Store) KVDelete(actor string, key []byte) (existed bool, err error) {
	const op = "delete"
	if err := validateActorName(actor); err != nil {
		return false, fmt.Errorf("store: kv %s: %w", op, err)
	}
	if err := checkKVKey(key); err != nil {
		return false, kvError(op, actor, key, err)
	}
	err = s.kvUpdate(op, actor, key, func(b *bolt.Bucket, u *kvUsage) error {
		old := b.Get(key)
		if old == nil {
			return errNoChange
		}
		existed = true
		u.remove(key, old)
		return b.Delete(key)
	})
	if err != nil {
		return false, err
	}
	return existed, nil
}

// KVIncrement adds delta to the counter stored under key in actor's bucket
// and returns the new value, in one fsynced transaction; concurrent
// increments never lose an update.
//
// A counter is stored as its decimal digits with an optional leading '-'
// and no leading zeros ("0", "42", "-7"): the form Redis and wasmCloud's
// keyvalue providers use, so that KVGet (whose wasmcloud:keyvalue reply
// is a string) reads it as a number and KVSet of "41" starts a counter at 41.
// A missing key counts as 0. A stored value of any other form fails with
// ErrNotInteger, and a result outside the range of an int64 with ErrOverflow;
// either way the value is left as it was. Quotas apply as for KVSet.
func (s *Store) KVIncrement(actor string, key []byte, delta int64) (int64, error) {
	const op = "increment"
	if err := validateActorName(actor); err != nil {
		return 0, fmt.Errorf("store: kv %s: %w", op, err)
	}
	if err := checkKVKey(key); err != nil {
		return 0, kvError(op, actor, key, err)
	}
	var n int64
	err := s.kvUpdate(op, actor, key, func(b *bolt.Bucket, u *kvUsage) error {
		old := b.Get(key)
		if old != nil {
			var err error
			if n, err = decodeCounter(old); err != nil {
				return err
			}
			if delta == 0 {
				return errNoChange
			}
		}
		if delta > 0 && n > math.MaxInt64-delta || delta < 0 && n < math.MinInt64-delta {
			return fmt.Errorf("%w: %d%+d", ErrOverflow, n, delta)
		}
		n += delta
		value := encodeCounter(n)
		if len(value) > s.kv.maxValue {
			return fmt.Errorf("%w: counter %s is longer than KVMaxValue %d", ErrInvalid, value, s.kv.maxValue)
		}
		u.put(key, old, value)
		return b.Put(key, value)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// KVCompareAndSet stores new under key in actor's bucket only if the key
// currently holds old, and reports whether it did, in one fsynced
// transaction. A nil old means the key must not exist; an empty, non-nil old
// matches only an existing empty value. A nil new stores an empty value (it
// does not delete). A failed comparison writes nothing and is not an error.
// Keys, values and quotas are checked as for KVSet.
func (s *Store) KVCompareAndSet(actor string, key, old, new []byte) (swapped bool, err error) {
	const op = "compare and set"
	if err := validateActorName(actor); err != nil {
		return false, fmt.Errorf("store: kv %s: %w", op, err)
	}
	if err := s.checkKVWrite(key, new); err != nil {
		return false, kvError(op, actor, key, err)
	}
	if new == nil {
		new = []byte{}
	}
	err = s.kvUpdate(op, actor, key, func(b *bolt.Bucket, u *kvUsage) error {
		cur := b.Get(key)
		// bytes.Equal treats nil and empty alike; existence is checked apart.
		if (old == nil) != (cur == nil) || !bytes.Equal(cur, old) {
			return errNoChange
		}
		swapped = true
		u.put(key, cur, new)
		return b.Put(key, new)
	})
	if err != nil {
		return false, err
	}
	return swapped, nil
}

// KVKeys returns copies of the keys in actor's bucket that start with prefix
// and sort after after, in byte order, at most limit of them. To page through
// a bucket, pass the last key of one page as after for the next; a page
// shorter than limit is the last. A nil or empty after starts at the first
// key. prefix and after have at most MaxKVKeyLen bytes and limit is 1 to
// MaxKVPage (else ErrInvalid). An actor that never wrote has no keys.
func (s *Store) KVKeys(actor string, prefix, after []byte, limit int) ([][]byte, error) {
	const op = "keys"
	if err := validateActorName(actor); err != nil {
		return nil, fmt.Errorf("store: kv %s: %w", op, err)
	}
	switch {
	case len(prefix) > MaxKVKeyLen:
		return nil, fmt.Errorf("store: kv %s %s: %w: prefix %s has %d bytes, want at most %d",
			op, actor, ErrInvalid, quoteBytes(prefix), len(prefix), MaxKVKeyLen)
	case len(after) > MaxKVKeyLen:
		return nil, fmt.Errorf("store: kv %s %s: %w: after %s has %d bytes, want at most %d",
			op, actor, ErrInvalid, quoteBytes(after), len(after), MaxKVKeyLen)
	case limit < 1 || limit > MaxKVPage:
		return nil, fmt.Errorf("store: kv %s %s: %w: limit %d, want 1 to %d", op, actor, ErrInvalid, limit, MaxKVPage)
	}
	var keys [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV).Bucket([]byte(actor))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		var k, v []byte
		if bytes.Compare(after, prefix) >= 0 {
			// after has the prefix or sorts past every key that has it.
			if k, v = c.Seek(after); bytes.Equal(k, after) {
				k, v = c.Next()
			}
		} else {
			k, v = c.Seek(prefix)
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(keys) < limit; k, v = c.Next() {
			if v == nil {
				continue // a nested bucket, which this schema never creates
			}
			keys = append(keys, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: kv %s %s: %w", op, actor, err)
	}
	return keys, nil
}

// KVDeleteBucket removes actor's whole bucket and its usage, in one fsynced
// transaction: for an actor removed for good, not for one being updated or
// stopped (DeleteActor keeps the bucket). Deleting a missing bucket writes
// nothing and is not an error.
func (s *Store) KVDeleteBucket(actor string) error {
	const op = "delete bucket"
	if err := validateActorName(actor); err != nil {
		return fmt.Errorf("store: kv %s: %w", op, err)
	}
	name := []byte(actor)
	err := s.db.Update(func(tx *bolt.Tx) error {
		usage := tx.Bucket(bucketKVUsage)
		err := tx.Bucket(bucketKV).DeleteBucket(name)
		switch {
		case errors.Is(err, bolterrors.ErrBucketNotFound):
			if usage.Get(name) == nil {
				return errNoChange
			}
		case err != nil:
			return err
		}
		return usage.Delete(name)
	})
	if err != nil && !errors.Is(err, errNoChange) {
		return fmt.Errorf("store: kv %s %s: %w", op, actor, wrapFull(err))
	}
	return nil
}

// kvUpdate runs fn on actor's bucket (created if missing) in one fsynced
// write transaction, with the bucket's usage for fn to update as it writes;
// then it checks the new usage against the quota and stores it. If fn
// returns errNoChange the transaction rolls back and kvUpdate returns nil.
func (s *Store) kvUpdate(op, actor string, key []byte, fn func(b *bolt.Bucket, u *kvUsage) error) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		name := []byte(actor)
		b, err := tx.Bucket(bucketKV).CreateBucketIfNotExists(name)
		if err != nil {
			return err
		}
		usage := tx.Bucket(bucketKVUsage)
		before := readKVUsage(usage.Get(name), b)
		after := before
		if err := fn(b, &after); err != nil {
			return err
		}
		if err := s.kv.checkQuota(before, after); err != nil {
			return err
		}
		return usage.Put(name, encodeKVUsage(after))
	})
	switch {
	case errors.Is(err, errNoChange):
		return nil
	case err != nil:
		return kvError(op, actor, key, err)
	}
	return nil
}

// checkKVKey checks a key's length.
func checkKVKey(key []byte) error {
	if len(key) == 0 || len(key) > MaxKVKeyLen {
		return fmt.Errorf("%w: key has %d bytes, want 1 to %d", ErrInvalid, len(key), MaxKVKeyLen)
	}
	return nil
}

// checkKVWrite checks the key and the value of a write.
func (s *Store) checkKVWrite(key, value []byte) error {
	if err := checkKVKey(key); err != nil {
		return err
	}
	if len(value) > s.kv.maxValue {
		return fmt.Errorf("%w: value has %d bytes, want at most %d", ErrInvalid, len(value), s.kv.maxValue)
	}
	return nil
}

// kvError wraps err as "store: kv op actor key "k": err".
func kvError(op, actor string, key []byte, err error) error {
	return fmt.Errorf("store: kv %s %s key %s: %w", op, actor, quoteBytes(key), wrapFull(err))
}

// quoteBytes quotes an actor's key or value (possibly binary, possibly
// megabytes long) as quote does, without first copying all of it.
func quoteBytes(b []byte) string {
	const limit = 81 // one more than quote keeps, so that it marks the cut
	return quote(string(b[:min(len(b), limit)]))
}

// checkQuota reports ErrQuota when a write took the key count or the byte
// count up and past the quota. A write that does not increase a count always
// passes, so that a bucket over a lowered quota can still shrink.
func (l kvLimits) checkQuota(before, after kvUsage) error {
	if after.keys > before.keys && after.keys > uint64(l.maxKeys) {
		return fmt.Errorf("%w: %d keys, the quota is %d", ErrQuota, after.keys, l.maxKeys)
	}
	if after.bytes > before.bytes && after.bytes > uint64(l.maxBytes) {
		return fmt.Errorf("%w: %d bytes of keys and values, the quota is %d", ErrQuota, after.bytes, l.maxBytes)
	}
	return nil
}

// kvUsage is what one actor's bucket holds: its keys, and the bytes of its
// keys plus its values (bbolt's own overhead is not counted).
type kvUsage struct {
	keys, bytes uint64
}

// put accounts for storing value under key over old (nil: a new key).
func (u *kvUsage) put(key, old, value []byte) {
	if old == nil {
		u.keys++
		u.bytes += uint64(len(key))
	}
	u.bytes = subFloor(u.bytes, uint64(len(old))) + uint64(len(value))
}

// remove accounts for deleting key, which held old.
func (u *kvUsage) remove(key, old []byte) {
	u.keys = subFloor(u.keys, 1)
	u.bytes = subFloor(u.bytes, uint64(len(key)+len(old)))
}

// subFloor returns a-b, or 0 if b > a: a usage record that undercounts (it
// is only as good as the file) must not wrap around to a huge number.
func subFloor(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

// readKVUsage returns the usage stored for bucket b. A missing or damaged
// record is recounted from the bucket (one scan), so that a damaged record
// costs time, never data; the caller stores the result with its write.
func readKVUsage(raw []byte, b *bolt.Bucket) kvUsage {
	if raw != nil {
		if u, err := decodeKVUsage(raw); err == nil {
			return u
		}
	}
	return countKVUsage(b)
}

// countKVUsage counts a bucket's keys and bytes.
func countKVUsage(b *bolt.Bucket) kvUsage {
	var u kvUsage
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil {
			u.keys++
			u.bytes += uint64(len(k) + len(v))
		}
	}
	return u
}

// encodeKVUsage is the stored form of a usage: keys then bytes, each 8 bytes
// big-endian, the same on every architecture.
func encodeKVUsage(u kvUsage) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(make([]byte, 0, 16), u.keys), u.bytes)
}

// decodeKVUsage parses what encodeKVUsage wrote; any other length wraps
// ErrCorrupt.
func decodeKVUsage(b []byte) (kvUsage, error) {
	if len(b) != 16 {
		return kvUsage{}, fmt.Errorf("%w: key-value usage has %d bytes, want 16", ErrCorrupt, len(b))
	}
	return kvUsage{keys: binary.BigEndian.Uint64(b), bytes: binary.BigEndian.Uint64(b[8:])}, nil
}

// maxCounterLen is the length of the longest counter, "-9223372036854775808".
const maxCounterLen = 20

// encodeCounter is the stored form of a counter: its decimal digits.
func encodeCounter(n int64) []byte { return strconv.AppendInt(nil, n, 10) }

// decodeCounter parses exactly what encodeCounter writes: no '+', no leading
// zeros, no "-0", no spaces, nothing outside the range of an int64. Anything
// else wraps ErrNotInteger (the value is the actor's, not damage). It never
// panics, and the result round-trips: encodeCounter(n) equals b.
func decodeCounter(b []byte) (int64, error) {
	if len(b) > 0 && len(b) <= maxCounterLen {
		n, err := strconv.ParseInt(string(b), 10, 64)
		var canonical [maxCounterLen]byte
		if err == nil && bytes.Equal(strconv.AppendInt(canonical[:0], n, 10), b) {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%w: value %s (%d bytes)", ErrNotInteger, quoteBytes(b), len(b))
}
