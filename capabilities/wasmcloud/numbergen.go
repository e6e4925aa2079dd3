package wasmcloud

// RangeLimit is the input of wasmbus NumberGen.RandomInRange and of 0.18
// extras RequestRandom: {min: u32, max: u32} in both. Sources:
// wasmCloud/interfaces numbergen/numbergen.smithy (RangeLimit, "Result will
// be >= min and <= max" on the structure, "[min,max)" on the operation: the
// model contradicts itself, so the range's ends are the handler's call) and
// wasmCloud/actor-interfaces extras/rust/src/generated.rs
// (RequestRandomArgs, "Inclusivity depends on implementation").
//
// GenerateGuid, Random32, RequestGuid and RequestSequence take an empty
// payload and answer a bare value: EncodeString (GUID), EncodeUint32,
// EncodeUint64 (sequence).
type RangeLimit struct {
	Min uint32
	Max uint32
}

const shapeRangeLimit = "RangeLimit"

func (r *RangeLimit) fields() []field {
	return []field{{key: "min", required: true, ptr: &r.Min}, {key: "max", required: true, ptr: &r.Max}}
}

// EncodeRangeLimit encodes r; the shape is the same in both eras.
func EncodeRangeLimit(r RangeLimit) ([]byte, error) { return encodeStruct(r.fields()) }

// DecodeRangeLimit decodes what EncodeRangeLimit encodes. It does not check
// min ≤ max: that is the handler's to refuse.
func DecodeRangeLimit(b []byte) (RangeLimit, error) {
	var r RangeLimit
	err := decodeStruct(shapeRangeLimit, b, decodeOpts{}, r.fields())
	return r, err
}
