package capabilities

import (
	"encoding/binary"
	"fmt"
)

// MaxPayloadDepth is how deeply msgpack arrays and maps may nest in a
// payload from a guest. Contract payloads need a handful of levels.
const MaxPayloadDepth = 32

// CheckMsgpack walks the first msgpack value in b without recursion and
// fails if it is truncated, uses the reserved byte 0xc1, or nests deeper
// than maxDepth. msgpack decoders recurse once per level with no limit, so a
// guest's payload of nested arrays could otherwise exhaust the host's stack
// (a fatal error, not a panic, on 32-bit ARM): every contract decoder calls
// this first. Bytes after the first value are not examined.
func CheckMsgpack(b []byte, maxDepth int) error {
	var open []uint64 // items still to read at each enclosing level
	need := uint64(1)
	i := 0
	for {
		for need == 0 {
			if len(open) == 0 {
				return nil
			}
			need, open = open[len(open)-1], open[:len(open)-1]
		}
		if i >= len(b) {
			return fmt.Errorf("%w: msgpack truncated at byte %d", ErrBadPayload, i)
		}
		need--
		c := b[i]
		i++
		var skip, children uint64
		sized := func(n int) (uint64, bool) { // a big-endian length of n bytes
			if len(b)-i < n {
				return 0, false
			}
			var v uint64
			switch n {
			case 1:
				v = uint64(b[i])
			case 2:
				v = uint64(binary.BigEndian.Uint16(b[i:]))
			case 4:
				v = uint64(binary.BigEndian.Uint32(b[i:]))
			}
			i += n
			return v, true
		}
		ok := true
		switch {
		case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3: // fixint, nil, bool
		case c >= 0x80 && c <= 0x8f: // fixmap
			children = 2 * uint64(c&0x0f)
		case c >= 0x90 && c <= 0x9f: // fixarray
			children = uint64(c & 0x0f)
		case c >= 0xa0 && c <= 0xbf: // fixstr
			skip = uint64(c & 0x1f)
		case c == 0xc4, c == 0xd9: // bin8, str8
			skip, ok = sized(1)
		case c == 0xc5, c == 0xda: // bin16, str16
			skip, ok = sized(2)
		case c == 0xc6, c == 0xdb: // bin32, str32
			skip, ok = sized(4)
		case c == 0xc7: // ext8
			skip, ok = sized(1)
			skip++
		case c == 0xc8: // ext16
			skip, ok = sized(2)
			skip++
		case c == 0xc9: // ext32
			skip, ok = sized(4)
			skip++
		case c == 0xca, c == 0xce, c == 0xd2: // float32, uint32, int32
			skip = 4
		case c == 0xcb, c == 0xcf, c == 0xd3: // float64, uint64, int64
			skip = 8
		case c == 0xcc, c == 0xd0: // uint8, int8
			skip = 1
		case c == 0xcd, c == 0xd1: // uint16, int16
			skip = 2
		case c >= 0xd4 && c <= 0xd8: // fixext 1, 2, 4, 8, 16
			skip = 1 + 1<<(c-0xd4)
		case c == 0xdc: // array16
			children, ok = sized(2)
		case c == 0xdd: // array32
			children, ok = sized(4)
		case c == 0xde: // map16
			children, ok = sized(2)
			children *= 2
		case c == 0xdf: // map32
			children, ok = sized(4)
			children *= 2
		default: // 0xc1, never used
			return fmt.Errorf("%w: msgpack byte %#x at %d is reserved", ErrBadPayload, c, i-1)
		}
		if !ok || skip > uint64(len(b)-i) {
			return fmt.Errorf("%w: msgpack truncated at byte %d", ErrBadPayload, i)
		}
		i += int(skip)
		if children > 0 {
			// Every item takes at least a byte: a count beyond what is left is a lie.
			if children > uint64(len(b)-i) {
				return fmt.Errorf("%w: msgpack claims %d items with %d bytes left", ErrBadPayload, children, len(b)-i)
			}
			if len(open) >= maxDepth {
				return fmt.Errorf("%w: msgpack nests deeper than %d levels", ErrBadPayload, maxDepth)
			}
			open = append(open, need)
			need = children
		}
	}
}
