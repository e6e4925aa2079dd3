package wasmcloud

import "math"

// Key-value shapes. wasmbus (wasmCloud/interfaces keyvalue/keyvalue.smithy,
// keyvalue/tinygo/keyvalue.go) passes a lone key or list as a bare msgpack
// value and answers counts and flags as bare values; 0.18
// (wasmCloud/actor-interfaces keyvalue/rust/src/generated.rs and
// keyvalue/assemblyscript/assembly/module.ts) and waSCC (protochron/wascc-codec
// src/keyvalue.rs) wrap every argument and answer in a map. A legacy actor
// given a bare value where it expects a map traps (it unwraps the decode).

// Shape names used in errors.
const (
	shapeKey              = "key"
	shapeKeys             = "keys"
	shapeGetResponse      = "GetResponse"
	shapeSetRequest       = "SetRequest"
	shapeIncrementRequest = "IncrementRequest"
	shapeIncrementReply   = "Increment reply"
	shapeListItemRequest  = "ListItemRequest"
	shapeListRangeRequest = "ListRangeRequest"
	shapeSetItemRequest   = "SetItemRequest"
	shapeKeysRequest      = "KeysRequest"
	shapeValuesResponse   = "ValuesResponse"
	shapeListResponse     = "ListResponse"
	shapeSetOpResponse    = "SetOperationResponse"
	shapeDelResponse      = "DelResponse"
	shapeSetResponse      = "SetResponse"
)

// EncodeKey encodes the argument of the operations that take one key (or
// list or set name): wasmbus Get, Del, Contains, ListClear, SetQuery,
// SetClear take a bare str; legacy Get, Del, Clear, SetQuery, KeyExists take
// {key: str}.
func EncodeKey(e Era, key string) ([]byte, error) {
	switch {
	case e == EraWasmbus:
		return encodeBare(&key)
	case e.legacy():
		return encodeStruct([]field{{key: "key", ptr: &key}})
	}
	return nil, errEra(shapeKey, e)
}

// DecodeKey decodes what EncodeKey encodes.
func DecodeKey(e Era, b []byte) (string, error) {
	var key string
	switch {
	case e == EraWasmbus:
		return key, decodeBare(shapeKey, b, decodeOpts{}, &key)
	case e.legacy():
		return key, decodeStruct(shapeKey, b, decodeOpts{}, []field{{key: "key", required: true, ptr: &key}})
	}
	return "", errEra(shapeKey, e)
}

// EncodeKeys encodes the argument of SetUnion and SetIntersection: a bare
// [str] (wasmbus) or {keys: [str]} (legacy).
func EncodeKeys(e Era, keys []string) ([]byte, error) {
	if keys == nil {
		keys = []string{}
	}
	switch {
	case e == EraWasmbus:
		return encodeBare(&keys)
	case e.legacy():
		return encodeStruct([]field{{key: "keys", ptr: &keys}})
	}
	return nil, errEra(shapeKeys, e)
}

// DecodeKeys decodes what EncodeKeys encodes. The legacy keys field is
// required in 0.18 and defaults to empty in waSCC (#[serde(default)]).
func DecodeKeys(e Era, b []byte) ([]string, error) {
	var keys []string
	switch {
	case e == EraWasmbus:
		return keys, decodeBare(shapeKeys, b, decodeOpts{}, &keys)
	case e.legacy():
		return keys, decodeStruct(shapeKeys, b, decodeOpts{}, []field{{key: "keys", required: e == Era018, ptr: &keys}})
	}
	return nil, errEra(shapeKeys, e)
}

// GetResponse answers Get (every era) and legacy KeyExists:
// {value: str, exists: bool}.
type GetResponse struct {
	Value  string
	Exists bool
}

func (g *GetResponse) fields() []field {
	return []field{
		{key: "value", required: true, ptr: &g.Value},
		{key: "exists", required: true, ptr: &g.Exists},
	}
}

// EncodeGetResponse encodes g; the shape is the same in every era.
func EncodeGetResponse(g GetResponse) ([]byte, error) { return encodeStruct(g.fields()) }

// DecodeGetResponse decodes what EncodeGetResponse encodes.
func DecodeGetResponse(b []byte) (GetResponse, error) {
	var g GetResponse
	err := decodeStruct(shapeGetResponse, b, decodeOpts{}, g.fields())
	return g, err
}

// SetRequest is the input of Set: {key: str, value: str, expires: u32}
// (wasmbus) or expires: i32 (legacy). Expires is in seconds, 0 for none.
type SetRequest struct {
	Key     string
	Value   string
	Expires uint32
}

// EncodeSetRequest encodes r for era e. A legacy expiry over MaxInt32 does
// not fit the i32 field and is an error.
func EncodeSetRequest(e Era, r SetRequest) ([]byte, error) {
	switch {
	case e == EraWasmbus:
		return encodeStruct([]field{{key: "key", ptr: &r.Key}, {key: "value", ptr: &r.Value}, {key: "expires", ptr: &r.Expires}})
	case e.legacy():
		if r.Expires > math.MaxInt32 {
			return nil, &PayloadError{Shape: shapeSetRequest, Field: "expires", Reason: "over MaxInt32 for a legacy i32"}
		}
		exp := int32(r.Expires)
		return encodeStruct([]field{{key: "key", ptr: &r.Key}, {key: "value", ptr: &r.Value}, {key: "expires", ptr: &exp}})
	}
	return nil, errEra(shapeSetRequest, e)
}

// DecodeSetRequest decodes Set's input. All three fields are required in
// every era; a negative legacy expiry is an error.
func DecodeSetRequest(e Era, b []byte) (SetRequest, error) {
	var r SetRequest
	fields := []field{
		{key: "key", required: true, ptr: &r.Key},
		{key: "value", required: true, ptr: &r.Value},
		{key: "expires", required: true, ptr: &r.Expires},
	}
	if !e.valid() {
		return SetRequest{}, errEra(shapeSetRequest, e)
	}
	if err := decodeStruct(shapeSetRequest, b, decodeOpts{}, fields); err != nil {
		return SetRequest{}, err
	}
	return r, nil
}

// IncrementRequest is the input of wasmbus Increment and legacy Add:
// {key: str, value: i32} in every era.
type IncrementRequest struct {
	Key   string
	Value int32
}

func (r *IncrementRequest) fields() []field {
	return []field{{key: "key", required: true, ptr: &r.Key}, {key: "value", required: true, ptr: &r.Value}}
}

// EncodeIncrementRequest encodes r; the shape is the same in every era.
func EncodeIncrementRequest(r IncrementRequest) ([]byte, error) { return encodeStruct(r.fields()) }

// DecodeIncrementRequest decodes what EncodeIncrementRequest encodes.
func DecodeIncrementRequest(b []byte) (IncrementRequest, error) {
	var r IncrementRequest
	err := decodeStruct(shapeIncrementRequest, b, decodeOpts{}, r.fields())
	return r, err
}

// EncodeIncrementResponse encodes the new value: a bare i32 for wasmbus
// Increment (smithy output I32), {value: i32} for legacy Add (AddResponse).
// Confusing the two traps a legacy actor.
func EncodeIncrementResponse(e Era, n int32) ([]byte, error) {
	switch {
	case e == EraWasmbus:
		return encodeBare(&n)
	case e.legacy():
		return encodeStruct([]field{{key: "value", ptr: &n}})
	}
	return nil, errEra(shapeIncrementReply, e)
}

// DecodeIncrementResponse decodes what EncodeIncrementResponse encodes.
func DecodeIncrementResponse(e Era, b []byte) (int32, error) {
	var n int32
	switch {
	case e == EraWasmbus:
		return n, decodeBare(shapeIncrementReply, b, decodeOpts{}, &n)
	case e.legacy():
		return n, decodeStruct(shapeIncrementReply, b, decodeOpts{}, []field{{key: "value", required: true, ptr: &n}})
	}
	return 0, errEra(shapeIncrementReply, e)
}

// ListItemRequest is the input of wasmbus ListAdd and ListDel
// ({listName: str, value: str}) and of legacy Push and ListItemDelete
// ({key: str, value: str}).
type ListItemRequest struct {
	List  string
	Value string
}

func (r *ListItemRequest) fields(e Era) []field {
	name := "listName"
	if e.legacy() {
		name = "key"
	}
	return []field{{key: name, required: true, ptr: &r.List}, {key: "value", required: true, ptr: &r.Value}}
}

// EncodeListItemRequest encodes r for era e.
func EncodeListItemRequest(e Era, r ListItemRequest) ([]byte, error) {
	if !e.valid() {
		return nil, errEra(shapeListItemRequest, e)
	}
	return encodeStruct(r.fields(e))
}

// DecodeListItemRequest decodes what EncodeListItemRequest encodes.
func DecodeListItemRequest(e Era, b []byte) (ListItemRequest, error) {
	var r ListItemRequest
	if !e.valid() {
		return r, errEra(shapeListItemRequest, e)
	}
	err := decodeStruct(shapeListItemRequest, b, decodeOpts{}, r.fields(e))
	return r, err
}

// ListRangeRequest is the input of wasmbus ListRange
// ({listName: str, start: i32, stop: i32}, both ends inclusive) and of
// legacy Range ({key: str, start: i32, stop: i32}).
type ListRangeRequest struct {
	List  string
	Start int32
	Stop  int32
}

func (r *ListRangeRequest) fields(e Era) []field {
	name := "listName"
	if e.legacy() {
		name = "key"
	}
	return []field{
		{key: name, required: true, ptr: &r.List},
		{key: "start", required: true, ptr: &r.Start},
		{key: "stop", required: true, ptr: &r.Stop},
	}
}

// EncodeListRangeRequest encodes r for era e.
func EncodeListRangeRequest(e Era, r ListRangeRequest) ([]byte, error) {
	if !e.valid() {
		return nil, errEra(shapeListRangeRequest, e)
	}
	return encodeStruct(r.fields(e))
}

// DecodeListRangeRequest decodes what EncodeListRangeRequest encodes.
func DecodeListRangeRequest(e Era, b []byte) (ListRangeRequest, error) {
	var r ListRangeRequest
	if !e.valid() {
		return r, errEra(shapeListRangeRequest, e)
	}
	err := decodeStruct(shapeListRangeRequest, b, decodeOpts{}, r.fields(e))
	return r, err
}

// SetItemRequest is the input of wasmbus SetAdd and SetDel
// ({setName: str, value: str}) and of legacy SetAdd and SetRemove
// ({key: str, value: str}).
type SetItemRequest struct {
	Set   string
	Value string
}

func (r *SetItemRequest) fields(e Era) []field {
	name := "setName"
	if e.legacy() {
		name = "key"
	}
	return []field{{key: name, required: true, ptr: &r.Set}, {key: "value", required: true, ptr: &r.Value}}
}

// EncodeSetItemRequest encodes r for era e.
func EncodeSetItemRequest(e Era, r SetItemRequest) ([]byte, error) {
	if !e.valid() {
		return nil, errEra(shapeSetItemRequest, e)
	}
	return encodeStruct(r.fields(e))
}

// DecodeSetItemRequest decodes what EncodeSetItemRequest encodes.
func DecodeSetItemRequest(e Era, b []byte) (SetItemRequest, error) {
	var r SetItemRequest
	if !e.valid() {
		return r, errEra(shapeSetItemRequest, e)
	}
	err := decodeStruct(shapeSetItemRequest, b, decodeOpts{}, r.fields(e))
	return r, err
}

// KeysRequest is the input of wasmbus Keys (a later addition to
// keyvalue.smithy): {globExpression?: str, config?: str}, both optional.
type KeysRequest struct {
	GlobExpression string
	Config         string
}

func (r *KeysRequest) fields() []field {
	return []field{
		{key: "globExpression", omitEmpty: true, ptr: &r.GlobExpression},
		{key: "config", omitEmpty: true, ptr: &r.Config},
	}
}

// EncodeKeysRequest encodes r, leaving out empty fields as wasmbus-rpc
// leaves out None.
func EncodeKeysRequest(r KeysRequest) ([]byte, error) { return encodeStruct(r.fields()) }

// DecodeKeysRequest decodes what EncodeKeysRequest encodes.
func DecodeKeysRequest(b []byte) (KeysRequest, error) {
	var r KeysRequest
	err := decodeStruct(shapeKeysRequest, b, decodeOpts{}, r.fields())
	return r, err
}

// EncodeValuesResponse encodes the legacy answer of Range, SetUnion,
// SetIntersection and SetQuery: {values: [str]} (ListRangeResponse,
// SetQueryResponse). wasmbus answers with a bare list: use EncodeStrings.
func EncodeValuesResponse(values []string) ([]byte, error) {
	if values == nil {
		values = []string{}
	}
	return encodeStruct([]field{{key: "values", ptr: &values}})
}

// DecodeValuesResponse decodes what EncodeValuesResponse encodes.
func DecodeValuesResponse(b []byte) ([]string, error) {
	var values []string
	err := decodeStruct(shapeValuesResponse, b, decodeOpts{}, []field{{key: "values", ptr: &values}})
	return values, err
}

// EncodeListResponse encodes the legacy answer of Push and ListItemDelete:
// {newCount: i32} in both legacy eras.
func EncodeListResponse(newCount int32) ([]byte, error) {
	return encodeStruct([]field{{key: "newCount", ptr: &newCount}})
}

// DecodeListResponse decodes what EncodeListResponse encodes.
func DecodeListResponse(b []byte) (int32, error) {
	var n int32
	err := decodeStruct(shapeListResponse, b, decodeOpts{}, []field{{key: "newCount", required: true, ptr: &n}})
	return n, err
}

// setCountKey is SetOperationResponse's key: new_count in 0.18
// (actor-interfaces keyvalue/rust/src/generated.rs #[serde(rename =
// "new_count")], and the AssemblyScript module.ts), newCount in waSCC
// (wascc-codec src/keyvalue.rs, rename_all = "camelCase").
func setCountKey(e Era) string {
	if e == Era018 {
		return "new_count"
	}
	return "newCount"
}

// EncodeSetOperationResponse encodes the legacy answer of SetAdd and
// SetRemove, whose key differs between 0.18 and waSCC (see the table).
func EncodeSetOperationResponse(e Era, newCount int32) ([]byte, error) {
	if !e.legacy() {
		return nil, errEra(shapeSetOpResponse, e)
	}
	return encodeStruct([]field{{key: setCountKey(e), ptr: &newCount}})
}

// DecodeSetOperationResponse decodes what EncodeSetOperationResponse encodes.
func DecodeSetOperationResponse(e Era, b []byte) (int32, error) {
	if !e.legacy() {
		return 0, errEra(shapeSetOpResponse, e)
	}
	var n int32
	err := decodeStruct(shapeSetOpResponse, b, decodeOpts{}, []field{{key: setCountKey(e), required: true, ptr: &n}})
	return n, err
}

// EncodeDelResponse encodes the legacy answer of Del and Clear: {key: str}
// (DelResponse), the key that was deleted.
func EncodeDelResponse(key string) ([]byte, error) {
	return encodeStruct([]field{{key: "key", ptr: &key}})
}

// DecodeDelResponse decodes what EncodeDelResponse encodes.
func DecodeDelResponse(b []byte) (string, error) {
	var key string
	err := decodeStruct(shapeDelResponse, b, decodeOpts{}, []field{{key: "key", required: true, ptr: &key}})
	return key, err
}

// EncodeSetResponse encodes the legacy answer of Set: {value: str}
// (SetResponse). A 0.18 actor decodes and unwraps it, so it must be sent
// even though waSCC actors ignore it.
func EncodeSetResponse(value string) ([]byte, error) {
	return encodeStruct([]field{{key: "value", ptr: &value}})
}

// DecodeSetResponse decodes what EncodeSetResponse encodes.
func DecodeSetResponse(b []byte) (string, error) {
	var value string
	err := decodeStruct(shapeSetResponse, b, decodeOpts{}, []field{{key: "value", required: true, ptr: &value}})
	return value, err
}
