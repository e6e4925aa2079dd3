package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// PutArtifact stores data under its sha256 and returns the digest. Storing
// the same bytes again writes nothing; storing them over a damaged copy
// repairs it. Empty data is rejected with ErrInvalid.
func (s *Store) PutArtifact(data []byte) (Digest, error) {
	if len(data) == 0 {
		return Digest{}, fmt.Errorf("store: put artifact: %w: empty artifact", ErrInvalid)
	}
	d := DigestOf(data)
	op := "put artifact " + d.String()
	// Check first so that an idempotent put costs a read, not an fsync.
	var same bool
	if err := s.view(op, func(tx *bolt.Tx) error {
		same = bytes.Equal(tx.Bucket(bucketArtifacts).Get(d[:]), data)
		return nil
	}); err != nil {
		return Digest{}, err
	}
	if same {
		return d, nil
	}
	if err := s.update(op, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketArtifacts).Put(d[:], data)
	}); err != nil {
		return Digest{}, err
	}
	return d, nil
}

// Artifact returns a copy of the artifact's bytes, after checking them against
// d: a mismatch fails with ErrCorrupt, a missing artifact with ErrNotFound.
func (s *Store) Artifact(d Digest) ([]byte, error) {
	op := "artifact " + d.String()
	var data []byte
	if err := s.view(op, func(tx *bolt.Tx) error {
		// bbolt's bytes are valid only inside the transaction.
		data = bytes.Clone(tx.Bucket(bucketArtifacts).Get(d[:]))
		return nil
	}); err != nil {
		return nil, err
	}
	if data == nil {
		return nil, fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	if got := DigestOf(data); got != d {
		return nil, fmt.Errorf("store: %s: %w: stored bytes hash to %s", op, ErrCorrupt, got)
	}
	return data, nil
}

// HasArtifact reports whether an artifact is stored under d, without reading
// or verifying its bytes.
func (s *Store) HasArtifact(d Digest) (bool, error) {
	var ok bool
	err := s.view("has artifact "+d.String(), func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketArtifacts).Get(d[:]) != nil
		return nil
	})
	return ok, err
}

// DeleteArtifact removes the artifact stored under d. Deleting a missing
// artifact is not an error. An artifact that a stored actor refers to is kept
// and the call fails with ErrInUse, so that every stored actor can be restored.
func (s *Store) DeleteArtifact(d Digest) error {
	return s.update("delete artifact "+d.String(), func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketActors).ForEach(func(k, v []byte) error {
			a, err := decodeActor(v)
			if err != nil {
				return fmt.Errorf("actor %s: %w", quote(string(k)), err)
			}
			if a.Artifact == d {
				return fmt.Errorf("%w by actor %s", ErrInUse, quote(a.Name))
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketArtifacts).Delete(d[:])
	})
}
