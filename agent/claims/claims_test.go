package claims

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
)

const (
	tinyWasm = "../actor/testdata/echo.wasm"          // 322 bytes, wat2wasm
	goWasm   = "../../examples/actors/echo/echo.wasm" // TinyGo/Go, ~1.8 MB
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Tokens signed by wasmCloud's own (Rust) wascap, published in wasmCloud's
// repositories: the "Echo" actor (wascap_revision absent, rev 4) and
// "http-hello-world" (wascap_revision 3).
const (
	wasmCloudEchoToken  = "eyJ0eXAiOiJqd3QiLCJhbGciOiJFZDI1NTE5In0.eyJqdGkiOiJTakI1Zm05NzRTanU5V01nVFVjaHNiIiwiaWF0IjoxNjQ0ODQzNzQzLCJpc3MiOiJBQ09KSk42V1VQNE9ERDc1WEVCS0tUQ0NVSkpDWTVaS1E1NlhWS1lLNEJFSldHVkFPT1FIWk1DVyIsInN1YiI6Ik1CQ0ZPUE02SlcyQVBKTFhKRDNaNU80Q043Q1BZSjJCNEZUS0xKVVI1WVI1TUlUSVU3SEQzV0Q1Iiwid2FzY2FwIjp7Im5hbWUiOiJFY2hvIiwiaGFzaCI6IjRDRUM2NzNBN0RDQ0VBNkE0MTY1QkIxOTU4MzJDNzkzNjQ3MUNGN0FCNDUwMUY4MzdGOEQ2NzlGNDQwMEJDOTciLCJ0YWdzIjpbXSwiY2FwcyI6WyJ3YXNtY2xvdWQ6aHR0cHNlcnZlciJdLCJyZXYiOjQsInZlciI6IjAuMy40IiwicHJvdiI6ZmFsc2V9fQ.ZWyD6VQqzaYM1beD2x9Fdw4o_Bavy3ZG703Eg4cjhyJwUKLDUiVPVhqHFE6IXdV4cW6j93YbMT6VGq5iBDWmAg"
	wasmCloudHelloToken = "eyJ0eXAiOiJqd3QiLCJhbGciOiJFZDI1NTE5In0.eyJqdGkiOiJxdmVOakZjcW51dWhQaVJUMkU1YWJXIiwiaWF0IjoxNzIxODM0ODg5LCJpc3MiOiJBQk9HQjRXNURPWDNVTzNSVldXUUdZU01WWEhSUFFZWFZaUDVVNFZGTUpEQ1lDV0FSN1M1Q1lNTyIsInN1YiI6Ik1DNUNDNFVENUxQRFo0QzdaTkFFQTRPWlEzQkVGTFNWUTc0MlczVEVUM09OS1M0RFJCVk5NNUlDIiwid2FzY2FwIjp7Im5hbWUiOiJodHRwLWhlbGxvLXdvcmxkIiwiaGFzaCI6IkNFOTAxOTJDOTlDMEIyQzYwOEIyRTJDQjYxOUE5MjUxRkI2ODE4NTZDMTU2ODFCMUJDRDYyRUVEQTJENTEyOEUiLCJ0YWdzIjpbIndhc21jbG91ZC5jb20vZXhwZXJpbWVudGFsIl0sInJldiI6MCwidmVyIjoiMC4xLjAiLCJwcm92IjpmYWxzZX0sIndhc2NhcF9yZXZpc2lvbiI6M30.8awbkvrBnRKLpz88s7GXYCW0onpKf_nNfsj7pXhCyvq8pm4y2IotrIPCdBvWqDvDouX4VAM6DQQUHuI-VdKYAA"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newAccount(t testing.TB) nkeys.KeyPair {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func newModule(t testing.TB) *ModuleKey {
	t.Helper()
	mk, err := CreateModuleKey()
	if err != nil {
		t.Fatal(err)
	}
	return mk
}

func sign(t testing.TB, wasm []byte, c Claims, issuer nkeys.KeyPair) []byte {
	t.Helper()
	if c.Subject == "" {
		c.Subject = newModule(t).PublicKey()
	}
	out, err := Sign(wasm, c, issuer, t0)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestClaimsSignVerifyRoundTrip(t *testing.T) {
	for _, path := range []string{tinyWasm, goWasm} {
		t.Run(path, func(t *testing.T) {
			wasm := readFile(t, path)
			acct := newAccount(t)
			mod := newModule(t)
			in := Claims{Subject: mod.PublicKey(), Name: "echo", Caps: []string{"wasmcloud:keyvalue", "trellis:gpio"},
				Tags: []string{"edge"}, Rev: 7, Ver: "1.2.3", CallAlias: "echo/a"}
			signed := sign(t, wasm, in, acct)
			c, err := Verify(signed, t0)
			if err != nil {
				t.Fatal(err)
			}
			iss, _ := acct.PublicKey()
			want := in
			want.Issuer, want.IssuedAt, want.Revision, want.ID = iss, t0.Unix(), Revision, c.ID
			want.Hash, _ = Hash(wasm)
			if c.ID == "" || !jsonEqual(t, c, &want) {
				t.Fatalf("claims:\n got %+v\nwant %+v", c, want)
			}
			// Re-signing replaces the section; the hash does not change.
			again := sign(t, signed, Claims{Subject: mod.PublicKey(), Name: "echo2"}, acct)
			secs, err := ParseSections(again)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, s := range secs {
				if s.isClaims() {
					n++
				}
			}
			c2, err := Verify(again, t0)
			if err != nil || n != 1 || c2.Name != "echo2" || c2.Hash != c.Hash {
				t.Fatalf("re-signed: %d sections, %+v, %v", n, c2, err)
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// flipCodeByte returns a copy of wasm with one byte in the middle of the
// code section changed.
func flipCodeByte(t *testing.T, wasm []byte) []byte {
	t.Helper()
	secs, err := ParseSections(wasm)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secs {
		if s.ID == 10 {
			out := bytes.Clone(wasm)
			out[(s.Payload+s.End)/2] ^= 0x01
			return out
		}
	}
	t.Fatal("no code section")
	return nil
}

func TestClaimsTamper(t *testing.T) {
	wasm := readFile(t, tinyWasm)
	acct := newAccount(t)
	other := newAccount(t)
	user, _ := nkeys.CreateUser()
	mod := newModule(t)
	signed := sign(t, wasm, Claims{Subject: mod.PublicKey(), Name: "echo"}, acct)
	token, _, err := Extract(signed)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(token, ".")
	acctPub, _ := acct.PublicKey()

	// withToken replaces the module's token.
	withToken := func(tok string) []byte {
		secs, _ := ParseSections(signed)
		return appendCustomSection(stripClaims(signed, secs), SectionJWT, []byte(tok))
	}
	// resign re-encodes the claims JSON and signs them with kp.
	resign := func(edit func(m map[string]any), kp nkeys.KeyPair) string {
		cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var m map[string]any
		if err := json.Unmarshal(cb, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		cb, _ = json.Marshal(m)
		signedPart := parts[0] + "." + base64.RawURLEncoding.EncodeToString(cb)
		sig, err := kp.Sign([]byte(signedPart))
		if err != nil {
			t.Fatal(err)
		}
		return signedPart + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	flipChar := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	userPub, _ := user.PublicKey()
	otherPub, _ := other.PublicKey()

	tests := []struct {
		name string
		wasm []byte
		want error
	}{
		{"code byte", flipCodeByte(t, signed), ErrHashMismatch},
		{"section removed", wasm, ErrNoClaims},
		{"token header char", withToken(flipChar(token, 3)), ErrMalformed},
		// The claims changed under the old signature (a flipped base64
		// character may instead make invalid JSON, which is malformed).
		{"token claims changed", withToken(parts[0] + "." + editClaims(t, parts[1]) + "." + parts[2]), ErrBadSignature},
		{"token signature char", withToken(flipChar(token, len(token)-10)), ErrBadSignature},
		{"token signature trailing bits", withToken(token[:len(token)-1] + string(token[len(token)-1]^1)), ErrMalformed},
		{"token truncated", withToken(token[:len(token)-2]), ErrMalformed},
		{"token with padding", withToken(token + "=="), ErrMalformed},
		{"signed by another account", withToken(resign(func(map[string]any) {}, other)), ErrBadSignature},
		{"issuer swapped to another account", withToken(resign(func(m map[string]any) { m["iss"] = otherPub }, acct)), ErrBadSignature},
		{"user key issuer", withToken(resign(func(m map[string]any) { m["iss"] = userPub }, user)), ErrBadIssuer},
		{"subject not a module key", withToken(resign(func(m map[string]any) { m["sub"] = acctPub }, acct)), ErrMalformed},
		{"hash edited and re-signed", withToken(resign(func(m map[string]any) {
			m["wascap"].(map[string]any)["hash"] = strings.Repeat("0", 64)
		}, acct)), ErrHashMismatch},
		{"lower-case hash", withToken(resign(func(m map[string]any) {
			w := m["wascap"].(map[string]any)
			w["hash"] = strings.ToLower(w["hash"].(string))
		}, acct)), ErrHashMismatch},
		{"expired", withToken(resign(func(m map[string]any) { m["exp"] = t0.Unix() }, acct)), ErrExpired},
		{"not yet valid", withToken(resign(func(m map[string]any) { m["nbf"] = t0.Unix() + 1 }, acct)), ErrNotYetValid},
		{"alg none", withToken(base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"jwt","alg":"none"}`)) + "." + parts[1] + "."), ErrMalformed},
		{"no wascap", withToken(resign(func(m map[string]any) { delete(m, "wascap") }, acct)), ErrMalformed},
		{"two segments", withToken(parts[0] + "." + parts[1]), ErrMalformed},
		{"not wasm", []byte("hello"), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Verify(tt.wasm, t0)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %+v, %v; want %v", c, err, tt.want)
			}
			if c != nil {
				t.Fatalf("claims returned with an error: %+v", c)
			}
			t.Log(err)
		})
	}
	// Control: the untampered module, and still valid one second before exp.
	if _, err := Verify(signed, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(withToken(resign(func(m map[string]any) { m["exp"] = t0.Unix() + 1 }, acct)), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(withToken(resign(func(m map[string]any) { m["nbf"] = t0.Unix() }, acct)), t0); err != nil {
		t.Fatal(err)
	}
}

// TestClaimsEveryByteFlip flips each byte of a signed module in turn (two
// ways): none of the results may verify.
func TestClaimsEveryByteFlip(t *testing.T) {
	signed := sign(t, readFile(t, tinyWasm), Claims{Name: "echo", Caps: []string{"a"}}, newAccount(t))
	for i := range signed {
		for _, x := range []byte{0x01, 0x80} {
			b := bytes.Clone(signed)
			b[i] ^= x
			if c, err := Verify(b, t0); err == nil {
				t.Fatalf("byte %d ^ %#x still verifies: %+v", i, x, c)
			}
		}
	}
}

// TestClaimsEveryTokenCharFlip changes each character of a token to a few
// others (chosen to hit each 6-bit value's high and low bits, the separator
// and a neighbour): none may verify.
func TestClaimsEveryTokenCharFlip(t *testing.T) {
	signed := sign(t, readFile(t, tinyWasm), Claims{Name: "echo"}, newAccount(t))
	token, _, err := Extract(signed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyToken(token, t0); err != nil {
		t.Fatal(err)
	}
	for i := range token {
		for _, r := range []byte{'A', 'B', 'g', 'w', '_', '.', token[i] ^ 1} {
			if r == token[i] {
				continue
			}
			b := []byte(token)
			b[i] = r
			if _, err := VerifyToken(string(b), t0); err == nil {
				t.Fatalf("token char %d %q→%q still verifies", i, token[i], r)
			}
		}
	}
}

func TestClaimsBothSections(t *testing.T) {
	wasm := readFile(t, tinyWasm)
	acct := newAccount(t)
	signed := sign(t, wasm, Claims{Name: "new"}, acct)
	token, _, _ := Extract(signed)
	both := appendCustomSection(bytes.Clone(signed), SectionLegacyJWT, []byte(token))
	if _, err := Verify(both, t0); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "two claims sections") {
		t.Fatalf("Verify(both) = %v, want two claims sections", err)
	}
	// The hash ignores both sections.
	if h1, _ := Hash(both); h1 != mustHash(t, wasm) {
		t.Fatal("hash of the module with two sections differs")
	}
	// Signing it again keeps exactly one.
	resigned := sign(t, both, Claims{Name: "again"}, acct)
	if c, err := Verify(resigned, t0); err != nil || c.Name != "again" {
		t.Fatalf("re-signed: %+v, %v", c, err)
	}
	// A module with the legacy section alone verifies.
	secs, _ := ParseSections(signed)
	legacy := appendCustomSection(stripClaims(signed, secs), SectionLegacyJWT, []byte(token))
	r, err := Check(legacy, t0)
	if err != nil || r.Section != SectionLegacyJWT {
		t.Fatalf("legacy: %+v, %v", r, err)
	}
}

func mustHash(t *testing.T, wasm []byte) string {
	t.Helper()
	h, err := Hash(wasm)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestClaimsCheckReport(t *testing.T) {
	acct := newAccount(t)
	signed := sign(t, readFile(t, tinyWasm), Claims{Name: "echo", Expires: t0.Unix() - 10}, acct)
	r, err := Check(signed, t0)
	if !errors.Is(err, ErrExpired) || !r.SignatureValid || !r.HashValid || !r.Expired || r.NotYetValid || r.Claims == nil {
		t.Fatalf("expired: %+v, %v", r, err)
	}
	r, err = Check(flipCodeByte(t, signed), t0)
	if !errors.Is(err, ErrHashMismatch) || !r.SignatureValid || r.HashValid || !r.Expired {
		t.Fatalf("tampered+expired: %+v, %v", r, err)
	}
	nbf := sign(t, readFile(t, tinyWasm), Claims{NotBefore: t0.Unix() + 3600}, acct)
	if _, err := Verify(nbf, t0); !errors.Is(err, ErrNotYetValid) {
		t.Fatal(err)
	}
	if _, err := Verify(nbf, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func TestClaimsSignRefuses(t *testing.T) {
	wasm := readFile(t, tinyWasm)
	user, _ := nkeys.CreateUser()
	mod := newModule(t).PublicKey()
	acct := newAccount(t)
	acctPub, _ := acct.PublicKey()
	for name, tc := range map[string]struct {
		wasm []byte
		c    Claims
		kp   nkeys.KeyPair
		want error
	}{
		"user issuer":        {wasm, Claims{Subject: mod}, user, ErrBadIssuer},
		"account as subject": {wasm, Claims{Subject: acctPub}, acct, ErrBadKey},
		"no subject":         {wasm, Claims{}, acct, ErrBadKey},
		"not wasm":           {[]byte("\x00asm\x02\x00\x00\x00"), Claims{Subject: mod}, acct, ErrMalformed},
	} {
		if _, err := Sign(tc.wasm, tc.c, tc.kp, t0); !errors.Is(err, tc.want) {
			t.Errorf("%s: Sign = %v, want %v", name, err, tc.want)
		}
	}
}

// TestClaimsWasmCloudTokens verifies tokens signed by wasmCloud's own Rust
// wascap: the JWT encoding, the Ed25519 signature over "header.claims" and
// the account and module key encodings all match.
func TestClaimsWasmCloudTokens(t *testing.T) {
	for _, tc := range []struct {
		token, name, iss, sub, hash string
		rev, revision               int
	}{
		{wasmCloudEchoToken, "Echo", "ACOJJN6WUP4ODD75XEBKKTCCUJJCY5ZKQ56XVKYK4BEJWGVAOOQHZMCW",
			"MBCFOPM6JW2APJLXJD3Z5O4CN7CPYJ2B4FTKLJUR5YR5MITIU7HD3WD5", "4CEC673A7DCCEA6A4165BB195832C7936471CF7AB4501F837F8D679F4400BC97", 4, 0},
		{wasmCloudHelloToken, "http-hello-world", "ABOGB4W5DOX3UO3RVWWQGYSMVXHRPQYXVZP5U4VFMJDCYCWAR7S5CYMO",
			"MC5CC4UD5LPDZ4C7ZNAEA4OZQ3BEFLSVQ742W3TET3ONKS4DRBVNM5IC", "CE90192C99C0B2C608B2E2CB619A9251FB681856C15681B1BCD62EEDA2D5128E", 0, 3},
	} {
		c, err := VerifyToken(tc.token, t0)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.Name != tc.name || c.Issuer != tc.iss || c.Subject != tc.sub || c.Hash != tc.hash || c.Rev != tc.rev || c.Revision != tc.revision {
			t.Fatalf("%s: %+v", tc.name, c)
		}
		// One changed character in the signature and it no longer verifies.
		b := []byte(tc.token)
		b[len(b)-5] ^= 0x20 // swaps letter case
		if _, err := VerifyToken(string(b), t0); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("%s tampered: %v", tc.name, err)
		}
	}
}

// TestClaimsOtherImplementation builds a signed module by hand, without this
// package's encoder: the JWT from JSON text and crypto/ed25519 with the raw
// key of an nkeys seed, the section bytes written out one by one, after
// another custom section that must stay in the hash. Verify must accept it,
// and the hash rule must be "SHA-256 of the module with exactly that section
// cut out", byte for byte.
func TestClaimsOtherImplementation(t *testing.T) {
	// A published account seed: nkeys' own test vector.
	seed := []byte("SAAPN4W3EG6KCJGUQTKTJ5GSB5NHK5CHAJL4DBGFUM3HHROI4XUEP4OBK4")
	acct, err := nkeys.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	iss, _ := acct.PublicKey()
	_, raw, err := nkeys.DecodeSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	priv := ed25519.NewKeyFromSeed(raw)
	sub := EncodeModuleKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public().(ed25519.PublicKey))

	// The module: the tiny echo actor plus a "producers" custom section.
	module := readFile(t, tinyWasm)
	producers := []byte{0x00, 0x0d, 0x09, 'p', 'r', 'o', 'd', 'u', 'c', 'e', 'r', 's', 'x', 'y', 'z'}
	module = append(bytes.Clone(module), producers...)
	sum := sha256.Sum256(module)
	hash := strings.ToUpper(hex.EncodeToString(sum[:]))

	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"typ":"jwt","alg":"Ed25519"}`))
	body := enc.EncodeToString([]byte(`{"jti":"x1","iat":1700000000,"iss":"` + iss + `","sub":"` + sub +
		`","wascap":{"name":"hand","hash":"` + hash + `","tags":[],"caps":["wasmcloud:messaging"],"rev":1,"ver":"0.1.0","prov":false},"wascap_revision":3}`))
	jwt := header + "." + body + "." + enc.EncodeToString(ed25519.Sign(priv, []byte(header+"."+body)))

	// The section: id 0, size, name length, name, token. The token is over
	// 128 bytes, so the size takes two LEB128 bytes.
	name := "wasmcloud_jwt"
	payload := append([]byte{byte(len(name))}, name...)
	payload = append(payload, jwt...)
	size := len(payload)
	section := []byte{0x00, byte(size&0x7f | 0x80), byte(size >> 7)}
	if size >= 1<<14 {
		t.Fatal("token too long for this hand encoder")
	}
	section = append(section, payload...)
	// Put the section between the code and the producers section, as a
	// tool might.
	cut := len(module) - len(producers)
	signed := append(append(append([]byte{}, module[:cut]...), section...), module[cut:]...)

	r, err := Check(signed, t0)
	if err != nil {
		t.Fatal(err)
	}
	c := r.Claims
	if c.Name != "hand" || c.Issuer != iss || c.Subject != sub || c.Caps[0] != "wasmcloud:messaging" || c.Revision != 3 || r.Section != SectionJWT {
		t.Fatalf("claims %+v", c)
	}
	cutOut := append(append([]byte{}, signed[:cut]...), signed[cut+len(section):]...)
	if !bytes.Equal(cutOut, module) {
		t.Fatal("test bug: cutting the section out does not give the module back")
	}
	if r.ComputedHash != hash {
		t.Fatalf("hash rule: computed %s, want %s (SHA-256 of the module with the section cut out)", r.ComputedHash, hash)
	}
	// This package's Sign appends the section at the end and keeps
	// producers: the same hash.
	ours := sign(t, module, Claims{Name: "ours"}, acct)
	if c2, err := Verify(ours, t0); err != nil || c2.Hash != hash {
		t.Fatalf("Sign: %+v, %v", c2, err)
	}
	if !bytes.HasPrefix(ours, module) {
		t.Fatal("Sign changed the bytes of a canonical module")
	}
}

// TestClaimsPaddedSizes: a module whose section sizes are padded LEB128 (as
// LLVM's linker writes them) hashes as wascap hashes it, with minimal sizes,
// and Sign writes the minimal form, so the signed module hashes the same
// whichever rule a verifier uses.
func TestClaimsPaddedSizes(t *testing.T) {
	module := readFile(t, tinyWasm)
	secs, err := ParseSections(module)
	if err != nil {
		t.Fatal(err)
	}
	padded := append([]byte{}, wasmHeader[:]...)
	for _, s := range secs {
		n := uint32(s.End - s.Payload)
		padded = append(padded, s.ID, byte(n)|0x80, byte(n>>7)|0x80, byte(n>>14)|0x80, byte(n>>21)|0x80, byte(n>>28))
		padded = append(padded, module[s.Payload:s.End]...)
	}
	if bytes.Equal(padded, module) {
		t.Fatal("test bug: padding changed nothing")
	}
	if mustHash(t, padded) != mustHash(t, module) {
		t.Fatal("padded sizes hash differently")
	}
	signed := sign(t, padded, Claims{}, newAccount(t))
	if !bytes.HasPrefix(signed, module) {
		t.Fatal("Sign did not re-encode sizes minimally")
	}
	if _, err := Verify(signed, t0); err != nil {
		t.Fatal(err)
	}
}

func TestParseSections(t *testing.T) {
	hdr := string(wasmHeader[:])
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"empty module", hdr, true},
		{"custom", hdr + "\x00\x03\x01ab", true},
		{"custom empty data", hdr + "\x00\x02\x01a", true},
		{"too short", "\x00asm", false},
		{"component", "\x00asm\x0d\x00\x01\x00", false},
		{"size past end", hdr + "\x01\x05\x00", false},
		{"truncated size", hdr + "\x01\x80", false},
		{"size overflow", hdr + "\x01\xff\xff\xff\xff\x7f", false},
		{"six byte size", hdr + "\x01\x80\x80\x80\x80\x80\x00", false},
		{"name past section", hdr + "\x00\x02\x05a", false},
		{"name not utf-8", hdr + "\x00\x02\x01\xff", false},
		{"no name length", hdr + "\x00\x00", false},
	} {
		_, err := ParseSections([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v does not wrap ErrMalformed", tc.name, err)
		}
	}
}

func FuzzParseSections(f *testing.F) {
	hdr := string(wasmHeader[:])
	for _, s := range []string{hdr, hdr + "\x00\x03\x01ab", hdr + "\x01\x80", hdr + "\x00\x02\x05a", "\x00asm"} {
		f.Add([]byte(s))
	}
	f.Add(readFile(f, tinyWasm))
	signed := sign(f, readFile(f, tinyWasm), Claims{Name: "fuzz"}, newAccount(f))
	f.Add(signed)
	f.Fuzz(func(t *testing.T, b []byte) {
		secs, err := ParseSections(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		off := len(wasmHeader)
		for _, s := range secs {
			if s.Start != off || s.Payload <= s.Start || s.End < s.Payload || s.End > len(b) {
				t.Fatalf("bad section %+v at %d", s, off)
			}
			_ = s.Data(b)
			off = s.End
		}
		if off != len(b) {
			t.Fatalf("sections end at %d of %d", off, len(b))
		}
		// Stripping gives a module that parses and hashes the same.
		stripped := stripClaims(b, secs)
		h1, err := Hash(stripped)
		if err != nil {
			t.Fatalf("stripped module does not parse: %v", err)
		}
		if h1 != hashOf(stripped) || h1 != mustHashT(t, b) {
			t.Fatal("hash not stable under stripping")
		}
		_, _ = Check(b, t0)
	})
}

func mustHashT(t *testing.T, b []byte) string {
	h, err := Hash(b)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func FuzzDecodeToken(f *testing.F) {
	// Deterministic keys and claims: the fuzzing workers rebuild this token
	// and must get the same string as the coordinator.
	acct, err := nkeys.FromSeed([]byte("SAAPN4W3EG6KCJGUQTKTJ5GSB5NHK5CHAJL4DBGFUM3HHROI4XUEP4OBK4"))
	if err != nil {
		f.Fatal(err)
	}
	mk, err := createModuleKey(bytes.NewReader(bytes.Repeat([]byte{9}, 32)))
	if err != nil {
		f.Fatal(err)
	}
	signed := sign(f, readFile(f, tinyWasm), Claims{ID: "fuzz", Subject: mk.PublicKey(), Name: "fuzz", Caps: []string{"x"}}, acct)
	token, _, _ := Extract(signed)
	for _, s := range []string{token, wasmCloudEchoToken, wasmCloudHelloToken, "", ".", "..", "a.b.c", "e30.e30.", strings.Repeat(".", 10)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeToken(s)
		if err == nil && c == nil {
			t.Fatal("nil claims without an error")
		}
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrBadIssuer) {
			t.Fatalf("untyped error %v", err)
		}
		if err == nil && s != token && s != wasmCloudEchoToken && s != wasmCloudHelloToken {
			t.Fatalf("a token nobody signed verifies: %q", s)
		}
	})
}

// editClaims changes one claim of an encoded claims segment and encodes it
// again, without signing.
func editClaims(t *testing.T, seg string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["jti"] = fmt.Sprint(m["jti"], "x")
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
