package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// putModule stores a distinct artifact and returns its digest.
func putModule(t testing.TB, s *Store, name string) Digest {
	t.Helper()
	d, err := s.PutArtifact([]byte("\x00asm\x01\x00\x00\x00" + name))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestActorNames(t *testing.T) {
	for _, c := range []struct {
		name  string
		valid bool
	}{
		{"a", true},
		{"0", true},
		{"echo", true},
		{"my-actor_2", true},
		{strings.Repeat("a", 63), true},
		{"", false},
		{strings.Repeat("a", 64), false},
		{"Echo", false},
		{"-echo", false},
		{"_echo", false},
		{"my actor", false},
		{"my.actor", false},
		{"echo*", false},
		{"echo>", false},
		{"echo\n", false},
		{"écho", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := validateActorName(c.name)
			if c.valid && err != nil {
				t.Errorf("validateActorName(%q) = %v, want nil", c.name, err)
			}
			if !c.valid && !errors.Is(err, ErrInvalid) {
				t.Errorf("validateActorName(%q) = %v, want ErrInvalid", c.name, err)
			}
		})
	}
}

func TestPutActorRejects(t *testing.T) {
	s := openTest(t, nil)
	stored := putModule(t, s, "stored")
	missing := DigestOf([]byte("never stored"))
	for _, c := range []struct {
		name    string
		actor   Actor
		want    error
		mention []string // the field and the value
	}{
		{"empty name", Actor{Artifact: stored}, ErrInvalid, []string{"Name", `""`}},
		{"upper case", Actor{Name: "Echo", Artifact: stored}, ErrInvalid, []string{"Name", `"Echo"`}},
		{"space", Actor{Name: "my actor", Artifact: stored}, ErrInvalid, []string{"Name", `"my actor"`}},
		{"wildcard", Actor{Name: "*", Artifact: stored}, ErrInvalid, []string{"Name", `"*"`}},
		{"full wildcard", Actor{Name: "a>", Artifact: stored}, ErrInvalid, []string{"Name", `"a>"`}},
		{"subject separator", Actor{Name: "a.b", Artifact: stored}, ErrInvalid, []string{"Name", `"a.b"`}},
		{"too long", Actor{Name: strings.Repeat("x", 64), Artifact: stored}, ErrInvalid, []string{"Name", strings.Repeat("x", 64)}},
		{"zero artifact", Actor{Name: "echo"}, ErrInvalid, []string{"Artifact", "echo"}},
		{"missing artifact", Actor{Name: "echo", Artifact: missing}, ErrNotFound, []string{missing.String(), "echo"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := s.PutActor(c.actor)
			if !errors.Is(err, c.want) {
				t.Fatalf("PutActor = %v, want %v", err, c.want)
			}
			for _, m := range c.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
	if actors, err := s.Actors(); err != nil || len(actors) != 0 {
		t.Errorf("Actors after rejected puts = %v, %v; want none", actors, err)
	}
}

func TestRevisions(t *testing.T) {
	s := openTest(t, nil)
	d := putModule(t, s, "m")
	// The steps run in order against one store.
	for _, step := range []struct {
		name   string
		actor  string
		given  uint64 // 0: let the store assign
		delete bool   // delete the actor instead of putting it
		want   uint64
	}{
		{name: "first put assigns 1", actor: "echo", want: 1},
		{name: "next put assigns 2", actor: "echo", want: 2},
		{name: "other names count alone", actor: "blink", want: 1},
		{name: "explicit is kept", actor: "echo", given: 10, want: 10},
		{name: "assigned follows explicit", actor: "echo", want: 11},
		{name: "lower explicit is kept", actor: "echo", given: 5, want: 5},
		{name: "assigned follows the highest", actor: "echo", want: 12},
		{name: "equal explicit is kept", actor: "echo", given: 12, want: 12},
		{name: "delete", actor: "echo", delete: true},
		{name: "assigned after delete is not reused", actor: "echo", want: 13},
	} {
		t.Run(step.name, func(t *testing.T) {
			if step.delete {
				if err := s.DeleteActor(step.actor); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Actor(step.actor); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Actor after delete = %v, want ErrNotFound", err)
				}
				return
			}
			if err := s.PutActor(Actor{Name: step.actor, Artifact: d, Revision: step.given}); err != nil {
				t.Fatal(err)
			}
			a, err := s.Actor(step.actor)
			if err != nil {
				t.Fatal(err)
			}
			if a.Revision != step.want {
				t.Errorf("Revision = %d, want %d", a.Revision, step.want)
			}
		})
	}
}

func TestActorsSortedAndStamped(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("CET", 3600))
	s := openTest(t, &Options{Now: func() time.Time { return now }})
	d := putModule(t, s, "m")
	for _, name := range []string{"zeta", "alpha", "m-2", "m_1", "0day"} {
		// UpdatedAt from the caller is ignored.
		if err := s.PutActor(Actor{Name: name, Artifact: d, UpdatedAt: now.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	actors, err := s.Actors()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range actors {
		names = append(names, a.Name)
		if !a.UpdatedAt.Equal(now) || a.UpdatedAt.Location() != time.UTC {
			t.Errorf("%s: UpdatedAt = %v, want %v in UTC", a.Name, a.UpdatedAt, now)
		}
	}
	if got, want := strings.Join(names, ","), "0day,alpha,m-2,m_1,zeta"; got != want {
		t.Errorf("Actors() order = %s, want %s", got, want)
	}
}

func TestActorNotFound(t *testing.T) {
	s := openTest(t, nil)
	for _, c := range []struct {
		name string
		call func() error
		want error
	}{
		{"missing", func() error { _, err := s.Actor("nobody"); return err }, ErrNotFound},
		{"invalid name", func() error { _, err := s.Actor("No Body"); return err }, ErrInvalid},
		{"delete missing", func() error { return s.DeleteActor("nobody") }, nil},
		{"delete invalid name", func() error { return s.DeleteActor("*") }, ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, c.want) {
				t.Errorf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestCorruptActorRecords(t *testing.T) {
	s := openTest(t, nil)
	d := putModule(t, s, "m")
	for _, name := range []string{"good-a", "bad-garbage", "bad-other-name", "good-z"} {
		if err := s.PutActor(Actor{Name: name, Artifact: d}); err != nil {
			t.Fatal(err)
		}
	}
	other, err := encodeActor(Actor{Name: "imposter", Artifact: d, Revision: 1})
	if err != nil {
		t.Fatal(err)
	}
	path := s.Path()
	s.Close()
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketActors)
		if err := b.Put([]byte("bad-garbage"), []byte{0xc1, 0xff}); err != nil {
			return err
		}
		return b.Put([]byte("bad-other-name"), other)
	})
	s = reopen(t, s, nil)

	for _, name := range []string{"bad-garbage", "bad-other-name"} {
		if _, err := s.Actor(name); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), name) {
			t.Errorf("Actor(%q) = %v, want ErrCorrupt naming it", name, err)
		}
	}
	actors, err := s.Actors()
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("Actors() error = %v, want ErrCorrupt", err)
	}
	if len(actors) != 2 || actors[0].Name != "good-a" || actors[1].Name != "good-z" {
		t.Errorf("Actors() = %+v, want the two good records", actors)
	}
	// A corrupt record blocks deleting artifacts (it might refer to them) until it is deleted.
	if err := s.DeleteArtifact(DigestOf([]byte("unrelated"))); !errors.Is(err, ErrCorrupt) {
		t.Errorf("DeleteArtifact with a corrupt actor record = %v, want ErrCorrupt", err)
	}
}

// TestResultsOutliveRemap reads records, then grows the file so that bbolt
// maps it anew and unmaps the old mapping: a result that still pointed into
// the old mapping would fault or change here.
func TestResultsOutliveRemap(t *testing.T) {
	s := openTest(t, nil)
	module := []byte("\x00asm\x01\x00\x00\x00 module")
	d, err := s.PutArtifact(module)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutActor(Actor{Name: "echo", Artifact: d}); err != nil {
		t.Fatal(err)
	}
	data, err := s.Artifact(d)
	if err != nil {
		t.Fatal(err)
	}
	one, err := s.Actor("echo")
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.Actors()
	if err != nil {
		t.Fatal(err)
	}

	if _, err := s.PutArtifact(make([]byte, 4<<20)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, module) {
		t.Errorf("artifact read before the remap = %q, want %q", data, module)
	}
	if one.Name != "echo" || len(all) != 1 || all[0].Name != "echo" {
		t.Errorf("actors read before the remap = %+v, %+v", one, all)
	}
}
