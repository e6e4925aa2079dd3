package store

import (
	"bytes"
	"errors"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestArtifactRoundTrip(t *testing.T) {
	s := openTest(t, nil)
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"one byte", []byte{0}},
		{"wat module", []byte("\x00asm\x01\x00\x00\x00")},
		{"one page", bytes.Repeat([]byte{0xab}, 4096)},
		{"go wasm module size", bytes.Repeat([]byte("trellis!"), 2<<20/8)},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := s.PutArtifact(c.data)
			if err != nil {
				t.Fatal(err)
			}
			if d != DigestOf(c.data) {
				t.Errorf("PutArtifact = %s, want %s", d, DigestOf(c.data))
			}
			if ok, err := s.HasArtifact(d); !ok || err != nil {
				t.Errorf("HasArtifact = %v, %v; want true", ok, err)
			}
			got, err := s.Artifact(d)
			if err != nil || !bytes.Equal(got, c.data) {
				t.Errorf("Artifact = %d bytes, %v; want the %d bytes put", len(got), err, len(c.data))
			}
			// Idempotent: the same bytes again give the same digest and one copy.
			if again, err := s.PutArtifact(c.data); err != nil || again != d {
				t.Errorf("second PutArtifact = %s, %v; want %s", again, err, d)
			}
			if err := s.DeleteArtifact(d); err != nil {
				t.Fatal(err)
			}
			if ok, err := s.HasArtifact(d); ok || err != nil {
				t.Errorf("HasArtifact after delete = %v, %v; want false", ok, err)
			}
			if _, err := s.Artifact(d); !errors.Is(err, ErrNotFound) {
				t.Errorf("Artifact after delete = %v, want ErrNotFound", err)
			}
			if err := s.DeleteArtifact(d); err != nil {
				t.Errorf("deleting a missing artifact = %v, want nil", err)
			}
		})
	}
}

func TestPutArtifactEmpty(t *testing.T) {
	s := openTest(t, nil)
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := s.PutArtifact(c.data); !errors.Is(err, ErrInvalid) {
				t.Errorf("PutArtifact = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestArtifactTamper(t *testing.T) {
	module := []byte("\x00asm\x01\x00\x00\x00 the real module")
	for _, c := range []struct {
		name   string
		tamper func([]byte) []byte
	}{
		{"flipped bit", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
		{"extended", func(b []byte) []byte { return append(b, 0) }},
		{"other module", func([]byte) []byte { return []byte("\x00asm\x01\x00\x00\x00 evil") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openTest(t, nil)
			d, err := s.PutArtifact(module)
			if err != nil {
				t.Fatal(err)
			}
			path := s.Path()
			s.Close()
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketArtifacts)
				return b.Put(d[:], c.tamper(bytes.Clone(b.Get(d[:]))))
			})

			s = reopen(t, s, nil)
			if got, err := s.Artifact(d); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Artifact of tampered bytes = %q, %v; want ErrCorrupt", got, err)
			}
			// Putting the real bytes again repairs the stored copy.
			if _, err := s.PutArtifact(module); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Artifact(d); err != nil || !bytes.Equal(got, module) {
				t.Errorf("Artifact after repair = %q, %v; want %q", got, err, module)
			}
		})
	}
}

func TestArtifactCopiedOut(t *testing.T) {
	s := openTest(t, nil)
	module := []byte("\x00asm\x01\x00\x00\x00 module")
	input := bytes.Clone(module)
	d, err := s.PutArtifact(input)
	if err != nil {
		t.Fatal(err)
	}
	input[0] = 'X' // the caller reuses its buffer

	got, err := s.Artifact(d)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i] = 0 // the caller scribbles on the result
	}
	again, err := s.Artifact(d)
	if err != nil || !bytes.Equal(again, module) {
		t.Errorf("Artifact after mutating earlier slices = %q, %v; want %q", again, err, module)
	}
}

func TestDeleteArtifactInUse(t *testing.T) {
	s := openTest(t, nil)
	d, err := s.PutArtifact([]byte("module"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutActor(Actor{Name: "echo", Artifact: d}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteArtifact(d); !errors.Is(err, ErrInUse) {
		t.Fatalf("DeleteArtifact of a used artifact = %v, want ErrInUse", err)
	}
	if ok, _ := s.HasArtifact(d); !ok {
		t.Error("the used artifact is gone")
	}
	if err := s.DeleteActor("echo"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteArtifact(d); err != nil {
		t.Errorf("DeleteArtifact after its actor is deleted = %v", err)
	}
}
