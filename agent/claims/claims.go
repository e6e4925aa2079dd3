// Package claims parses, verifies and creates the signed claims of wasmCloud
// 0.x actors (wascap): a JWT in the module's custom section "wasmcloud_jwt"
// (or the older "jwt"), signed with Ed25519 by an account key ("A…"), whose
// subject is the module's key ("M…") and whose "wascap" claims hold the
// module's name, capabilities and the hash of the module without the token.
//
// Verify checks everything, the module hash included (wasmCloud checks it only
// for wascap_revision 3 and later). The package depends on nothing of Trellis;
// the agent and the command line import it.
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
	"strings"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/nats-io/nuid"
)

// Revision is the wascap_revision Sign writes: the revision from which
// wasmCloud checks the module hash.
const Revision = 3

// MaxTokenSize bounds the token Verify accepts.
const MaxTokenSize = 64 << 10

// Reasons a module's claims are refused. Errors wrap exactly one of them,
// with detail.
var (
	ErrNoClaims     = errors.New("claims: module has no claims section")
	ErrMalformed    = errors.New("claims: malformed")
	ErrBadSignature = errors.New("claims: bad signature")
	ErrBadIssuer    = errors.New("claims: issuer is not an account key")
	ErrHashMismatch = errors.New("claims: module hash mismatch")
	ErrExpired      = errors.New("claims: expired")
	ErrNotYetValid  = errors.New("claims: not yet valid")
)

// Claims are the decoded claims of an actor module. Times are seconds since
// the Unix epoch; zero means unset.
type Claims struct {
	ID        string   `json:"jti"`
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	IssuedAt  int64    `json:"iat"`
	Expires   int64    `json:"exp,omitempty"`
	NotBefore int64    `json:"nbf,omitempty"`
	Name      string   `json:"name,omitempty"`
	Hash      string   `json:"hash"`
	Tags      []string `json:"tags,omitempty"`
	Caps      []string `json:"caps,omitempty"`
	Rev       int      `json:"rev,omitempty"`
	Ver       string   `json:"ver,omitempty"`
	CallAlias string   `json:"call_alias,omitempty"`
	Provider  bool     `json:"prov,omitempty"`
	// Revision is the token's wascap_revision (0 when absent).
	Revision int `json:"wascap_revision,omitempty"`
}

// wireHeader and wireClaims are the JSON of the token, fields in the order
// wascap writes them.
type wireHeader struct {
	Typ string `json:"typ"`
	Alg string `json:"alg"`
}

type wireClaims struct {
	Exp      *int64     `json:"exp,omitempty"`
	ID       string     `json:"jti"`
	IAT      int64      `json:"iat"`
	Iss      string     `json:"iss"`
	Sub      string     `json:"sub"`
	NBF      *int64     `json:"nbf,omitempty"`
	Wascap   *wireActor `json:"wascap,omitempty"`
	Revision *int       `json:"wascap_revision,omitempty"`
}

type wireActor struct {
	Name      *string  `json:"name,omitempty"`
	Hash      string   `json:"hash"`
	Tags      []string `json:"tags,omitempty"`
	Caps      []string `json:"caps,omitempty"`
	Rev       *int     `json:"rev,omitempty"`
	Ver       *string  `json:"ver,omitempty"`
	CallAlias *string  `json:"call_alias,omitempty"`
	Prov      bool     `json:"prov"`
}

// Report is what Check found in a module. Fields are set as far as the
// check got: a token that cannot be decoded leaves Claims nil.
type Report struct {
	Section        string  // the claims section's name
	Token          string  // the raw JWT
	Claims         *Claims // the decoded claims; trust them only when Check returned nil
	SignatureValid bool    // signed by Claims.Issuer, an account key
	ComputedHash   string  // the module's hash, computed here
	HashValid      bool    // ComputedHash equals Claims.Hash
	Expired        bool
	NotYetValid    bool
}

// Extract returns the token and the name of the section that holds it. A
// module with more than one claims section is refused: which one would apply
// is ambiguous, and no wascap version writes two.
func Extract(wasm []byte) (token, section string, err error) {
	secs, err := ParseSections(wasm)
	if err != nil {
		return "", "", err
	}
	return extract(wasm, secs)
}

func extract(wasm []byte, secs []Section) (token, section string, err error) {
	var found *Section
	for i := range secs {
		if !secs[i].isClaims() {
			continue
		}
		if found != nil {
			return "", "", fmt.Errorf("%w: two claims sections (%q and %q)", ErrMalformed, found.Name, secs[i].Name)
		}
		found = &secs[i]
	}
	if found == nil {
		return "", "", ErrNoClaims
	}
	data := found.Data(wasm)
	if len(data) > MaxTokenSize {
		return "", "", fmt.Errorf("%w: token of %d bytes (limit %d)", ErrMalformed, len(data), MaxTokenSize)
	}
	return string(data), found.Name, nil
}

// Hash returns the module's wascap hash: upper-case hex SHA-256 of the module
// without its claims sections (see stripClaims for the exact bytes).
func Hash(wasm []byte) (string, error) {
	secs, err := ParseSections(wasm)
	if err != nil {
		return "", err
	}
	return hashOf(stripClaims(wasm, secs)), nil
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// Verify checks a module's claims at time now and returns them: the section
// is present, the token well-formed, signed with Ed25519 by its issuer (an
// account key), its subject a module key, the module hash matches, and now is
// within nbf and exp.
func Verify(wasm []byte, now time.Time) (*Claims, error) {
	r, err := Check(wasm, now)
	if err != nil {
		return nil, err
	}
	return r.Claims, nil
}

// Check is Verify returning everything it found, for display: the report is
// filled as far as the check got, and the error is the first reason the
// module is refused (nil when it verifies). Signature, then hash, then times.
func Check(wasm []byte, now time.Time) (Report, error) {
	var r Report
	secs, err := ParseSections(wasm)
	if err != nil {
		return r, err
	}
	r.ComputedHash = hashOf(stripClaims(wasm, secs))
	if r.Token, r.Section, err = extract(wasm, secs); err != nil {
		return r, err
	}
	c, sigErr := decodeToken(r.Token)
	if c == nil {
		return r, sigErr
	}
	r.Claims = c
	r.SignatureValid = sigErr == nil
	r.HashValid = c.Hash == r.ComputedHash
	timeErr := checkTimes(c, now)
	r.Expired = errors.Is(timeErr, ErrExpired)
	r.NotYetValid = errors.Is(timeErr, ErrNotYetValid)
	switch {
	case sigErr != nil:
		return r, sigErr
	case !r.HashValid:
		return r, fmt.Errorf("%w: claims say %s, module is %s", ErrHashMismatch, c.Hash, r.ComputedHash)
	case timeErr != nil:
		return r, timeErr
	}
	return r, nil
}

// VerifyToken checks a token on its own (no module hash): well-formed, signed
// by its account-key issuer, subject a module key, valid at now.
func VerifyToken(token string, now time.Time) (*Claims, error) {
	c, err := decodeToken(token)
	if err != nil {
		return nil, err
	}
	if err := checkTimes(c, now); err != nil {
		return nil, err
	}
	return c, nil
}

func checkTimes(c *Claims, now time.Time) error {
	t := now.Unix()
	if c.Expires != 0 && t >= c.Expires {
		return fmt.Errorf("%w: at %s", ErrExpired, time.Unix(c.Expires, 0).UTC().Format(time.RFC3339))
	}
	if c.NotBefore != 0 && t < c.NotBefore {
		return fmt.Errorf("%w: until %s", ErrNotYetValid, time.Unix(c.NotBefore, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// b64 is base64url without padding, refusing non-zero trailing bits so that
// no two token strings decode to the same bytes.
var b64 = base64.RawURLEncoding.Strict()

func decodeSegment(what, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("%w: %s: byte %q at %d is not base64url", ErrMalformed, what, c, i)
		}
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
	}
	return b, nil
}

// decodeToken decodes and checks a token's structure and signature. It
// returns the claims with a nil error when all is well, the claims with
// ErrBadSignature or ErrBadIssuer when they decoded but are not properly
// signed, and nil claims when the token is malformed.
func decodeToken(token string) (*Claims, error) {
	if len(token) > MaxTokenSize {
		return nil, fmt.Errorf("%w: token of %d bytes (limit %d)", ErrMalformed, len(token), MaxTokenSize)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: token has %d segments, want 3", ErrMalformed, len(parts))
	}
	hb, err := decodeSegment("header", parts[0])
	if err != nil {
		return nil, err
	}
	var h wireHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if h.Alg != "Ed25519" {
		return nil, fmt.Errorf("%w: header alg %q, want Ed25519", ErrMalformed, h.Alg)
	}
	if !strings.EqualFold(h.Typ, "jwt") {
		return nil, fmt.Errorf("%w: header typ %q, want jwt", ErrMalformed, h.Typ)
	}
	cb, err := decodeSegment("claims", parts[1])
	if err != nil {
		return nil, err
	}
	sig, err := decodeSegment("signature", parts[2])
	if err != nil {
		return nil, err
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signature of %d bytes, want %d", ErrMalformed, len(sig), ed25519.SignatureSize)
	}
	var w wireClaims
	dec := json.NewDecoder(bytes.NewReader(cb))
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: claims: data after the JSON object", ErrMalformed)
	}
	c, err := fromWire(&w)
	if err != nil {
		return nil, err
	}
	if !IsValidModuleKey(c.Subject) {
		return nil, fmt.Errorf("%w: subject %q is not a module key (M…)", ErrMalformed, c.Subject)
	}
	if !nkeys.IsValidPublicAccountKey(c.Issuer) {
		return c, fmt.Errorf("%w: %q", ErrBadIssuer, c.Issuer)
	}
	pub, err := nkeys.Decode(nkeys.PrefixByteAccount, []byte(c.Issuer))
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return c, fmt.Errorf("%w: %q", ErrBadIssuer, c.Issuer)
	}
	if !ed25519.Verify(pub, []byte(token[:len(parts[0])+1+len(parts[1])]), sig) {
		return c, fmt.Errorf("%w: not signed by issuer %s", ErrBadSignature, c.Issuer)
	}
	return c, nil
}

func fromWire(w *wireClaims) (*Claims, error) {
	if w.Wascap == nil {
		return nil, fmt.Errorf("%w: no wascap claims", ErrMalformed)
	}
	c := &Claims{ID: w.ID, Issuer: w.Iss, Subject: w.Sub, IssuedAt: w.IAT, Hash: w.Wascap.Hash,
		Tags: w.Wascap.Tags, Caps: w.Wascap.Caps, Provider: w.Wascap.Prov}
	if w.Exp != nil {
		c.Expires = *w.Exp
	}
	if w.NBF != nil {
		c.NotBefore = *w.NBF
	}
	if c.IssuedAt < 0 || c.Expires < 0 || c.NotBefore < 0 {
		return nil, fmt.Errorf("%w: negative time", ErrMalformed)
	}
	if w.Revision != nil {
		c.Revision = *w.Revision
	}
	a := w.Wascap
	if a.Name != nil {
		c.Name = *a.Name
	}
	if a.Rev != nil {
		c.Rev = *a.Rev
	}
	if a.Ver != nil {
		c.Ver = *a.Ver
	}
	if a.CallAlias != nil {
		c.CallAlias = *a.CallAlias
	}
	return c, nil
}

// Sign embeds claims in a module, signed by issuer (an account key): it
// removes any claims sections, computes the hash of what is left, and appends
// a "wasmcloud_jwt" section. It fills Issuer, Hash, IssuedAt (from now, when
// zero), ID (when empty) and Revision; c.Subject must be a module key. Every
// other section is kept, its size re-encoded minimally, as wascap does.
func Sign(wasm []byte, c Claims, issuer nkeys.KeyPair, now time.Time) ([]byte, error) {
	secs, err := ParseSections(wasm)
	if err != nil {
		return nil, fmt.Errorf("claims: sign: %w", err)
	}
	iss, err := issuer.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("claims: sign: issuer: %w", err)
	}
	if !nkeys.IsValidPublicAccountKey(iss) {
		return nil, fmt.Errorf("claims: sign: %w: %q", ErrBadIssuer, iss)
	}
	if !IsValidModuleKey(c.Subject) {
		return nil, fmt.Errorf("claims: sign: subject %q: %w", c.Subject, ErrBadKey)
	}
	if c.IssuedAt < 0 || c.Expires < 0 || c.NotBefore < 0 {
		return nil, fmt.Errorf("claims: sign: negative time")
	}
	stripped := stripClaims(wasm, secs)
	c.Issuer, c.Hash, c.Revision = iss, hashOf(stripped), Revision
	if c.IssuedAt == 0 {
		c.IssuedAt = now.Unix()
	}
	if c.ID == "" {
		c.ID = nuid.Next()
	}
	token, err := encodeToken(&c, issuer)
	if err != nil {
		return nil, fmt.Errorf("claims: sign: %w", err)
	}
	return appendCustomSection(stripped, SectionJWT, []byte(token)), nil
}

func encodeToken(c *Claims, issuer nkeys.KeyPair) (string, error) {
	rev, revision := c.Rev, c.Revision
	a := &wireActor{Hash: c.Hash, Tags: c.Tags, Caps: c.Caps, Rev: &rev, Prov: c.Provider}
	if a.Tags == nil {
		a.Tags = []string{}
	}
	if a.Caps == nil {
		a.Caps = []string{}
	}
	if c.Name != "" {
		a.Name = &c.Name
	}
	if c.Ver != "" {
		a.Ver = &c.Ver
	}
	if c.CallAlias != "" {
		a.CallAlias = &c.CallAlias
	}
	w := wireClaims{ID: c.ID, IAT: c.IssuedAt, Iss: c.Issuer, Sub: c.Subject, Wascap: a, Revision: &revision}
	if c.Expires != 0 {
		w.Exp = &c.Expires
	}
	if c.NotBefore != 0 {
		w.NBF = &c.NotBefore
	}
	hb, err := json.Marshal(wireHeader{Typ: "jwt", Alg: "Ed25519"})
	if err != nil {
		return "", err
	}
	cb, err := json.Marshal(w)
	if err != nil {
		return "", err
	}
	signed := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	sig, err := issuer.Sign([]byte(signed))
	if err != nil {
		return "", err
	}
	return signed + "." + b64.EncodeToString(sig), nil
}
