package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Digest is the sha256 of an artifact's bytes; it is the artifact's key.
// The zero Digest names no artifact.
type Digest [sha256.Size]byte

// DigestOf returns the sha256 of data.
func DigestOf(data []byte) Digest { return sha256.Sum256(data) }

// ParseDigest parses 64 hex digits (either case), optionally prefixed with
// "sha256:". An invalid string yields an error wrapping ErrInvalid.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	h := strings.TrimPrefix(s, "sha256:")
	if len(h) != hex.EncodedLen(len(d)) {
		return Digest{}, fmt.Errorf("store: parse digest %s: %w: want %d hex digits", quote(s), ErrInvalid, hex.EncodedLen(len(d)))
	}
	if _, err := hex.Decode(d[:], []byte(h)); err != nil {
		return Digest{}, fmt.Errorf("store: parse digest %s: %w: %w", quote(s), ErrInvalid, err)
	}
	return d, nil
}

// String returns the digest as 64 lowercase hex digits, without a prefix.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// IsZero reports whether d is the zero Digest.
func (d Digest) IsZero() bool { return d == Digest{} }

// MarshalText encodes d as String does, so that JSON and YAML carry hex.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText decodes what ParseDigest accepts.
func (d *Digest) UnmarshalText(text []byte) error {
	v, err := ParseDigest(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}
