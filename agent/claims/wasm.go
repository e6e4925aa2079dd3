package claims

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Section names that carry claims. wascap before 0.9 wrote "jwt"; later
// versions write "wasmcloud_jwt" and strip both when they sign.
const (
	SectionJWT       = "wasmcloud_jwt"
	SectionLegacyJWT = "jwt"
)

// wasmHeader is the magic number and version 1 of a core module. Components
// (version 0x0d) are not wasmCloud 0.x actors and are refused.
var wasmHeader = [8]byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}

// Section is one top-level section of a module, as offsets into the module's
// bytes: Start is the section id byte, Payload the first byte after the size,
// End one past the last byte. Name is set for custom sections (ID 0) only.
type Section struct {
	ID      byte
	Name    string
	Start   int
	Payload int
	End     int
}

// ParseSections splits a core WebAssembly module into its top-level sections.
// It checks the header, that every size is a valid LEB128 u32 that stays
// within the module, and that custom section names are UTF-8; it does not
// validate the sections' contents (the runtime does that when it compiles).
func ParseSections(wasm []byte) ([]Section, error) {
	if len(wasm) < len(wasmHeader) || [8]byte(wasm[:8]) != wasmHeader {
		return nil, fmt.Errorf("%w: not a core WebAssembly module (bad magic or version)", ErrMalformed)
	}
	var secs []Section
	for off := len(wasmHeader); off < len(wasm); {
		s := Section{ID: wasm[off], Start: off}
		size, n, err := readU32(wasm[off+1:])
		if err != nil {
			return nil, fmt.Errorf("%w: section at offset %d: size: %v", ErrMalformed, off, err)
		}
		s.Payload = off + 1 + n
		if uint64(size) > uint64(len(wasm)-s.Payload) {
			return nil, fmt.Errorf("%w: section at offset %d: size %d runs past the end of the module", ErrMalformed, off, size)
		}
		s.End = s.Payload + int(size)
		if s.ID == 0 {
			p := wasm[s.Payload:s.End]
			nameLen, n, err := readU32(p)
			if err != nil {
				return nil, fmt.Errorf("%w: custom section at offset %d: name length: %v", ErrMalformed, off, err)
			}
			if uint64(nameLen) > uint64(len(p)-n) {
				return nil, fmt.Errorf("%w: custom section at offset %d: name runs past the section", ErrMalformed, off)
			}
			name := p[n : n+int(nameLen)]
			if !utf8.Valid(name) {
				return nil, fmt.Errorf("%w: custom section at offset %d: name is not UTF-8", ErrMalformed, off)
			}
			s.Name = string(name)
		}
		secs = append(secs, s)
		off = s.End
	}
	return secs, nil
}

// Data returns a custom section's contents after its name, or a section's
// whole payload for other sections.
func (s Section) Data(wasm []byte) []byte {
	p := wasm[s.Payload:s.End]
	if s.ID != 0 {
		return p
	}
	nameLen, n, _ := readU32(p) // checked by ParseSections
	return p[n+int(nameLen):]
}

// isClaims reports whether s is a section that carries claims.
func (s Section) isClaims() bool {
	return s.ID == 0 && (s.Name == SectionJWT || s.Name == SectionLegacyJWT)
}

// stripClaims returns the module without its claims sections, every other
// section re-emitted with a minimal LEB128 size. This is byte for byte what
// wascap (0.10.1 and later) hashes and what it writes before appending the
// token: it re-encodes each section's size, so a module whose sizes were
// padded (as LLVM's linker pads them) hashes as the re-encoded module.
func stripClaims(wasm []byte, secs []Section) []byte {
	out := make([]byte, 0, len(wasm))
	out = append(out, wasmHeader[:]...)
	for _, s := range secs {
		if s.isClaims() {
			continue
		}
		out = append(out, s.ID)
		out = appendU32(out, uint32(s.End-s.Payload))
		out = append(out, wasm[s.Payload:s.End]...)
	}
	return out
}

// appendCustomSection appends a custom section called name holding data.
func appendCustomSection(dst []byte, name string, data []byte) []byte {
	nameLen := appendU32(nil, uint32(len(name)))
	dst = append(dst, 0)
	dst = appendU32(dst, uint32(len(nameLen)+len(name)+len(data)))
	dst = append(dst, nameLen...)
	dst = append(dst, name...)
	return append(dst, data...)
}

var (
	errLEBTruncated = errors.New("truncated LEB128")
	errLEBOverflow  = errors.New("LEB128 overflows 32 bits")
)

// readU32 decodes an unsigned LEB128 of at most 5 bytes whose value fits in
// 32 bits, as the WebAssembly spec requires, and returns it with its length.
func readU32(b []byte) (uint32, int, error) {
	var v uint32
	for i := 0; i < 5; i++ {
		if i >= len(b) {
			return 0, 0, errLEBTruncated
		}
		c := b[i]
		if i == 4 && c > 0x0f {
			return 0, 0, errLEBOverflow
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errLEBOverflow
}

// appendU32 appends v as a minimal unsigned LEB128.
func appendU32(dst []byte, v uint32) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}
