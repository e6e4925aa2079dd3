// Package store owns the agent's on-device state: one bbolt file under the data
// dir holding the schema version, the host's identity (nkey seed) and labels,
// artifacts by sha256, the actors last applied (so a device can restore its
// actors at boot with no uplink) and each actor's key-value bucket.
//
// It is a leaf package: agent and deploy import it, and it imports nothing
// from Trellis. Every write is one fsynced bbolt transaction; high-rate data
// (telemetry) does not belong here. Open verifies every page of the file
// before bbolt reads it (Check does the same for an operator), and a damaged
// file is never replaced by an empty store: SnapshotLastGood keeps a last
// good copy at each start, and Recover puts it back.
package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
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

	snapshotMu sync.Mutex // one SnapshotLastGood at a time: they share a temp file
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
// is missing and the file with mode 0600 (and fsyncing dir after creating
// it). An existing file is verified first, every page of it, as Check does.
// A new file gets SchemaVersion; an older one is migrated in one
// transaction.
//
// Open fails with ErrLocked when the lock is not acquired within the
// timeout, ErrSchemaTooNew when the file is newer than this binary, and
// ErrCorrupt when the file is damaged or not a trellis database; the
// ErrCorrupt error names the file and the way back (the last good copy,
// its age and `trellis store recover`, when there is one). Open never
// replaces an existing file's contents and never starts an empty store in a
// dir that has a last good copy. An empty (zero length) file, or one whose
// creation was interrupted before any transaction, is treated as new.
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
	fresh, err := verifyExisting(path, o.Timeout)
	if err != nil {
		return nil, err
	}
	db, err := openBolt(path, o)
	if err != nil {
		return nil, err
	}
	if fresh {
		// A new file's directory entry must survive a power cut like the
		// data in it: otherwise the device could come back without its store
		// (and so with a new identity). The data dir's own entry too, in
		// case MkdirAll just made it; its parent may not be ours to open.
		if err := syncDir(dir); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("store: open %s: sync data dir: %w", path, err)
		}
		_ = syncDir(filepath.Dir(dir))
	}
	return &Store{db: db, path: path, now: o.Now, kv: kv}, nil
}

// verifyExisting checks the file at path before bbolt opens it for writing,
// and reports whether Open is about to create a new store. A missing or
// empty file is new, and so is a file that bbolt began to create but never
// committed a transaction to (an interrupted first start: it holds nothing):
// it is truncated and created again. Anything else must verify (see Check)
// or Open fails with ErrCorrupt and the recovery path. A new store is
// refused in a data dir that has a last good copy: the store was lost, and
// starting empty would hide it.
func verifyExisting(path string, timeout time.Duration) (fresh bool, err error) {
	state := "missing"
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, fmt.Errorf("store: open %s: %w", path, err)
	case fi.Size() == 0:
		state = "empty"
	default:
		_, err := inspect(path, timeout)
		if err == nil {
			return false, nil
		}
		if !errors.Is(err, ErrCorrupt) || !neverCommitted(path) {
			return false, openFailure(path, err)
		}
		state = "an interrupted creation, with no transaction"
	}
	lg := lastGoodPath(path)
	if _, err := os.Stat(lg); err == nil {
		return false, fmt.Errorf("store: open %s: %w: the store file is %s, but the data dir has a last good copy, so a store existed here: "+
			"no empty store was created in its place. %s", path, ErrCorrupt, state, recoveryHint(path, time.Now()))
	}
	if state == "empty" || state == "missing" {
		return true, nil
	}
	if err := os.Truncate(path, 0); err != nil {
		return false, fmt.Errorf("store: open %s: %w", path, err)
	}
	return true, nil
}

// neverCommitted reports whether the bbolt file at path holds no committed
// transaction: bbolt writes transactions 0 and 1 when it creates a file, and
// every write after that is transaction 2 or later.
func neverCommitted(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	m, err := readMeta(f, fi.Size())
	return err == nil && m.txid <= 1
}

// openFailure names the path in an error from opening or verifying it and,
// for a damaged file, adds the recovery path.
func openFailure(path string, err error) error {
	if errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("store: open %s: %w; the store was not replaced (the file is left as it is, nothing deleted). %s",
			path, err, recoveryHint(path, time.Now()))
	}
	return fmt.Errorf("store: open %s: %w", path, err)
}

// openBolt opens the file for writing and prepares its schema. The file has
// been verified, but bbolt can still panic or fault on damage that appeared
// since (or that the walk missed): that is reported as ErrCorrupt, never a
// crash, and the file handle, with its lock, is closed.
func openBolt(path string, o Options) (db *bolt.DB, err error) {
	var file *os.File
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			} else if file != nil {
				_ = file.Close()
			}
			db, err = nil, openFailure(path, fmt.Errorf("%w: bbolt: %v", ErrCorrupt, r))
		}
	}()
	// NoSync, NoGrowSync and NoFreelistSync stay false: every commit writes
	// and fsyncs its pages and free list, then its meta page, and growing
	// the file is fsynced too.
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout: o.Timeout,
		MaxSize: o.MaxSize,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			if name == path && file == nil {
				file = f
			}
			return f, err
		},
	})
	if err != nil {
		return nil, openFailure(path, boltOpenError(err))
	}
	if err := prepareSchema(db); err != nil {
		_ = db.Close()
		return nil, openFailure(path, wrapFull(err))
	}
	return db, nil
}

// syncDir fsyncs a directory, so that entries created or renamed in it
// survive a power cut.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
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
