package wasmcloud

// Health checks: the host invokes OpHealthRequest (wasmbus) or
// OpLegacyHealthRequest (0.18, waSCC) on the actor.
//
//	wasmbus  Actor.HealthRequest  {}                  → {healthy?: bool, message?: str}
//	0.18     HealthRequest        {placeholder: bool} → {healthy: bool, message: str}
//	waSCC    HealthRequest        {placeholder: bool} → empty (success is health)
//
// Sources: wasmCloud/interfaces core/wasmcloud-core.smithy
// (HealthCheckRequest has no fields; HealthCheckResponse fields are not
// @required); wasmCloud/actor-interfaces actor-core/core.widl and
// actor-core/rust/wasmcloud-actor-core/src/generated.rs (placeholder has no
// serde default, so it must be sent); protochron/wascc-codec src/core.rs
// ("If the guest module returns the empty result, it is considered
// healthy") and wasmCloud/wascc-actor src/lib.rs (core::OP_HEALTH_REQUEST =>
// Ok(vec![])). The placeholder's value is read by nobody; waSCC host code
// sends true.

// HealthResponse is an actor's answer to a health check.
type HealthResponse struct {
	Healthy bool
	Message string
}

const (
	shapeHealthRequest  = "HealthCheckRequest"
	shapeHealthResponse = "HealthCheckResponse"
)

// EncodeHealthRequest encodes the health check's input for era e: an empty
// map for wasmbus, {placeholder: true} for the legacy eras.
func EncodeHealthRequest(e Era) ([]byte, error) {
	switch {
	case e == EraWasmbus:
		return encodeStruct(nil)
	case e.legacy():
		placeholder := true
		return encodeStruct([]field{{key: "placeholder", ptr: &placeholder}})
	}
	return nil, errEra(shapeHealthRequest, e)
}

// DecodeHealthRequest checks a health check's input of era e (for test
// guests): a map, with placeholder required in 0.18.
func DecodeHealthRequest(e Era, b []byte) error {
	var placeholder bool
	switch {
	case e == EraWasmbus:
		return decodeStruct(shapeHealthRequest, b, decodeOpts{}, nil)
	case e.legacy():
		return decodeStruct(shapeHealthRequest, b, decodeOpts{}, []field{{key: "placeholder", required: e == Era018, ptr: &placeholder}})
	}
	return errEra(shapeHealthRequest, e)
}

// EncodeHealthResponse encodes {healthy: bool, message: str}, the 0.18 and
// wasmbus answer. A waSCC actor answers with an empty payload instead; a
// waSCC host only looked at success, so this map is also a valid waSCC
// answer.
func EncodeHealthResponse(e Era, h HealthResponse) ([]byte, error) {
	if !e.valid() {
		return nil, errEra(shapeHealthResponse, e)
	}
	return encodeStruct([]field{{key: "healthy", ptr: &h.Healthy}, {key: "message", ptr: &h.Message}})
}

// DecodeHealthResponse decodes what an actor returned from a health check.
// In every era an empty payload or a msgpack nil is healthy (waSCC actors
// answer so), and both fields are optional (wasmbus; some actors send only
// {healthy: true}), a missing healthy being false. One trailing 0x00 is
// accepted (the AssemblyScript quirk, see the package comment).
func DecodeHealthResponse(e Era, b []byte) (HealthResponse, error) {
	if !e.valid() {
		return HealthResponse{}, errEra(shapeHealthResponse, e)
	}
	v := b
	if len(v) >= 2 && v[0] == prefixMsgpack {
		v = v[1:]
	}
	if len(v) == 0 || v[0] == 0xc0 && (len(v) == 1 || len(v) == 2 && v[1] == 0) {
		return HealthResponse{Healthy: true}, nil
	}
	var h HealthResponse
	err := decodeStruct(shapeHealthResponse, b, decodeOpts{trailingZero: true}, []field{
		{key: "healthy", ptr: &h.Healthy},
		{key: "message", ptr: &h.Message},
	})
	if err != nil {
		return HealthResponse{}, err
	}
	return h, nil
}
