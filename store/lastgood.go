package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// LastGoodFileName is the name of the last good copy of the store, next to
// FileName in the data dir. See (*Store).SnapshotLastGood.
const LastGoodFileName = FileName + ".last-good"

// LastGood describes the last good copy of a store.
type LastGood struct {
	// Path is the copy's file.
	Path string
	// Time is when the copy was last known to equal the store: when it was
	// written, or when a later SnapshotLastGood found the store unchanged.
	// Restoring the copy loses whatever was written after it.
	Time time.Time
	// TxID is the store's transaction the copy holds.
	TxID uint64
	// Size is the copy's size in bytes.
	Size int64
}

// lastGoodPath returns the path of the last good copy of the store file at
// storePath.
func lastGoodPath(storePath string) string {
	return filepath.Join(filepath.Dir(storePath), LastGoodFileName)
}

// readLastGood describes the copy at path from its header; it does not
// verify the rest of it.
func readLastGood(path string) (LastGood, error) {
	lg, _, err := readLastGoodMeta(path)
	return lg, err
}

func readLastGoodMeta(path string) (LastGood, boltMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return LastGood{}, boltMeta{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return LastGood{}, boltMeta{}, err
	}
	lg := LastGood{Path: path, Time: fi.ModTime(), Size: fi.Size()}
	m, err := readMeta(f, fi.Size())
	if err != nil {
		return lg, boltMeta{}, err
	}
	lg.TxID = m.txid
	return lg, m.boltMeta, nil
}

// SnapshotLastGood keeps the last good copy of the store: a consistent copy
// of the file as of now (bbolt's Tx.WriteTo, in a read transaction, so
// writes go on meanwhile), in LastGoodFileName next to it. The agent calls
// it once per start, right after Open has verified the file, and goes on
// (logging the error) if it fails: the store itself is fine.
//
// The copy is written to a temporary file, fsynced, verified page by page,
// renamed over the previous copy and the directory fsynced, so that a crash
// at any point leaves the previous copy or the new one, never a torn one.
// It costs a read and a write of the whole file, so it is skipped (wrote is
// false) when the copy already holds the store's current transaction; its
// time is then moved to now. The temporary file is
// LastGoodFileName+".tmp"; a crash may leave it behind, and the next call
// overwrites it.
func (s *Store) SnapshotLastGood() (lg LastGood, wrote bool, err error) {
	s.snapshotMu.Lock()
	defer s.snapshotMu.Unlock()
	dst := lastGoodPath(s.path)
	tmp := dst + ".tmp"
	err = s.db.View(func(tx *bolt.Tx) error {
		prev, m, err := readLastGoodMeta(dst)
		if err == nil && m.txid == uint64(tx.ID()) && m.root == uint64(tx.Cursor().Bucket().Root()) &&
			int64(m.pgid)*int64(m.pageSize) == tx.Size() {
			lg = prev
			return nil
		}
		wrote = true
		return writeFileSynced(tmp, func(f *os.File) error {
			_, err := tx.WriteTo(f)
			return err
		})
	})
	if err != nil {
		_ = os.Remove(tmp)
		return LastGood{}, false, fmt.Errorf("store: snapshot last good copy: %w", err)
	}
	if !wrote {
		now := time.Now()
		if os.Chtimes(dst, now, now) == nil {
			lg.Time = now
		}
		return lg, false, nil
	}
	if err := verifyPath(tmp); err != nil {
		_ = os.Remove(tmp)
		return LastGood{}, false, fmt.Errorf("store: snapshot last good copy: the copy does not verify, the previous one is kept: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return LastGood{}, false, fmt.Errorf("store: snapshot last good copy: %w", err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return LastGood{}, false, fmt.Errorf("store: snapshot last good copy: sync data dir: %w", err)
	}
	if lg, err = readLastGood(dst); err != nil {
		return LastGood{}, false, fmt.Errorf("store: snapshot last good copy: %w", err)
	}
	return lg, true, nil
}

// writeFileSynced creates (or truncates) path with mode 0600, lets write
// fill it, and fsyncs and closes it.
func writeFileSynced(path string, write func(f *os.File) error) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// verifyPath walks the bbolt file at path (see verifyFile) without bbolt
// and without a lock: for copies nobody else writes.
func verifyPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	var rep Report
	return verifyFile(f, fi.Size(), &rep)
}

// recoveryHint tells an operator facing a damaged or lost store file at
// path the way back: the last good copy, its age and the command that
// restores it, or what to do without one.
func recoveryHint(path string, now time.Time) string {
	dir := filepath.Dir(path)
	lgPath := lastGoodPath(path)
	lg, err := readLastGood(lgPath)
	switch {
	case err == nil:
		return fmt.Sprintf("A last good copy from %s (%s ago, transaction %d) is at %s: stop the agent and run "+
			"`trellis store recover --data %s` to keep the damaged file aside and restore the copy (what was written after it is lost)",
			lg.Time.UTC().Format(time.RFC3339), age(now.Sub(lg.Time)), lg.TxID, lgPath, shellQuote(dir))
	case errors.Is(err, os.ErrNotExist):
		return fmt.Sprintf("There is no last good copy (%s): restore the data dir from a backup, "+
			"or move %s aside and start the agent to begin with an empty store (docs/data-dir.md)", lgPath, path)
	}
	return fmt.Sprintf("The last good copy %s is unusable too (%v): restore the data dir from a backup, "+
		"or move both files aside and start the agent to begin with an empty store (docs/data-dir.md)", lgPath, err)
}

// age formats a duration for people: to the second below an hour, to the
// minute above.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}
