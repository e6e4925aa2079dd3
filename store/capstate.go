package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Capability state: what a capability must remember for an actor across
// restarts (its timers, its subscriptions), so that a device rebooted with
// no uplink runs them again. Records are grouped by kind ("timer",
// "subscription"), keyed by actor and an id the capability chooses, and
// opaque to the store. Writes are fsynced like every other.

// CapState is one record of capability state.
type CapState struct {
	Actor string
	ID    string
	Value []byte
}

// Bounds of capability state records.
const (
	maxCapKindLen  = 64
	maxCapIDLen    = 256
	maxCapValueLen = 64 << 10
)

func capKey(kind, actor, id string) ([]byte, error) {
	if kind == "" || len(kind) > maxCapKindLen {
		return nil, fmt.Errorf("%w: kind %s: want 1-%d bytes", ErrInvalid, quote(kind), maxCapKindLen)
	}
	if err := validateActorName(actor); err != nil {
		return nil, err
	}
	if id == "" || len(id) > maxCapIDLen || bytes.IndexByte([]byte(id), 0) >= 0 {
		return nil, fmt.Errorf("%w: id %s: want 1-%d bytes without NUL", ErrInvalid, quote(id), maxCapIDLen)
	}
	return append(append([]byte(actor), 0), id...), nil
}

// CapStatePut stores value as record id of actor under kind, replacing any.
func (s *Store) CapStatePut(kind, actor, id string, value []byte) error {
	key, err := capKey(kind, actor, id)
	if err != nil {
		return fmt.Errorf("store: cap-state put: %w", err)
	}
	if len(value) > maxCapValueLen {
		return fmt.Errorf("store: cap-state put: %w: value of %d bytes is over %d", ErrInvalid, len(value), maxCapValueLen)
	}
	return s.update("cap-state put", func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketCapState).CreateBucketIfNotExists([]byte(kind))
		if err != nil {
			return err
		}
		return b.Put(key, slices.Clone(value))
	})
}

// CapStateDelete removes record id of actor under kind and reports whether
// it existed.
func (s *Store) CapStateDelete(kind, actor, id string) (bool, error) {
	key, err := capKey(kind, actor, id)
	if err != nil {
		return false, fmt.Errorf("store: cap-state delete: %w", err)
	}
	existed := false
	err = s.update("cap-state delete", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCapState).Bucket([]byte(kind))
		if b == nil || b.Get(key) == nil {
			return errNoChange
		}
		existed = true
		return b.Delete(key)
	})
	if errors.Is(err, errNoChange) {
		err = nil
	}
	return existed, err
}

// CapStateDeleteActor removes every record of actor under kind (the actor
// was stopped).
func (s *Store) CapStateDeleteActor(kind, actor string) error {
	prefix, err := capKey(kind, actor, "-")
	if err != nil {
		return fmt.Errorf("store: cap-state delete actor: %w", err)
	}
	prefix = prefix[:len(actor)+1]
	err = s.update("cap-state delete actor", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCapState).Bucket([]byte(kind))
		if b == nil {
			return errNoChange
		}
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, slices.Clone(k))
		}
		if len(keys) == 0 {
			return errNoChange
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, errNoChange) {
		err = nil
	}
	return err
}

// CapStateList returns every record under kind, ordered by actor then id.
func (s *Store) CapStateList(kind string) ([]CapState, error) {
	if _, err := capKey(kind, "a", "-"); err != nil {
		return nil, fmt.Errorf("store: cap-state list: %w", err)
	}
	var out []CapState
	err := s.view("cap-state list", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCapState).Bucket([]byte(kind))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			actor, id, ok := bytes.Cut(k, []byte{0})
			if !ok {
				return fmt.Errorf("%w: cap-state %s: key %q has no actor", ErrCorrupt, kind, k)
			}
			out = append(out, CapState{Actor: string(actor), ID: string(id), Value: slices.Clone(v)})
			return nil
		})
	})
	return out, err
}
