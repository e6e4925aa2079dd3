package store

import (
	"errors"
	"slices"
	"testing"
)

func TestCapStateRoundTripAndIsolation(t *testing.T) {
	s := openTest(t, nil)
	put := func(kind, actor, id, v string) {
		t.Helper()
		if err := s.CapStatePut(kind, actor, id, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	put("timer", "ab", "t1", "x")
	put("timer", "a", "t2", "y")
	put("timer", "a", "t1", "z")
	put("timer", "a", "t1", "z2") // replaces
	put("subscription", "a", "s", "w")

	s = reopen(t, s, nil)
	got, err := s.CapStateList("timer")
	if err != nil {
		t.Fatal(err)
	}
	want := []CapState{{"a", "t1", []byte("z2")}, {"a", "t2", []byte("y")}, {"ab", "t1", []byte("x")}}
	if !slices.EqualFunc(got, want, func(a, b CapState) bool {
		return a.Actor == b.Actor && a.ID == b.ID && string(a.Value) == string(b.Value)
	}) {
		t.Fatalf("timers after reopen = %q, want %q", got, want)
	}

	// Deleting actor a's timers leaves ab's (a prefix of its name) and a's
	// subscriptions.
	if err := s.CapStateDeleteActor("timer", "a"); err != nil {
		t.Fatal(err)
	}
	got, _ = s.CapStateList("timer")
	if len(got) != 1 || got[0].Actor != "ab" {
		t.Errorf("timers after deleting actor a = %q, want only ab's", got)
	}
	if subs, _ := s.CapStateList("subscription"); len(subs) != 1 {
		t.Errorf("subscriptions after deleting a's timers = %q, want 1", subs)
	}
	if ok, err := s.CapStateDelete("timer", "ab", "t1"); !ok || err != nil {
		t.Errorf("delete existing = %v, %v", ok, err)
	}
	if ok, err := s.CapStateDelete("timer", "ab", "t1"); ok || err != nil {
		t.Errorf("delete again = %v, %v; want false, nil", ok, err)
	}
	if got, err := s.CapStateList("never-written"); len(got) != 0 || err != nil {
		t.Errorf("list of an unused kind = %q, %v", got, err)
	}
}

func TestCapStateRejectsBadInput(t *testing.T) {
	s := openTest(t, nil)
	for _, tc := range []struct{ kind, actor, id string }{
		{"", "a", "x"}, {"timer", "Bad Name", "x"}, {"timer", "a", ""}, {"timer", "a", "x\x00y"},
	} {
		if err := s.CapStatePut(tc.kind, tc.actor, tc.id, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("put %q = %v, want ErrInvalid", tc, err)
		}
	}
	if err := s.CapStatePut("timer", "a", "x", make([]byte, maxCapValueLen+1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("put of an oversized value = %v, want ErrInvalid", err)
	}
}
