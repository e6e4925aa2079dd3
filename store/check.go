package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Verification. bbolt reads its file through mmap and trusts it: a damaged
// page can make it panic, fault (SIGBUS past the end of a truncated file,
// SIGSEGV through a wild page id; neither is recoverable) or loop forever on
// a page that refers to its own ancestor. So the store checks a file before
// bbolt reads anything but its two header pages, with its own reader of
// bbolt's file format (version 2): plain ReadAt, bounds checks everywhere,
// every page visited once. It checks what bbolt's Tx.Check checks (page ids,
// types, double references, the free list, pages neither reachable nor free,
// key order) and that every element lies inside its page; only a file that
// passes is handed to bbolt, whose own Check then runs on it as well.

// bbolt's on-disk format, version 2. Integers are in the machine's byte
// order (bbolt casts pages to structs), which is little-endian on every
// platform Trellis builds for.
const (
	boltMagic          = 0xED0CDAED
	boltFormatVersion  = 2
	pageHeaderSize     = 16 // id u64, flags u16, count u16, overflow u32
	elementSize        = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	metaSize           = 64 // magic, version, page size, flags u32; root, sequence, freelist, pgid, txid, checksum u64
	metaChecksummed    = 56 // the checksum covers the meta up to itself
	bucketHeaderSize   = 16 // root pgid u64, sequence u64; an inline bucket's page follows
	pageFlagBranch     = 0x01
	pageFlagLeaf       = 0x02
	pageFlagFreelist   = 0x10
	leafFlagBucket     = 0x01
	noFreelist         = ^uint64(0)
	minPageSize        = 1024
	maxPageSize        = 1 << 24 // bbolt looks for the second meta page up to 16 MiB
	maxReportProblems  = 20
	freelistCountInPgs = 0xFFFF    // page.count value meaning "the count is the first id slot"
	maxPageSpan        = 1<<31 - 1 // a page and its overflow never exceed bbolt's largest value, and fit an int on 32-bit ARM
)

// Report describes a store file: what Check found and the figures an
// operator wants to see.
type Report struct {
	// Path is the store file.
	Path string
	// Size is the file size in bytes.
	Size int64
	// PageSize is bbolt's page size for the file.
	PageSize int
	// Pages is the high-water mark: pages in use or free below it.
	Pages uint64
	// FreePages counts pages on bbolt's free list, for reuse by later writes.
	FreePages int
	// TxID is the last committed transaction. Each write commits one.
	TxID uint64
	// MetaFallback is set when the newer of bbolt's two header pages was
	// invalid and the file reads as of the transaction before it. bbolt does
	// this by design after a crash in the middle of writing a header; the
	// transaction whose header was torn had not been acknowledged.
	MetaFallback string
	// SchemaVersion is the trellis schema version recorded in the file.
	SchemaVersion uint64
	// Buckets are the top-level buckets, in key order.
	Buckets []BucketReport
	// Problems lists what is damaged (at most 20, then a count of the rest);
	// empty when the file verifies.
	Problems []string
	// LastGood is the last good copy next to the file; its Path is empty when
	// there is none. See (*Store).SnapshotLastGood.
	LastGood LastGood
}

// BucketReport counts one top-level bucket, nested buckets included.
type BucketReport struct {
	// Name is the bucket's name.
	Name string
	// Keys counts the values stored in the bucket and in its nested buckets.
	Keys int
	// Buckets counts the nested buckets at any depth.
	Buckets int
	// Bytes is the sum of the sizes of those keys and values.
	Bytes int64
}

// Check verifies the store file under dir without changing it: it takes the
// file's lock shared (so it fails with ErrLocked while an agent runs on the
// dir), walks every page and every bucket, runs bbolt's own consistency check
// and reads the schema version. A damaged file gives an error wrapping
// ErrCorrupt that names the file and the recovery path, together with the
// Report, whose Problems list the damage. A missing file gives an error
// wrapping fs.ErrNotExist, and an empty one (which Open would take as new)
// one wrapping ErrNotFound.
func Check(dir string) (Report, error) {
	if dir == "" {
		return Report{}, fmt.Errorf("store: check: %w: empty data dir", ErrInvalid)
	}
	path := filepath.Join(dir, FileName)
	rep, err := inspect(path, DefaultTimeout)
	rep.LastGood, _ = readLastGood(lastGoodPath(path))
	switch {
	case err == nil:
		return rep, nil
	case errors.Is(err, ErrCorrupt):
		return rep, fmt.Errorf("store: check %s: %w. %s", path, err, recoveryHint(path, time.Now()))
	}
	return rep, fmt.Errorf("store: check %s: %w", path, err)
}

// inspect verifies the bbolt file at path under a shared lock, waiting at
// most timeout for it, and reports on it. Its errors do not name the path:
// the caller adds it with its operation.
func inspect(path string, timeout time.Duration) (Report, error) {
	rep := Report{Path: path}
	fi, err := os.Stat(path)
	if err != nil {
		return rep, err
	}
	rep.Size = fi.Size()
	if rep.Size == 0 {
		return rep, fmt.Errorf("%w: the file is empty (no store was ever written to it)", ErrNotFound)
	}
	// A read-only bbolt handle is the lock: shared, so that two checks can
	// run at once but neither while a writer has the file. Opening it reads
	// the header pages only.
	db, err := bolt.Open(path, 0, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		err = boltOpenError(err)
		if errors.Is(err, ErrCorrupt) {
			// bbolt's reason is terse ("invalid database"); the store's
			// reader of the header pages says which and why.
			if f, ferr := os.Open(path); ferr == nil {
				if _, merr := readMeta(f, rep.Size); merr != nil {
					err = merr
				}
				f.Close()
			}
			rep.Problems = []string{problemText(err)}
		}
		return rep, err
	}
	defer db.Close()

	f, err := os.Open(path)
	if err != nil {
		return rep, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return rep, err
	}
	rep.Size = fi.Size()
	if err := verifyFile(f, rep.Size, &rep); err != nil {
		if len(rep.Problems) == 0 {
			rep.Problems = []string{problemText(err)}
		}
		return rep, err
	}
	// The file is sound: bbolt may now read it. Its own check runs in a
	// goroutine of its own; a panic there comes back as an error, and the
	// walk above has ruled out what could fault or loop.
	err = viewGuarded(db, func(tx *bolt.Tx) error {
		more := 0
		for err := range tx.Check() { // drain it: the check's goroutine waits for us
			if len(rep.Problems) == maxReportProblems {
				more++
				continue
			}
			rep.Problems = append(rep.Problems, "bbolt check: "+err.Error())
		}
		if more > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("... and %d more", more))
		}
		if len(rep.Problems) > 0 {
			return fmt.Errorf("%w: %s", ErrCorrupt, summarize(rep.Problems))
		}
		v, err := schemaVersion(tx)
		rep.SchemaVersion = v
		return err
	})
	if errors.Is(err, ErrCorrupt) && len(rep.Problems) == 0 {
		rep.Problems = []string{problemText(err)}
	}
	return rep, err
}

// viewGuarded runs fn in a read transaction and turns a panic or a memory
// fault while bbolt reads the file into ErrCorrupt.
func viewGuarded(db *bolt.DB, fn func(tx *bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: bbolt: %v", ErrCorrupt, r)
		}
	}()
	return db.View(fn)
}

// problemText is err without the ErrCorrupt prefix.
func problemText(err error) string {
	return strings.TrimPrefix(err.Error(), ErrCorrupt.Error()+": ")
}

// summarize joins the first problem with the number of the others.
func summarize(problems []string) string {
	switch len(problems) {
	case 0:
		return ""
	case 1:
		return problems[0]
	}
	return fmt.Sprintf("%s (and %d more problems)", problems[0], len(problems)-1)
}

// boltMeta is the part of a bbolt meta page the store needs.
type boltMeta struct {
	pageSize uint32
	root     uint64 // page id of the root bucket
	freelist uint64 // page id of the free list, or noFreelist
	pgid     uint64 // high-water mark: the number of pages the file uses
	txid     uint64
}

// parseMeta decodes and validates the meta page at the start of b.
func parseMeta(b []byte) (boltMeta, error) {
	if len(b) < pageHeaderSize+metaSize {
		return boltMeta{}, errors.New("short page")
	}
	m := b[pageHeaderSize : pageHeaderSize+metaSize]
	ne := binary.NativeEndian
	switch {
	case ne.Uint32(m[0:]) != boltMagic:
		return boltMeta{}, errors.New("no bbolt magic number")
	case ne.Uint32(m[4:]) != boltFormatVersion:
		return boltMeta{}, fmt.Errorf("bbolt format version %d, want %d", ne.Uint32(m[4:]), boltFormatVersion)
	}
	h := fnv.New64a()
	h.Write(m[:metaChecksummed])
	if h.Sum64() != ne.Uint64(m[metaChecksummed:]) {
		return boltMeta{}, errors.New("checksum mismatch")
	}
	return boltMeta{
		pageSize: ne.Uint32(m[8:]),
		root:     ne.Uint64(m[16:]),
		freelist: ne.Uint64(m[32:]),
		pgid:     ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
	}, nil
}

// fileMeta is the meta bbolt would use for a file: the valid one of its two
// meta pages with the higher transaction id.
type fileMeta struct {
	boltMeta
	// fallback says why the other meta page was not used, when it is invalid.
	fallback string
}

// readMeta finds the page size and the meta bbolt would use, the way
// bbolt.Open does: the page size from the first meta page, else from the
// second one found by trying each possible page size.
func readMeta(r io.ReaderAt, size int64) (fileMeta, error) {
	first := make([]byte, 4096)
	n, _ := r.ReadAt(first, 0)
	first = first[:n]
	m0, err0 := parseMeta(first)
	pageSize := int64(m0.pageSize)
	if err0 != nil {
		for i := range 15 {
			pos := int64(minPageSize) << i
			if pos >= size-minPageSize {
				break
			}
			buf := make([]byte, pageHeaderSize+metaSize)
			if n, _ := r.ReadAt(buf, pos); n == len(buf) {
				if m, err := parseMeta(buf); err == nil {
					pageSize = int64(m.pageSize)
					break
				}
			}
		}
		if pageSize == 0 {
			return fileMeta{}, fmt.Errorf("%w: both bbolt meta pages are invalid (page 0: %v; page 1: not found at any page size)", ErrCorrupt, err0)
		}
	}
	if pageSize < minPageSize || pageSize > maxPageSize {
		return fileMeta{}, fmt.Errorf("%w: page size %d out of range", ErrCorrupt, pageSize)
	}
	buf := make([]byte, pageHeaderSize+metaSize)
	var err1 error
	var m1 boltMeta
	if n, _ := r.ReadAt(buf, pageSize); n == len(buf) {
		m1, err1 = parseMeta(buf)
	} else {
		err1 = errors.New("missing (file too short)")
	}
	switch {
	case err0 != nil && err1 != nil:
		return fileMeta{}, fmt.Errorf("%w: both bbolt meta pages are invalid (page 0: %v; page 1: %v)", ErrCorrupt, err0, err1)
	case err0 == nil && err1 == nil && m0.pageSize != m1.pageSize:
		return fileMeta{}, fmt.Errorf("%w: the meta pages disagree on the page size (%d, %d)", ErrCorrupt, m0.pageSize, m1.pageSize)
	case err1 != nil:
		return fileMeta{m0, fmt.Sprintf("meta page 1 is invalid (%v); using meta page 0, transaction %d", err1, m0.txid)}, nil
	case err0 != nil:
		return fileMeta{m1, fmt.Sprintf("meta page 0 is invalid (%v); using meta page 1, transaction %d", err0, m1.txid)}, nil
	case m1.txid > m0.txid:
		return fileMeta{boltMeta: m1}, nil
	}
	return fileMeta{boltMeta: m0}, nil
}

// verifyFile walks the bbolt file in r, of the given size, fills in rep and
// returns an error wrapping ErrCorrupt if anything is damaged.
func verifyFile(r io.ReaderAt, size int64, rep *Report) error {
	meta, err := readMeta(r, size)
	if err != nil {
		return err
	}
	rep.PageSize = int(meta.pageSize)
	rep.TxID = meta.txid
	rep.Pages = meta.pgid
	rep.MetaFallback = meta.fallback
	ps := int64(meta.pageSize)
	if meta.pgid < 3 {
		return fmt.Errorf("%w: high-water mark %d is below the minimum of 3 pages", ErrCorrupt, meta.pgid)
	}
	if meta.pgid > uint64(size/ps) {
		return fmt.Errorf("%w: the file is truncated: %d bytes, but its last transaction (%d) uses %d pages of %d bytes",
			ErrCorrupt, size, meta.txid, meta.pgid, ps)
	}
	w := &walker{r: r, pageSize: ps, hwm: meta.pgid, seen: make([]byte, meta.pgid), synced: meta.freelist != noFreelist}
	w.seen[0], w.seen[1] = seenReachable, seenReachable
	if w.synced {
		w.readFreelist(meta.freelist)
	}
	rep.FreePages = w.free
	if meta.root < 2 || meta.root >= meta.pgid {
		w.problem("root bucket page %d out of bounds (high-water mark %d)", meta.root, meta.pgid)
	} else {
		w.walkPage(meta.root, nil, nil, 0, func(key []byte) *BucketReport {
			rep.Buckets = append(rep.Buckets, BucketReport{Name: string(key)})
			return &rep.Buckets[len(rep.Buckets)-1]
		}, nil)
	}
	if w.synced {
		for id := uint64(2); id < meta.pgid; id++ {
			if w.seen[id] == 0 {
				w.problem("page %d: neither reachable nor free", id)
			}
		}
	}
	rep.Problems = w.problems
	if w.more > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("... and %d more", w.more))
	}
	if len(w.problems) > 0 {
		return fmt.Errorf("%w: %s", ErrCorrupt, summarize(rep.Problems))
	}
	return nil
}

// Page states in walker.seen.
const (
	seenReachable = 1
	seenFree      = 2
)

// walker visits the pages of one bbolt file.
type walker struct {
	r        io.ReaderAt
	pageSize int64
	hwm      uint64
	seen     []byte // per page id: seenReachable, seenFree, or both (a problem)
	synced   bool   // the file has a free list (so every page must be seen)
	free     int
	problems []string
	more     int
}

func (w *walker) problem(format string, args ...any) {
	if len(w.problems) == maxReportProblems {
		w.more++
		return
	}
	w.problems = append(w.problems, fmt.Sprintf(format, args...))
}

// readPage reads page id with its overflow pages and checks its header.
func (w *walker) readPage(id uint64) ([]byte, bool) {
	if id < 2 || id >= w.hwm {
		w.problem("page %d: out of bounds (high-water mark %d)", id, w.hwm)
		return nil, false
	}
	p := make([]byte, w.pageSize)
	if _, err := w.r.ReadAt(p, int64(id)*w.pageSize); err != nil {
		w.problem("page %d: %v", id, err)
		return nil, false
	}
	ne := binary.NativeEndian
	if got := ne.Uint64(p); got != id {
		w.problem("page %d: holds page id %d", id, got)
		return nil, false
	}
	overflow := uint64(ne.Uint32(p[12:]))
	if overflow >= w.hwm-id {
		w.problem("page %d: %d overflow pages run past the high-water mark %d", id, overflow, w.hwm)
		return nil, false
	}
	if (overflow+1)*uint64(w.pageSize) > maxPageSpan {
		w.problem("page %d: %d overflow pages are more than a value can fill", id, overflow)
		return nil, false
	}
	if overflow > 0 {
		p = make([]byte, int64(overflow+1)*w.pageSize)
		if _, err := w.r.ReadAt(p, int64(id)*w.pageSize); err != nil {
			w.problem("page %d: %v", id, err)
			return nil, false
		}
	}
	return p, true
}

// mark records that page id and its overflow pages are in state s, and
// reports whether they were not seen in that state before.
func (w *walker) mark(id uint64, overflow int, s byte, what string) bool {
	fresh := true
	for i := uint64(0); i <= uint64(overflow); i++ {
		switch prev := w.seen[id+i]; {
		case prev&s != 0 && s == seenFree:
			w.problem("page %d: already freed", id+i)
			fresh = false
		case prev&s != 0:
			w.problem("page %d: multiple references", id+i)
			fresh = false
		case prev != 0:
			w.problem("page %d: reachable and free (%s)", id+i, what)
		}
		w.seen[id+i] |= s
	}
	return fresh
}

func (w *walker) readFreelist(id uint64) {
	p, ok := w.readPage(id)
	if !ok {
		return
	}
	ne := binary.NativeEndian
	if flags := ne.Uint16(p[8:]); flags != pageFlagFreelist {
		w.problem("page %d: the free list page has type %#x", id, flags)
		return
	}
	overflow := len(p)/int(w.pageSize) - 1
	w.mark(id, overflow, seenReachable, "free list")
	ids := p[pageHeaderSize:]
	count := uint64(ne.Uint16(p[10:]))
	if count == freelistCountInPgs {
		count = ne.Uint64(ids)
		ids = ids[8:]
	}
	if count > uint64(len(ids)/8) {
		w.problem("page %d: the free list claims %d ids, its pages hold %d", id, count, len(ids)/8)
		return
	}
	for i := range count {
		free := ne.Uint64(ids[i*8:])
		if free < 2 || free >= w.hwm {
			w.problem("free list: page %d out of bounds (high-water mark %d)", free, w.hwm)
			continue
		}
		w.mark(free, 0, seenFree, "free list")
		w.free++
	}
}

// walkPage checks the b-tree page id and its subtree. Keys must lie in
// [minKey, maxKey) (nil: unbounded). depth is the bucket nesting: at 0 the
// leaf elements are top-level buckets, for which top returns the stats to
// fill; below it stats are those of the enclosing top-level bucket. It
// returns the greatest key in the subtree.
func (w *walker) walkPage(id uint64, minKey, maxKey []byte, depth int, top func([]byte) *BucketReport, stats *BucketReport) []byte {
	p, ok := w.readPage(id)
	if !ok {
		return nil
	}
	overflow := len(p)/int(w.pageSize) - 1
	flags := binary.NativeEndian.Uint16(p[8:])
	if !w.mark(id, overflow, seenReachable, "b-tree") {
		return nil // already walked: do not loop
	}
	switch flags {
	case pageFlagBranch:
		return w.walkBranch(id, p, minKey, maxKey, depth, top, stats)
	case pageFlagLeaf:
		return w.walkLeaf(fmt.Sprintf("page %d", id), p, minKey, maxKey, depth, top, stats)
	}
	w.problem("page %d: invalid type %#x for a b-tree page", id, flags)
	return nil
}

func (w *walker) walkBranch(id uint64, p, minKey, maxKey []byte, depth int, top func([]byte) *BucketReport, stats *BucketReport) []byte {
	ne := binary.NativeEndian
	count := int(ne.Uint16(p[10:]))
	if pageHeaderSize+count*elementSize > len(p) {
		w.problem("page %d: %d branch elements do not fit in the page", id, count)
		return nil
	}
	keys := make([][]byte, count)
	children := make([]uint64, count)
	for i := range count {
		e := pageHeaderSize + i*elementSize
		key, ok := elementBytes(p, e, ne.Uint32(p[e:]), ne.Uint32(p[e+4:]))
		if !ok {
			w.problem("page %d: branch element %d lies outside the page", id, i)
			return nil
		}
		keys[i], children[i] = key, ne.Uint64(p[e+8:])
	}
	runningMin := minKey
	var maxInSubtree []byte
	for i := range count {
		w.checkKeyOrder(fmt.Sprintf("page %d", id), "branch", i, keys[i], runningMin, maxKey)
		upper := maxKey
		if i < count-1 {
			upper = keys[i+1]
		}
		maxInSubtree = w.walkPage(children[i], keys[i], upper, depth, top, stats)
		runningMin = maxInSubtree
	}
	return maxInSubtree
}

func (w *walker) walkLeaf(where string, p, minKey, maxKey []byte, depth int, top func([]byte) *BucketReport, stats *BucketReport) []byte {
	ne := binary.NativeEndian
	count := int(ne.Uint16(p[10:]))
	if pageHeaderSize+count*elementSize > len(p) {
		w.problem("%s: %d leaf elements do not fit in the page", where, count)
		return nil
	}
	runningMin := minKey
	for i := range count {
		e := pageHeaderSize + i*elementSize
		flags, pos, ksize, vsize := ne.Uint32(p[e:]), ne.Uint32(p[e+4:]), ne.Uint32(p[e+8:]), ne.Uint32(p[e+12:])
		kv, ok := elementBytes(p, e, pos, ksize+vsize)
		if !ok || ksize+vsize < ksize {
			w.problem("%s: leaf element %d lies outside the page", where, i)
			return runningMin
		}
		key, value := kv[:ksize], kv[ksize:]
		w.checkKeyOrder(where, "leaf", i, key, runningMin, maxKey)
		runningMin = key
		if flags&leafFlagBucket == 0 {
			if depth == 0 {
				w.problem("%s: key %q in the root bucket is not a bucket", where, key)
				continue
			}
			stats.Keys++
			stats.Bytes += int64(len(key) + len(value))
			continue
		}
		inner := stats
		if depth == 0 {
			inner = top(key)
		} else {
			stats.Buckets++
		}
		w.walkBucket(fmt.Sprintf("%s: bucket %q", where, key), value, depth+1, top, inner)
	}
	return runningMin
}

// walkBucket checks a bucket from its header (the value of its key).
func (w *walker) walkBucket(where string, value []byte, depth int, top func([]byte) *BucketReport, stats *BucketReport) {
	if len(value) < bucketHeaderSize {
		w.problem("%s: bucket header of %d bytes", where, len(value))
		return
	}
	if root := binary.NativeEndian.Uint64(value); root != 0 {
		w.walkPage(root, nil, nil, depth, top, stats)
		return
	}
	// An inline bucket: a leaf page inside the value.
	inline := value[bucketHeaderSize:]
	if len(inline) < pageHeaderSize {
		w.problem("%s: inline page of %d bytes", where, len(inline))
		return
	}
	if flags := binary.NativeEndian.Uint16(inline[8:]); flags != pageFlagLeaf {
		w.problem("%s: inline page has type %#x", where, flags)
		return
	}
	w.walkLeaf(where+" (inline)", inline, nil, nil, depth, top, stats)
}

// elementBytes returns the n bytes at pos from the element at offset e of p
// (bbolt stores an element's key and value relative to the element).
func elementBytes(p []byte, e int, pos, n uint32) ([]byte, bool) {
	start := uint64(e) + uint64(pos)
	end := start + uint64(n)
	if end > uint64(len(p)) {
		return nil, false
	}
	return p[start:end], true
}

// checkKeyOrder applies bbolt's ordering rules: the first key of a page is
// at least the ancestor's key, each next key is greater than the one before,
// and all are below the next key of the parent.
func (w *walker) checkKeyOrder(where, kind string, i int, key, prev, maxKey []byte) {
	switch {
	case i == 0 && prev != nil && bytes.Compare(prev, key) > 0:
		w.problem("%s: first %s key %s is below its ancestor's key %s", where, kind, hexKey(key), hexKey(prev))
	case i > 0 && bytes.Compare(prev, key) >= 0:
		w.problem("%s: %s key %d (%s) is not above the one before (%s)", where, kind, i, hexKey(key), hexKey(prev))
	}
	if maxKey != nil && bytes.Compare(key, maxKey) >= 0 {
		w.problem("%s: %s key %d (%s) is not below the next key of its parent (%s)", where, kind, i, hexKey(key), hexKey(maxKey))
	}
}

// hexKey formats a key for a problem report, truncated.
func hexKey(k []byte) string {
	const limit = 32
	if len(k) > limit {
		return fmt.Sprintf("%x...", k[:limit])
	}
	return fmt.Sprintf("%x", k)
}

// boltOpenError classifies a bbolt.Open failure without naming the path.
// Operating-system failures (permissions, I/O) pass through; anything else
// comes from reading the file's contents and means it is not a bbolt
// database.
func boltOpenError(err error) error {
	var pathErr *fs.PathError
	var errno syscall.Errno
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("%w (is another trellis running with this data dir?)", ErrLocked)
	case errors.As(err, &pathErr), errors.As(err, &errno):
		return err
	}
	return fmt.Errorf("not a bbolt database: %w: %w", ErrCorrupt, err)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-+:=@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
