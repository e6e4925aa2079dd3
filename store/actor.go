package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Actor is the record of an actor as last applied on this device: enough to
// start it again at boot.
type Actor struct {
	// Name identifies the actor; see PutActor for the allowed form.
	Name string
	// Artifact is the digest of the actor's wasm module, stored as an artifact.
	Artifact Digest
	// Revision orders the versions of one actor; see PutActor for how it is
	// assigned.
	Revision uint64
	// Limits are the actor's runtime limits as applied.
	Limits Limits
	// Grants are the actor's capability grants, encoded by the agent (JSON);
	// the store keeps them as given and does not interpret them.
	Grants []byte
	// UpdatedAt is when the record was written, set by the store's clock (UTC).
	UpdatedAt time.Time
}

// Limits are an actor's runtime limits. Zero means the runtime's default; the
// store keeps the values as given and does not interpret them.
type Limits struct {
	// MaxInstances caps the actor's instance pool.
	MaxInstances int
	// MemoryPages caps guest memory, in 64 KiB wasm pages.
	MemoryPages uint32
	// CallTimeout is the deadline of one call.
	CallTimeout time.Duration
	// MaxRequest caps a call's request payload, in bytes.
	MaxRequest int
	// MaxResponse caps a call's response payload, in bytes.
	MaxResponse int
	// MaxHostPayload caps a payload the actor sends to a capability, in bytes.
	MaxHostPayload int
	// MaxHostCalls caps the host calls of one call.
	MaxHostCalls int
}

// maxActorNameLen keeps a name within one DNS label and short as a subject token.
const maxActorNameLen = 63

// validateActorName enforces ^[a-z0-9][a-z0-9_-]{0,62}$. Names become NATS
// subject tokens, so '.', '*', '>' and whitespace are out; lowercase only, so
// that two names never differ by case alone.
func validateActorName(name string) error {
	ok := len(name) > 0 && len(name) <= maxActorNameLen
	for i := 0; ok && i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%w: Name %s: want 1-%d characters of a-z, 0-9, '-' and '_', starting with a letter or digit",
			ErrInvalid, quote(name), maxActorNameLen)
	}
	return nil
}

// PutActor records a as the actor last applied under a.Name, replacing any
// earlier record, in one fsynced transaction.
//
// The name must match ^[a-z0-9][a-z0-9_-]{0,62}$ and the artifact must be
// non-zero (else ErrInvalid) and already stored (else ErrNotFound).
//
// Revision: a non-zero a.Revision is stored as given (the caller, e.g. a
// deployment, owns the numbering; the store does not order it). A zero
// a.Revision is replaced by one more than the highest revision ever stored
// for this name, so assigned revisions increase per name and are never
// reused, even across DeleteActor.
//
// a.UpdatedAt is ignored: the store stamps the record with its clock.
func (s *Store) PutActor(a Actor) error {
	if err := validateActorName(a.Name); err != nil {
		return fmt.Errorf("store: put actor: %w", err)
	}
	op := "put actor " + a.Name
	if a.Artifact.IsZero() {
		return fmt.Errorf("store: %s: %w: Artifact is the zero digest", op, ErrInvalid)
	}
	a.UpdatedAt = s.now().UTC()
	key := []byte(a.Name)
	return s.update(op, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketArtifacts).Get(a.Artifact[:]) == nil {
			return fmt.Errorf("artifact %s: %w", a.Artifact, ErrNotFound)
		}
		revisions := tx.Bucket(bucketActorRevisions)
		var highest uint64
		if raw := revisions.Get(key); raw != nil {
			var err error
			if highest, err = decodeUint64(raw); err != nil {
				return fmt.Errorf("highest revision: %w", err)
			}
		}
		if a.Revision == 0 {
			if highest == math.MaxUint64 {
				return fmt.Errorf("%w: revisions exhausted", ErrInvalid)
			}
			a.Revision = highest + 1
		}
		if a.Revision > highest {
			if err := revisions.Put(key, encodeUint64(a.Revision)); err != nil {
				return err
			}
		}
		rec, err := encodeActor(a)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketActors).Put(key, rec)
	})
}

// Actor returns the record stored under name, or an error wrapping
// ErrNotFound.
func (s *Store) Actor(name string) (Actor, error) {
	if err := validateActorName(name); err != nil {
		return Actor{}, fmt.Errorf("store: actor: %w", err)
	}
	op := "actor " + name
	var raw []byte
	if err := s.view(op, func(tx *bolt.Tx) error {
		raw = bytes.Clone(tx.Bucket(bucketActors).Get([]byte(name)))
		return nil
	}); err != nil {
		return Actor{}, err
	}
	if raw == nil {
		return Actor{}, fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	a, err := decodeStoredActor(name, raw)
	if err != nil {
		return Actor{}, fmt.Errorf("store: %s: %w", op, err)
	}
	return a, nil
}

// Actors returns every stored actor, sorted by name. Records that do not
// decode are left out and reported together in an error wrapping ErrCorrupt;
// the readable ones are still returned, so that a device restores what it can.
func (s *Store) Actors() ([]Actor, error) {
	type entry struct {
		name string
		raw  []byte
	}
	var entries []entry
	if err := s.view("actors", func(tx *bolt.Tx) error {
		// bbolt iterates keys in byte order, which is name order.
		return tx.Bucket(bucketActors).ForEach(func(k, v []byte) error {
			entries = append(entries, entry{string(k), bytes.Clone(v)})
			return nil
		})
	}); err != nil {
		return nil, err
	}
	actors := make([]Actor, 0, len(entries))
	var errs []error
	for _, e := range entries {
		a, err := decodeStoredActor(e.name, e.raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("store: actor %s: %w", quote(e.name), err))
			continue
		}
		actors = append(actors, a)
	}
	return actors, errors.Join(errs...)
}

// DeleteActor removes the record stored under name. Deleting a missing actor
// is not an error. The name's highest revision is kept (see PutActor).
func (s *Store) DeleteActor(name string) error {
	if err := validateActorName(name); err != nil {
		return fmt.Errorf("store: delete actor: %w", err)
	}
	return s.update("delete actor "+name, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketActors).Delete([]byte(name))
	})
}

// decodeStoredActor decodes the record kept under key name and checks that it
// names itself.
func decodeStoredActor(name string, raw []byte) (Actor, error) {
	a, err := decodeActor(raw)
	if err != nil {
		return Actor{}, err
	}
	if a.Name != name {
		return Actor{}, fmt.Errorf("%w: record under %s names actor %s", ErrCorrupt, quote(name), quote(a.Name))
	}
	return a, nil
}
