package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Records are msgpack maps with short, stable keys: a new field gets a new key,
// an unknown key is ignored, a missing key decodes as zero. Integers are
// fixed-width here so that a file written on arm64 reads the same on 32-bit ARM.
// Never reuse or renumber a key.

// actorRecord is the stored form of Actor.
type actorRecord struct {
	Name     string       `msgpack:"n"`
	Artifact []byte       `msgpack:"a"`
	Revision uint64       `msgpack:"r"`
	Limits   limitsRecord `msgpack:"l"`
	Grants   []byte       `msgpack:"g,omitempty"`
	// A pointer, because msgpack v5.4.1 panics decoding nil into a time.Time
	// (reflect.Value.IsNil on a struct); see testdata/fuzz/FuzzDecodeActor.
	UpdatedAt *time.Time `msgpack:"u"`
}

// limitsRecord is the stored form of Limits; zero limits are left out.
type limitsRecord struct {
	MaxInstances   int64  `msgpack:"i,omitempty"`
	MemoryPages    uint32 `msgpack:"p,omitempty"`
	CallTimeout    int64  `msgpack:"t,omitempty"` // nanoseconds
	MaxRequest     int64  `msgpack:"q,omitempty"`
	MaxResponse    int64  `msgpack:"s,omitempty"`
	MaxHostPayload int64  `msgpack:"h,omitempty"`
	MaxHostCalls   int64  `msgpack:"c,omitempty"`
}

// encodeActor returns the stored form of a.
func encodeActor(a Actor) ([]byte, error) {
	rec := actorRecord{
		Name:     a.Name,
		Artifact: a.Artifact[:],
		Revision: a.Revision,
		Limits: limitsRecord{
			MaxInstances:   int64(a.Limits.MaxInstances),
			MemoryPages:    a.Limits.MemoryPages,
			CallTimeout:    int64(a.Limits.CallTimeout),
			MaxRequest:     int64(a.Limits.MaxRequest),
			MaxResponse:    int64(a.Limits.MaxResponse),
			MaxHostPayload: int64(a.Limits.MaxHostPayload),
			MaxHostCalls:   int64(a.Limits.MaxHostCalls),
		},
		Grants:    a.Grants,
		UpdatedAt: &a.UpdatedAt,
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(&rec); err != nil {
		return nil, fmt.Errorf("encode actor %s: %w", quote(a.Name), err)
	}
	return buf.Bytes(), nil
}

// decodeActor parses a stored actor record. It never panics; any malformed or
// inconsistent input yields an error wrapping ErrCorrupt. The result shares
// no memory with b.
func decodeActor(b []byte) (Actor, error) {
	var rec actorRecord
	r := bytes.NewReader(b)
	if err := msgpack.NewDecoder(r).Decode(&rec); err != nil {
		return Actor{}, fmt.Errorf("%w: actor record: %w", ErrCorrupt, err)
	}
	if r.Len() != 0 {
		return Actor{}, fmt.Errorf("%w: actor record: %d trailing bytes", ErrCorrupt, r.Len())
	}
	a := Actor{
		Name:     rec.Name,
		Revision: rec.Revision,
		Limits: Limits{
			MemoryPages: rec.Limits.MemoryPages,
			CallTimeout: time.Duration(rec.Limits.CallTimeout),
		},
	}
	if err := validateActorName(a.Name); err != nil {
		// %v: a bad stored name is corruption, not the caller's ErrInvalid.
		return Actor{}, fmt.Errorf("%w: actor record: %v", ErrCorrupt, err)
	}
	if len(rec.Artifact) != len(a.Artifact) {
		return Actor{}, fmt.Errorf("%w: actor record %s: artifact digest has %d bytes", ErrCorrupt, quote(a.Name), len(rec.Artifact))
	}
	copy(a.Artifact[:], rec.Artifact)
	if len(rec.Grants) > 0 {
		a.Grants = bytes.Clone(rec.Grants)
	}
	if rec.UpdatedAt != nil {
		a.UpdatedAt = rec.UpdatedAt.UTC()
	}
	if a.Artifact.IsZero() {
		return Actor{}, fmt.Errorf("%w: actor record %s: zero artifact digest", ErrCorrupt, quote(a.Name))
	}
	if a.Revision == 0 {
		return Actor{}, fmt.Errorf("%w: actor record %s: zero revision", ErrCorrupt, quote(a.Name))
	}
	for _, f := range []struct {
		name string
		src  int64
		dst  *int
	}{
		{"MaxInstances", rec.Limits.MaxInstances, &a.Limits.MaxInstances},
		{"MaxRequest", rec.Limits.MaxRequest, &a.Limits.MaxRequest},
		{"MaxResponse", rec.Limits.MaxResponse, &a.Limits.MaxResponse},
		{"MaxHostPayload", rec.Limits.MaxHostPayload, &a.Limits.MaxHostPayload},
		{"MaxHostCalls", rec.Limits.MaxHostCalls, &a.Limits.MaxHostCalls},
	} {
		// On 32-bit ARM an int holds less than a stored int64.
		if int64(int(f.src)) != f.src {
			return Actor{}, fmt.Errorf("%w: actor record %s: Limits.%s %d out of range", ErrCorrupt, quote(a.Name), f.name, f.src)
		}
		*f.dst = int(f.src)
	}
	return a, nil
}

// encodeUint64 is the stored form of counters such as the schema version.
func encodeUint64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// decodeUint64 parses what encodeUint64 wrote; any other length wraps ErrCorrupt.
func decodeUint64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: counter has %d bytes, want 8", ErrCorrupt, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}
