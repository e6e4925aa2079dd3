package wasmcloud

// Bare values: wasmbus passes a lone argument or result as the msgpack value
// itself, not wrapped in a map (KeyValue.Get's key, KeyValue.Del's bool,
// NumberGen.Random32's u32, ...); 0.18 extras answers the same way
// (RequestGuid → str, RequestRandom → u32, RequestSequence → u64).

// EncodeString encodes a bare str.
func EncodeString(s string) ([]byte, error) { return encodeBare(&s) }

// DecodeString decodes a bare str.
func DecodeString(b []byte) (string, error) {
	var s string
	return s, decodeBare("str", b, decodeOpts{}, &s)
}

// EncodeBool encodes a bare bool.
func EncodeBool(v bool) ([]byte, error) { return encodeBare(&v) }

// DecodeBool decodes a bare bool.
func DecodeBool(b []byte) (bool, error) {
	var v bool
	return v, decodeBare("bool", b, decodeOpts{}, &v)
}

// EncodeUint32 encodes a bare u32, in msgpack's shortest int form.
func EncodeUint32(n uint32) ([]byte, error) { return encodeBare(&n) }

// DecodeUint32 decodes a bare u32 from any msgpack int form in range.
func DecodeUint32(b []byte) (uint32, error) {
	var n uint32
	return n, decodeBare("u32", b, decodeOpts{}, &n)
}

// EncodeUint64 encodes a bare u64.
func EncodeUint64(n uint64) ([]byte, error) { return encodeBare(&n) }

// DecodeUint64 decodes a bare u64.
func DecodeUint64(b []byte) (uint64, error) {
	var n uint64
	return n, decodeBare("u64", b, decodeOpts{}, &n)
}

// EncodeStrings encodes a bare [str] (wasmbus StringList); nil encodes as
// an empty array.
func EncodeStrings(s []string) ([]byte, error) {
	if s == nil {
		s = []string{}
	}
	return encodeBare(&s)
}

// DecodeStrings decodes a bare [str].
func DecodeStrings(b []byte) ([]string, error) {
	var s []string
	return s, decodeBare("[str]", b, decodeOpts{}, &s)
}
