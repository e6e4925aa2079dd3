package store

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// emptyHex is the sha256 of no bytes.
const emptyHex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestDigestString(t *testing.T) {
	if got := DigestOf(nil).String(); got != emptyHex {
		t.Errorf("DigestOf(nil).String() = %s, want %s", got, emptyHex)
	}
	if !(Digest{}).IsZero() || DigestOf(nil).IsZero() {
		t.Error("IsZero is wrong")
	}
}

type parseCase struct {
	name  string
	in    string
	valid bool
}

func parseDigestCases() []parseCase {
	return []parseCase{
		{"hex", emptyHex, true},
		{"prefixed", "sha256:" + emptyHex, true},
		{"upper case", strings.ToUpper(emptyHex), true},
		{"prefixed upper case", "sha256:" + strings.ToUpper(emptyHex), true},
		{"empty", "", false},
		{"prefix only", "sha256:", false},
		{"short", emptyHex[:63], false},
		{"long", emptyHex + "0", false},
		{"not hex", "g" + emptyHex[1:], false},
		{"other algorithm", "sha512:" + emptyHex, false},
		{"double prefix", "sha256:sha256:" + emptyHex, false},
		{"upper-case prefix", "SHA256:" + emptyHex, false},
		{"space", " " + emptyHex, false},
	}
}

func TestParseDigest(t *testing.T) {
	want := DigestOf(nil)
	for _, c := range parseDigestCases() {
		t.Run(c.name, func(t *testing.T) {
			d, err := ParseDigest(c.in)
			switch {
			case c.valid && (err != nil || d != want):
				t.Errorf("ParseDigest(%q) = %s, %v; want %s", c.in, d, err, want)
			case !c.valid && !errors.Is(err, ErrInvalid):
				t.Errorf("ParseDigest(%q) = %s, %v; want ErrInvalid", c.in, d, err)
			}
		})
	}
}

func FuzzParseDigest(f *testing.F) {
	for _, c := range parseDigestCases() {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		d, err := ParseDigest(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseDigest error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if back, err := ParseDigest(d.String()); err != nil || back != d {
			t.Fatalf("ParseDigest(%s) = %s, %v after parsing %q", d, back, err, in)
		}
	})
}

func TestDigestJSON(t *testing.T) {
	in := struct{ Artifact Digest }{DigestOf(nil)}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"Artifact":"` + emptyHex + `"}`; string(b) != want {
		t.Errorf("json = %s, want %s", b, want)
	}
	var out struct{ Artifact Digest }
	if err := json.Unmarshal([]byte(`{"Artifact":"sha256:`+emptyHex+`"}`), &out); err != nil || out != in {
		t.Errorf("Unmarshal = %+v, %v; want %+v", out, err, in)
	}
	if err := json.Unmarshal([]byte(`{"Artifact":"nope"}`), &out); !errors.Is(err, ErrInvalid) {
		t.Errorf("Unmarshal of a bad digest = %v, want ErrInvalid", err)
	}
}
