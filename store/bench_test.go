package store

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// BenchmarkPutActor measures one actor write: one fsynced bbolt commit.
func BenchmarkPutActor(b *testing.B) {
	s := openTest(b, nil)
	d := putModule(b, s, "m")
	a := Actor{Name: "echo", Artifact: d, Limits: Limits{MaxInstances: 4, CallTimeout: time.Second}}
	for b.Loop() {
		if err := s.PutActor(a); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkArtifactRead measures reading a Go-sized wasm module: copy out of
// the mmap plus the sha256 check.
func BenchmarkArtifactRead(b *testing.B) {
	s := openTest(b, nil)
	module := bytes.Repeat([]byte("trellis!"), 2<<20/8)
	d, err := s.PutArtifact(module)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(module)))
	for b.Loop() {
		if _, err := s.Artifact(d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkActors measures listing the actors to restore at boot.
func BenchmarkActors(b *testing.B) {
	s := openTest(b, nil)
	d := putModule(b, s, "m")
	for _, name := range []string{"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9"} {
		if err := s.PutActor(Actor{Name: name, Artifact: d}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := s.Actors(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKVIncrement measures one counter increment: one fsynced bbolt
// commit. It is the floor ("a direct bbolt transaction") that the KV
// throughput benchmark compares actor calls against.
func BenchmarkKVIncrement(b *testing.B) {
	s := openTest(b, nil)
	key := []byte("counter")
	for b.Loop() {
		if _, err := s.KVIncrement("bench", key, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKVGet measures reading a small value from a bucket of 1000 keys:
// a read transaction plus the copy out of the mmap.
func BenchmarkKVGet(b *testing.B) {
	s := openTest(b, nil)
	for i := range 1000 {
		if err := s.KVSet("bench", fmt.Appendf(nil, "key-%04d", i), []byte("a small value, as actors keep")); err != nil {
			b.Fatal(err)
		}
	}
	key := []byte("key-0500")
	for b.Loop() {
		if _, ok, err := s.KVGet("bench", key); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
