package claims

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

func TestKeysModuleRoundTrip(t *testing.T) {
	k := newModule(t)
	pub := k.PublicKey()
	if len(pub) != 56 || pub[0] != 'M' || !IsValidModuleKey(pub) {
		t.Fatalf("public key %q", pub)
	}
	seed := k.Seed()
	if !bytes.HasPrefix(seed, []byte("SM")) || len(seed) != 58 {
		t.Fatalf("seed %q", seed)
	}
	k2, err := ModuleKeyFromSeed(seed)
	if err != nil || k2.PublicKey() != pub {
		t.Fatalf("from seed: %v, %v", k2, err)
	}
	raw, err := DecodeModuleKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello")
	if !ed25519.Verify(raw, msg, k.Sign(msg)) {
		t.Fatal("signature does not verify with the decoded key")
	}
	// nkeys itself refuses module keys: that is why they are decoded here.
	if nkeys.IsValidPublicKey(pub) {
		t.Log("note: nkeys now accepts module keys")
	}
}

// TestKeysMatchNkeys checks the encoding against nkeys for a prefix both
// know: the same bytes with the account prefix give nkeys' account key, and
// the seed layout gives nkeys' seed.
func TestKeysMatchNkeys(t *testing.T) {
	acct := newAccount(t)
	pub, _ := acct.PublicKey()
	rawPub, err := nkeys.Decode(nkeys.PrefixByteAccount, []byte(pub))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(encodeChecked(append([]byte{byte(nkeys.PrefixByteAccount)}, rawPub...))); got != pub {
		t.Fatalf("encode %s, nkeys %s", got, pub)
	}
	seed, _ := acct.Seed()
	_, rawSeed, _ := nkeys.DecodeSeed(seed)
	p := byte(nkeys.PrefixByteAccount)
	if got := encodeChecked(append([]byte{byte(nkeys.PrefixByteSeed) | p>>5, (p & 31) << 3}, rawSeed...)); !bytes.Equal(got, seed) {
		t.Fatalf("seed %s, nkeys %s", got, seed)
	}
	if crc16([]byte("123456789")) != 0x31c3 { // CRC-16/XMODEM check value
		t.Fatal("crc16 check value")
	}
	// Keys of real wasmCloud actors decode.
	for _, k := range []string{"MBCFOPM6JW2APJLXJD3Z5O4CN7CPYJ2B4FTKLJUR5YR5MITIU7HD3WD5", "MC5CC4UD5LPDZ4C7ZNAEA4OZQ3BEFLSVQ742W3TET3ONKS4DRBVNM5IC"} {
		if !IsValidModuleKey(k) {
			t.Fatalf("%s does not decode", k)
		}
	}
}

func TestKeysRefused(t *testing.T) {
	k := newModule(t)
	pub := k.PublicKey()
	acctPub, _ := newAccount(t).PublicKey()
	acctSeed, _ := newAccount(t).Seed()
	flip := []byte(pub)
	flip[10] = map[bool]byte{true: 'B', false: 'A'}[flip[10] == 'A']
	for name, s := range map[string]string{
		"account key":  acctPub,
		"flipped char": string(flip),
		"truncated":    pub[:55],
		"empty":        "",
		"lower case":   strings.ToLower(pub),
		"long":         strings.Repeat("M", 200),
		"seed":         string(k.Seed()),
	} {
		if _, err := DecodeModuleKey(s); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: DecodeModuleKey = %v", name, err)
		}
	}
	for name, s := range map[string][]byte{
		"account seed": acctSeed,
		"public key":   []byte(pub),
		"flipped":      append([]byte{}, bytes.Replace(k.Seed(), k.Seed()[20:21], []byte{k.Seed()[20] ^ 1}, 1)...),
	} {
		if _, err := ModuleKeyFromSeed(s); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: ModuleKeyFromSeed = %v", name, err)
		}
	}
}
