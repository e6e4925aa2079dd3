package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// CorruptFilePrefix starts the name of a damaged store file that Recover
// moved aside: FileName + ".corrupt-" + a UTC time (20060102T150405Z).
const CorruptFilePrefix = FileName + ".corrupt-"

// RecoverReport says what Recover did and what it cost.
type RecoverReport struct {
	// Path is the store file, which now holds the restored copy.
	Path string
	// MovedAside is where the damaged file now is; empty when there was no
	// file to move (it was missing).
	MovedAside string
	// Damage says what was wrong with the file.
	Damage string
	// DamagedTxID is the last transaction the damaged file's header names,
	// or zero when its header is unreadable. Transactions after Restored.TxID
	// up to it are lost.
	DamagedTxID uint64
	// Restored is the last good copy that was put in place: everything
	// written after Restored.Time is lost.
	Restored LastGood
	// SchemaVersion is the schema version of the restored store.
	SchemaVersion uint64
}

// Recover puts the last good copy of the store under dir back in place of a
// damaged store file. The agent must be stopped. Recover refuses, changing
// nothing, when the store file verifies (there is nothing to recover), is
// locked (an agent runs), or has a schema newer than this binary; when
// there is no last good copy; and when the copy does not verify either.
//
// Otherwise it copies the last good copy to a temporary file, fsyncs and
// verifies it and gives it the copy's owner (the agent's user, when root
// runs Recover), then keeps the damaged file as CorruptFilePrefix+time (a
// hard link, or a copy where links are not supported: it is never deleted),
// renames the verified copy over the store file and fsyncs the dir. The
// store file exists at every moment, so an agent started meanwhile finds
// either the damaged file (and refuses it) or the restored one, never an
// empty dir. The last good copy stays where it is.
func Recover(dir string) (RecoverReport, error) {
	if dir == "" {
		return RecoverReport{}, fmt.Errorf("store: recover: %w: empty data dir", ErrInvalid)
	}
	path := filepath.Join(dir, FileName)
	rep := RecoverReport{Path: path}
	fail := func(format string, args ...any) (RecoverReport, error) {
		return RecoverReport{}, fmt.Errorf("store: recover %s: "+format+"; nothing was changed", append([]any{dir}, args...)...)
	}

	exists := true
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		exists = false
		rep.Damage = "the store file is missing"
	case err != nil:
		return fail("%w", err)
	case fi.Size() == 0:
		rep.Damage = "the store file is empty"
	default:
		cur, err := inspect(path, DefaultTimeout)
		switch {
		case err == nil:
			return fail("%w: %s verifies (schema version %d, transaction %d): it is not damaged, there is nothing to recover",
				ErrInvalid, path, cur.SchemaVersion, cur.TxID)
		case !errors.Is(err, ErrCorrupt):
			return fail("%s: %w", path, err)
		}
		rep.Damage = err.Error()
		if f, err := os.Open(path); err == nil {
			if m, err := readMeta(f, fi.Size()); err == nil {
				rep.DamagedTxID = m.txid
			}
			f.Close()
		}
	}

	lgPath := lastGoodPath(path)
	lgInfo, err := os.Stat(lgPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fail("%w: there is no last good copy (%s) to restore: restore the data dir from a backup, "+
				"or move %s aside to begin with an empty store", fs.ErrNotExist, lgPath, path)
		}
		return fail("%w", err)
	}

	good, err := inspect(lgPath, DefaultTimeout)
	if err != nil {
		return fail("the last good copy %s cannot be used: %w", lgPath, err)
	}
	if good.SchemaVersion > SchemaVersion {
		return fail("the last good copy %s: %w: it has schema version %d, this binary supports up to %d (run the newer trellis)",
			lgPath, ErrSchemaTooNew, good.SchemaVersion, SchemaVersion)
	}
	if rep.Restored, err = readLastGood(lgPath); err != nil {
		return fail("the last good copy %s: %w", lgPath, err)
	}
	rep.SchemaVersion = good.SchemaVersion

	// Stage the copy next to the store file and verify what landed on disk.
	staged := path + ".restore.tmp"
	err = writeFileSynced(staged, func(f *os.File) error { return copyFrom(f, lgPath) })
	if err == nil {
		err = verifyPath(staged)
	}
	if err == nil {
		// The agent wrote the copy, so it has the agent's owner; recover
		// may run as root.
		err = chownLike(staged, lgInfo)
	}
	if err != nil {
		_ = os.Remove(staged)
		return fail("staging the last good copy as %s: %w", staged, err)
	}

	if exists {
		aside, err := keepAside(path, time.Now())
		if err != nil {
			_ = os.Remove(staged)
			return fail("keeping the damaged file: %w", err)
		}
		rep.MovedAside = aside
	}
	if err := os.Rename(staged, path); err != nil {
		_ = os.Remove(staged)
		if rep.MovedAside != "" {
			return RecoverReport{}, fmt.Errorf("store: recover %s: %w (the damaged file is unchanged, with a second name %s)", dir, err, rep.MovedAside)
		}
		return fail("%w", err)
	}
	if err := syncDir(dir); err != nil {
		return rep, fmt.Errorf("store: recover %s: restored, but syncing the data dir failed: %w", dir, err)
	}
	return rep, nil
}

// keepAside gives the damaged file at path a second name,
// CorruptFilePrefix+time, that nothing else uses, and returns it. A hard
// link keeps the file without copying it; where the file system has none,
// the bytes are copied.
func keepAside(path string, now time.Time) (string, error) {
	base := filepath.Join(filepath.Dir(path), CorruptFilePrefix+now.UTC().Format("20060102T150405Z"))
	for i := 1; i <= 100; i++ {
		aside := base
		if i > 1 {
			aside = fmt.Sprintf("%s-%d", base, i)
		}
		err := os.Link(path, aside)
		if err == nil {
			return aside, nil
		}
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		// No hard links here: copy, never overwriting anything.
		f, err := os.OpenFile(aside, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		err = copyFrom(f, path)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(aside)
			return "", err
		}
		return aside, nil
	}
	return "", fmt.Errorf("%w: %s and 99 numbered variants", fs.ErrExist, base)
}

// copyFrom copies the file at src into w.
func copyFrom(w io.Writer, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
