package claims

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nkeys"
)

// PrefixByteModule is the nkeys prefix byte of a module (actor) key, which
// base32-encodes to "M…" (and its seed to "SM…"). wasmCloud's nkeys crates
// know it; github.com/nats-io/nkeys does not, so module keys are encoded here
// the same way nkeys encodes the others.
const PrefixByteModule nkeys.PrefixByte = 12 << 3

// ErrBadKey means a string is not a well-formed key of the expected kind:
// bad base32, wrong prefix, wrong length or a failed CRC16.
var ErrBadKey = errors.New("claims: bad key")

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// ModuleKey is a module's Ed25519 key pair. Its public key names the actor
// in claims (the subject).
type ModuleKey struct {
	seed [ed25519.SeedSize]byte
}

// CreateModuleKey returns a fresh module key pair from crypto/rand.
func CreateModuleKey() (*ModuleKey, error) {
	return createModuleKey(rand.Reader)
}

func createModuleKey(r io.Reader) (*ModuleKey, error) {
	var k ModuleKey
	if _, err := io.ReadFull(r, k.seed[:]); err != nil {
		return nil, fmt.Errorf("claims: module key: %w", err)
	}
	return &k, nil
}

// ModuleKeyFromSeed decodes an "SM…" seed.
func ModuleKeyFromSeed(seed []byte) (*ModuleKey, error) {
	raw, err := decodeChecked(seed)
	if err != nil {
		return nil, err
	}
	// Two prefix bytes spread the seed prefix and the public prefix over the
	// first 10 bits, as nkeys.EncodeSeed does.
	if len(raw) != 2+ed25519.SeedSize || raw[0]&0xf8 != byte(nkeys.PrefixByteSeed) ||
		raw[0]&0x07<<5|raw[1]>>3 != byte(PrefixByteModule) || raw[1]&0x07 != 0 {
		return nil, fmt.Errorf("%w: not a module seed (SM…)", ErrBadKey)
	}
	var k ModuleKey
	copy(k.seed[:], raw[2:])
	return &k, nil
}

// Seed returns the key's "SM…" seed.
func (k *ModuleKey) Seed() []byte {
	p := byte(PrefixByteModule)
	raw := append([]byte{byte(nkeys.PrefixByteSeed) | p>>5, (p & 31) << 3}, k.seed[:]...)
	return encodeChecked(raw)
}

// PublicKey returns the key's "M…" public key.
func (k *ModuleKey) PublicKey() string {
	return EncodeModuleKey(ed25519.NewKeyFromSeed(k.seed[:]).Public().(ed25519.PublicKey))
}

// Sign signs msg with the module key.
func (k *ModuleKey) Sign(msg []byte) []byte {
	return ed25519.Sign(ed25519.NewKeyFromSeed(k.seed[:]), msg)
}

// EncodeModuleKey encodes an Ed25519 public key as an "M…" module key.
func EncodeModuleKey(pub ed25519.PublicKey) string {
	return string(encodeChecked(append([]byte{byte(PrefixByteModule)}, pub...)))
}

// DecodeModuleKey decodes an "M…" module key to its Ed25519 public key.
func DecodeModuleKey(s string) (ed25519.PublicKey, error) {
	raw, err := decodeChecked([]byte(s))
	if err != nil {
		return nil, err
	}
	if len(raw) != 1+ed25519.PublicKeySize || raw[0] != byte(PrefixByteModule) {
		return nil, fmt.Errorf("%w: not a module key (M…)", ErrBadKey)
	}
	return ed25519.PublicKey(raw[1:]), nil
}

// IsValidModuleKey reports whether s is a well-formed "M…" module key.
func IsValidModuleKey(s string) bool {
	_, err := DecodeModuleKey(s)
	return err == nil
}

// encodeChecked appends the CRC16 (little-endian) to raw and base32-encodes
// it without padding, as nkeys does.
func encodeChecked(raw []byte) []byte {
	raw = binary.LittleEndian.AppendUint16(raw, crc16(raw))
	out := make([]byte, b32.EncodedLen(len(raw)))
	b32.Encode(out, raw)
	return out
}

// decodeChecked reverses encodeChecked and checks the CRC16.
func decodeChecked(src []byte) ([]byte, error) {
	if len(src) > 128 {
		return nil, fmt.Errorf("%w: %d characters", ErrBadKey, len(src))
	}
	raw := make([]byte, b32.DecodedLen(len(src)))
	n, err := b32.Decode(raw, src)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	raw = raw[:n]
	if n < 4 {
		return nil, fmt.Errorf("%w: too short", ErrBadKey)
	}
	body, sum := raw[:n-2], binary.LittleEndian.Uint16(raw[n-2:])
	if crc16(body) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrBadKey)
	}
	return body, nil
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum
// of nkeys.
func crc16(data []byte) uint16 {
	var crc uint16
	for _, b := range data {
		crc ^= uint16(b) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
