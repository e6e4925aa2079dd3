// Package store owns the agent's on-device state: one bbolt file under the data
// dir holding the schema version, the host's identity (nkey seed) and labels,
// artifacts by sha256, the actors last applied (so a device can restore its
// actors at boot with no uplink) and each actor's key-value bucket.
//
// It is a leaf package: agent and deploy import it, and it imports nothing
// from Trellis. Every write is one fsynced bbolt transaction; high-rate data
// (telemetry) does not belong here.
package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the name of the bbolt file inside the data dir.
const FileName = "trellis.db"

// SchemaVersion is the newest schema this binary reads and writes. A file with
// an older version is migrated on Open; a newer one is refused.
const SchemaVersion = 4

// DefaultTimeout is how long Open waits for the file lock when Options.Timeout
// is zero.
const DefaultTimeout = time.Second

// DefaultMaxSize is the file size cap in bytes when Options.MaxSize is zero.
// It keeps the file far below bbolt's 2 GB ceiling on 32-bit ARM.
const DefaultMaxSize = 256 << 20

// Sentinel errors, for errors.Is. The store wraps them with the operation and
// the subject (path, actor name, digest).
var (
	// ErrNotFound means the artifact or actor does not exist.
	ErrNotFound = errors.New("not found")
	// ErrCorrupt means stored bytes do not decode or do not match their
	// digest, or the file is not a trellis bbolt database.
	ErrCorrupt = errors.New("data is corrupt")
	// ErrLocked means another process (or another Open in this one) holds the
	// file lock and Options.Timeout expired.
	ErrLocked = errors.New("database file is locked")
	// ErrSchemaTooNew means the file was written by a newer trellis; it is
	// left untouched.
	ErrSchemaTooNew = errors.New("schema version is newer than this binary supports")
	// ErrInvalid means an argument was rejected before touching the file.
	ErrInvalid = errors.New("invalid argument")
	// ErrInUse means an artifact cannot be deleted because an actor refers to it.
	ErrInUse = errors.New("artifact in use")
	// ErrFull means a write would grow the file past Options.MaxSize.
	ErrFull = errors.New("database reached its maximum size")
	// ErrQuota means a write would take an actor's key-value bucket past its
	// quota (Options.KVMaxKeys, Options.KVMaxBytes). Other actors, and the
	// rest of the store, are unaffected.
	ErrQuota = errors.New("key-value quota exceeded")
	// ErrNotInteger means KVIncrement found a value that is not a counter
	// (a decimal 64-bit integer); the value is left as it was.
	ErrNotInteger = errors.New("value is not a decimal 64-bit integer")
	// ErrOverflow means KVIncrement would take a counter beyond the range of
	// an int64; the counter is left as it was.
	ErrOverflow = errors.New("counter would overflow")
)

// Options configures Open. A nil *Options and zero fields mean the defaults.
type Options struct {
	// Timeout bounds the wait for the file lock. Zero means DefaultTimeout.
	Timeout time.Duration
	// MaxSize caps the file size in bytes; a write that would grow the file
	// past it fails with ErrFull (a larger existing file still opens and
	// reads). Zero means DefaultMaxSize.
	MaxSize int
	// Now is the clock that stamps Actor.UpdatedAt. Nil means time.Now.
	Now func() time.Time

	// KVMaxValue caps one value in an actor's key-value bucket, in bytes.
	// Zero means DefaultKVMaxValue.
	KVMaxValue int
	// KVMaxKeys is the quota of keys in one actor's key-value bucket. Zero
	// means DefaultKVMaxKeys.
	KVMaxKeys int
	// KVMaxBytes is the quota of bytes (keys plus values) in one actor's
	// key-value bucket. Zero means DefaultKVMaxBytes.
	KVMaxBytes int
}

// Store is the open state file. Its methods are safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	now  func() time.Time
	kv   kvLimits
}

// Bucket and key names. Never rename one: a migration step adds buckets.
var (
	// Schema version 1.
	bucketMeta           = []byte("meta")
	bucketArtifacts      = []byte("artifacts")
	bucketActors         = []byte("actors")
	bucketActorRevisions = []byte("actor-revisions")
	keySchemaVersion     = []byte("schema-version")
	// Schema version 2.
	bucketHost       = []byte("host")        // keyHostSeed → the host's nkey seed
	bucketHostLabels = []byte("host-labels") // label key → label value
	keyHostSeed      = []byte("nkey-seed")
	// Schema version 3.
	bucketKV      = []byte("kv")       // actor name → bucket of the actor's keys and values
	bucketKVUsage = []byte("kv-usage") // actor name → encodeKVUsage of its bucket
	// Schema version 4.
	bucketCapState = []byte("cap-state") // kind → bucket of actor "\x00" id → value
)

// migrations[v] upgrades a file from schema version v to v+1; version 0 is a
// new, empty file. Append a step here when SchemaVersion goes up; the array
// length makes a step beyond SchemaVersion a compile error, and a test
// checks that no step is missing.
var migrations = [SchemaVersion]func(tx *bolt.Tx) error{
	0: func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketArtifacts, bucketActors, bucketActorRevisions} {
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	},
	1: func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketHost, bucketHostLabels} {
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	},
	2: func(tx *bolt.Tx) error {
		// The actors' own buckets inside kv are created by their first write.
		for _, name := range [][]byte{bucketKV, bucketKVUsage} {
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	},
	3: func(tx *bolt.Tx) error {
		// The kinds' buckets inside cap-state are created by their first write.
		if _, err := tx.CreateBucket(bucketCapState); err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketCapState, err)
		}
		return nil
	},
}

// Open opens or creates FileName under dir, creating dir with mode 0700 if it
// is missing and the file with mode 0600. A new file gets SchemaVersion; an
// older one is migrated in one transaction. Open fails with ErrLocked when the
// lock is not acquired within the timeout, ErrSchemaTooNew when the file is
// newer than this binary, and ErrCorrupt when the file is not a trellis
// database; it never replaces an existing file's contents. An empty (zero
// length) file is treated as new.
func Open(dir string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	switch {
	case dir == "":
		return nil, fmt.Errorf("store: open: %w: empty data dir", ErrInvalid)
	case o.Timeout < 0:
		return nil, fmt.Errorf("store: open: %w: Timeout %v is negative", ErrInvalid, o.Timeout)
	case o.MaxSize < 0:
		return nil, fmt.Errorf("store: open: %w: MaxSize %d is negative", ErrInvalid, o.MaxSize)
	case o.KVMaxValue < 0 || o.KVMaxValue > bolt.MaxValueSize:
		return nil, fmt.Errorf("store: open: %w: KVMaxValue %d, want 0 to %d", ErrInvalid, o.KVMaxValue, bolt.MaxValueSize)
	case o.KVMaxKeys < 0:
		return nil, fmt.Errorf("store: open: %w: KVMaxKeys %d is negative", ErrInvalid, o.KVMaxKeys)
	case o.KVMaxBytes < 0:
		return nil, fmt.Errorf("store: open: %w: KVMaxBytes %d is negative", ErrInvalid, o.KVMaxBytes)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxSize == 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	kv := kvLimits{maxValue: o.KVMaxValue, maxKeys: o.KVMaxKeys, maxBytes: o.KVMaxBytes}
	if kv.maxValue == 0 {
		kv.maxValue = DefaultKVMaxValue
	}
	if kv.maxKeys == 0 {
		kv.maxKeys = DefaultKVMaxKeys
	}
	if kv.maxBytes == 0 {
		kv.maxBytes = DefaultKVMaxBytes
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := openBolt(path, o)
	if err != nil {
		return nil, err
	}
	return &Store{db: db, path: path, now: o.Now, kv: kv}, nil
}

// openBolt opens the file and prepares its schema. bbolt can panic on a
// file whose header pages are valid but whose other pages are damaged; that
// is reported as ErrCorrupt, never a crash.
func openBolt(path string, o Options) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			}
			db, err = nil, fmt.Errorf("store: open %s: %w: bbolt: %v", path, ErrCorrupt, r)
		}
	}()
	// NoSync and NoGrowSync stay false: every commit is fsynced.
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: o.Timeout, MaxSize: o.MaxSize})
	if err != nil {
		return nil, openError(path, err)
	}
	if err := prepareSchema(db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, wrapFull(err))
	}
	return db, nil
}

// openError turns a bbolt.Open failure into a store error that names the path.
// Operating-system failures (permissions, I/O) pass through; anything else
// comes from reading the file's contents and means it is not a bbolt database.
func openError(path string, err error) error {
	var pathErr *fs.PathError
	var errno syscall.Errno
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("store: open %s: %w (is another trellis running with this data dir?)", path, ErrLocked)
	case errors.As(err, &pathErr), errors.As(err, &errno):
		return fmt.Errorf("store: open %s: %w", path, err)
	default:
		return fmt.Errorf("store: open %s: not a bbolt database: %w: %w", path, ErrCorrupt, err)
	}
}

// prepareSchema checks the file's schema version and migrates an older file.
// It writes nothing unless a migration is needed.
func prepareSchema(db *bolt.DB) error {
	var version uint64
	err := db.View(func(tx *bolt.Tx) error {
		var err error
		version, err = schemaVersion(tx)
		return err
	})
	if err != nil {
		return err
	}
	switch {
	case version > SchemaVersion:
		return fmt.Errorf("%w: file has schema version %d, this binary supports up to %d (upgrade trellis)",
			ErrSchemaTooNew, version, SchemaVersion)
	case version == SchemaVersion:
		return nil
	}
	return db.Update(func(tx *bolt.Tx) error {
		for v := version; v < SchemaVersion; v++ {
			if err := migrations[v](tx); err != nil {
				return fmt.Errorf("migrate schema version %d to %d: %w", v, v+1, err)
			}
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		return meta.Put(keySchemaVersion, encodeUint64(SchemaVersion))
	})
}

// schemaVersion reads the recorded schema version; 0 means a new, empty file.
func schemaVersion(tx *bolt.Tx) (uint64, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if first, _ := tx.Cursor().First(); first != nil {
			return 0, fmt.Errorf("%w: bbolt file without a trellis schema version (bucket %q)", ErrCorrupt, first)
		}
		return 0, nil
	}
	raw := meta.Get(keySchemaVersion)
	if raw == nil {
		return 0, fmt.Errorf("%w: meta bucket has no schema version", ErrCorrupt)
	}
	v, err := decodeUint64(raw)
	if err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// Path returns the path of the bbolt file.
func (s *Store) Path() string { return s.path }

// Close releases the file and its lock. It waits for running transactions.
// Calling it again is a no-op.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// update runs fn in one fsynced write transaction and wraps its error as
// "store: op: ...".
func (s *Store) update(op string, fn func(tx *bolt.Tx) error) error {
	if err := s.db.Update(fn); err != nil {
		return fmt.Errorf("store: %s: %w", op, wrapFull(err))
	}
	return nil
}

// view runs fn in a read transaction and wraps its error as "store: op: ...".
func (s *Store) view(op string, fn func(tx *bolt.Tx) error) error {
	if err := s.db.View(fn); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return nil
}

// wrapFull adds ErrFull to bbolt's max-size error so that callers need not
// import bbolt to recognise it.
func wrapFull(err error) error {
	if errors.Is(err, bolterrors.ErrMaxSizeReached) {
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	return err
}

// quote formats a caller-supplied value for an error message, truncated so
// that a huge argument cannot flood a log.
func quote(s string) string {
	const limit = 80
	if len(s) > limit {
		return fmt.Sprintf("%q...", s[:limit])
	}
	return fmt.Sprintf("%q", s)
}
