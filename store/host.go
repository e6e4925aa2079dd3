package store

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/nats-io/nkeys"
	bolt "go.etcd.io/bbolt"
)

// Identity returns the host's key pair: an nkey server key (public key
// prefix 'N'), whose public key is the host id. The first call creates the key
// and stores its seed, in one fsynced transaction, so concurrent first calls
// (or two processes sharing the file in turn) end with one key. Later calls
// read the stored seed; a seed that does not decode fails with ErrCorrupt and
// is never replaced, because replacing it would silently change the host id.
//
// The seed leaves the store only inside the returned KeyPair. The caller owns
// it and should call its Wipe method when done with it.
func (s *Store) Identity() (nkeys.KeyPair, error) {
	const op = "identity"
	var kp nkeys.KeyPair
	// Read first: an existing identity costs a read, not an fsync.
	if err := s.view(op, func(tx *bolt.Tx) error {
		var err error
		kp, err = readIdentity(tx)
		return err
	}); err != nil || kp != nil {
		return kp, err
	}
	err := s.update(op, func(tx *bolt.Tx) error {
		// Another call may have created the key since the read above.
		var err error
		if kp, err = readIdentity(tx); err != nil || kp != nil {
			return err
		}
		created, err := nkeys.CreateServer()
		if err != nil {
			return fmt.Errorf("create host key: %w", err)
		}
		// Seed returns the key pair's own buffer, not a copy: it must stay
		// intact, and bbolt reads it when the transaction commits.
		seed, err := created.Seed()
		if err != nil {
			created.Wipe()
			return fmt.Errorf("host key seed: %w", err)
		}
		kp = created
		return tx.Bucket(bucketHost).Put(keyHostSeed, seed)
	})
	if err != nil {
		if kp != nil {
			kp.Wipe()
		}
		return nil, err
	}
	return kp, nil
}

// readIdentity returns the stored identity, or nil if there is none yet.
func readIdentity(tx *bolt.Tx) (nkeys.KeyPair, error) {
	seed := tx.Bucket(bucketHost).Get(keyHostSeed)
	if seed == nil {
		return nil, nil
	}
	// decodeIdentity copies seed out of bbolt's memory map; nothing else
	// holds a copy.
	return decodeIdentity(seed)
}

// decodeIdentity parses a stored host seed. It never panics; anything but an
// encoded nkey seed of a server key yields an error wrapping ErrCorrupt, which
// never quotes the seed. The result shares no memory with seed.
func decodeIdentity(seed []byte) (nkeys.KeyPair, error) {
	prefix, raw, err := nkeys.DecodeSeed(seed)
	clear(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: host key seed (%d bytes) does not decode: %w", ErrCorrupt, len(seed), err)
	}
	if prefix != nkeys.PrefixByteServer {
		return nil, fmt.Errorf("%w: host key seed is of a %s key, want a server key", ErrCorrupt, prefix)
	}
	kp, err := nkeys.FromSeed(seed) // copies seed
	if err != nil {
		return nil, fmt.Errorf("%w: host key seed: %w", ErrCorrupt, err)
	}
	return kp, nil
}

// Label rules. Keys look like Kubernetes label keys (lowercase, so that two
// keys never differ by case alone); values exclude what a label selector such
// as "site=berlin,model=pi4" uses as separators.
const (
	// MaxLabelKeyLen and MaxLabelValueLen bound a label, in bytes.
	MaxLabelKeyLen   = 63
	MaxLabelValueLen = 63
	// MaxLabels caps the labels of one host: they travel in every heartbeat.
	MaxLabels = 64
)

// ValidateLabel checks one host label. A key is 1–63 characters of a–z, 0–9,
// '-', '_', '.' and '/', starting and ending with a letter or digit. A value is
// at most 63 printable ASCII characters other than space, ',' and '='; it may
// be empty. The error names the key and the value and wraps ErrInvalid
// (without saying so, and without a package prefix), so that callers (the
// store, the agent's config) can put it in their own context.
func ValidateLabel(key, value string) error {
	if msg := labelKeyProblem(key); msg != "" {
		return &labelError{fmt.Sprintf("label %s=%s: key %s", quote(key), quote(value), msg)}
	}
	if len(value) > MaxLabelValueLen {
		return &labelError{fmt.Sprintf("label %s=%s: value has %d characters, want at most %d",
			quote(key), quote(value), len(value), MaxLabelValueLen)}
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c <= ' ' || c > '~' || c == ',' || c == '=' {
			return &labelError{fmt.Sprintf("label %s=%s: value has %q at %d, want printable ASCII other than space, ',' and '='",
				quote(key), quote(value), c, i)}
		}
	}
	return nil
}

// labelKeyProblem says what is wrong with a label key, or "" if nothing is.
func labelKeyProblem(key string) string {
	if key == "" || len(key) > MaxLabelKeyLen {
		return fmt.Sprintf("has %d characters, want 1 to %d", len(key), MaxLabelKeyLen)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		inner := c == '-' || c == '_' || c == '.' || c == '/'
		if !alnum && !(inner && i > 0 && i < len(key)-1) {
			return fmt.Sprintf("has %q at %d, want a-z, 0-9, and inside it '-', '_', '.' or '/'", c, i)
		}
	}
	return ""
}

// labelError is a label that breaks the rules of ValidateLabel.
type labelError struct{ msg string }

func (e *labelError) Error() string { return e.msg }

// Is makes a labelError match ErrInvalid.
func (e *labelError) Is(target error) bool { return target == ErrInvalid }

// Labels returns the host's labels; none is an empty map. Stored labels that
// break the rules are left out and reported together in an error wrapping
// ErrCorrupt; the valid ones are still returned.
func (s *Store) Labels() (map[string]string, error) {
	labels := make(map[string]string)
	var errs []error
	if err := s.view("labels", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHostLabels).ForEach(func(k, v []byte) error {
			key, value, err := decodeLabel(k, v)
			if err != nil {
				errs = append(errs, fmt.Errorf("store: labels: %w", err))
				return nil
			}
			labels[key] = value
			return nil
		})
	}); err != nil {
		return nil, err
	}
	return labels, errors.Join(errs...)
}

// decodeLabel parses one stored label. It never panics; a label that breaks
// ValidateLabel's rules yields an error wrapping ErrCorrupt (not ErrInvalid).
// The result shares no memory with k or v.
func decodeLabel(k, v []byte) (key, value string, err error) {
	if v == nil {
		// A nested bucket, which this schema never creates.
		return "", "", fmt.Errorf("%w: label %s is a bucket", ErrCorrupt, quote(string(k)))
	}
	key, value = string(k), string(v)
	if err := ValidateLabel(key, value); err != nil {
		// %v: a bad stored label is corruption, not the caller's ErrInvalid.
		return "", "", fmt.Errorf("%w: stored %v", ErrCorrupt, err)
	}
	return key, value, nil
}

// PutLabels merges labels into the host's labels in one fsynced transaction:
// a given key is set to its value, the other stored labels are kept. Every
// label is checked with ValidateLabel first (ErrInvalid, naming the first bad
// key in sorted order), and the merged set may hold at most MaxLabels labels
// (ErrInvalid). An empty map writes nothing.
func (s *Store) PutLabels(labels map[string]string) error {
	const op = "put labels"
	keys := slices.Sorted(maps.Keys(labels))
	for _, k := range keys {
		if err := ValidateLabel(k, labels[k]); err != nil {
			return fmt.Errorf("store: %s: %w", op, err)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	return s.update(op, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHostLabels)
		// Counted before the puts: Stats does not see a transaction's own writes.
		n := b.Stats().KeyN
		added := 0
		for _, k := range keys {
			key := []byte(k)
			if b.Get(key) == nil {
				added++
			}
			if err := b.Put(key, []byte(labels[k])); err != nil {
				return err
			}
		}
		// Only a put that adds labels can break the cap, so that a host over
		// it (a lower cap in a newer binary) can still change its labels.
		if n += added; added > 0 && n > MaxLabels {
			return fmt.Errorf("%w: %d labels, want at most %d (delete some first)", ErrInvalid, n, MaxLabels)
		}
		return nil
	})
}

// DeleteLabels removes the labels with the given keys in one fsynced
// transaction. Deleting a missing label is not an error; a key that breaks
// the rules of ValidateLabel is (ErrInvalid), since it can never be stored.
func (s *Store) DeleteLabels(keys []string) error {
	const op = "delete labels"
	for _, k := range keys {
		if msg := labelKeyProblem(k); msg != "" {
			return fmt.Errorf("store: %s: %w: label key %s %s", op, ErrInvalid, quote(k), msg)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	return s.update(op, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHostLabels)
		for _, k := range keys {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
}
