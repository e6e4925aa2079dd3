package wasmcloud

import "testing"

// One fuzz target per decoder (go test -fuzz takes one target at a time);
// the shared body and seeds are in codecs_test.go.

func FuzzDecodeHTTPRequest(f *testing.F)          { fuzzDecoder(f, "HTTPRequest") }
func FuzzDecodeHTTPResponse(f *testing.F)         { fuzzDecoder(f, "HTTPResponse") }
func FuzzDecodeKey(f *testing.F)                  { fuzzDecoder(f, "Key") }
func FuzzDecodeKeys(f *testing.F)                 { fuzzDecoder(f, "Keys") }
func FuzzDecodeGetResponse(f *testing.F)          { fuzzDecoder(f, "GetResponse") }
func FuzzDecodeSetRequest(f *testing.F)           { fuzzDecoder(f, "SetRequest") }
func FuzzDecodeIncrementRequest(f *testing.F)     { fuzzDecoder(f, "IncrementRequest") }
func FuzzDecodeIncrementResponse(f *testing.F)    { fuzzDecoder(f, "IncrementResponse") }
func FuzzDecodeListItemRequest(f *testing.F)      { fuzzDecoder(f, "ListItemRequest") }
func FuzzDecodeListRangeRequest(f *testing.F)     { fuzzDecoder(f, "ListRangeRequest") }
func FuzzDecodeSetItemRequest(f *testing.F)       { fuzzDecoder(f, "SetItemRequest") }
func FuzzDecodeKeysRequest(f *testing.F)          { fuzzDecoder(f, "KeysRequest") }
func FuzzDecodeValuesResponse(f *testing.F)       { fuzzDecoder(f, "ValuesResponse") }
func FuzzDecodeListResponse(f *testing.F)         { fuzzDecoder(f, "ListResponse") }
func FuzzDecodeSetOperationResponse(f *testing.F) { fuzzDecoder(f, "SetOperationResponse") }
func FuzzDecodeDelResponse(f *testing.F)          { fuzzDecoder(f, "DelResponse") }
func FuzzDecodeSetResponse(f *testing.F)          { fuzzDecoder(f, "SetResponse") }
func FuzzDecodeMessage(f *testing.F)              { fuzzDecoder(f, "Message") }
func FuzzDecodeRequestMessage(f *testing.F)       { fuzzDecoder(f, "RequestMessage") }
func FuzzDecodePublishResponse(f *testing.F)      { fuzzDecoder(f, "PublishResponse") }
func FuzzDecodeLogEntry(f *testing.F)             { fuzzDecoder(f, "LogEntry") }
func FuzzDecodeRangeLimit(f *testing.F)           { fuzzDecoder(f, "RangeLimit") }
func FuzzDecodeHealthRequest(f *testing.F)        { fuzzDecoder(f, "HealthRequest") }
func FuzzDecodeHealthResponse(f *testing.F)       { fuzzDecoder(f, "HealthResponse") }
func FuzzDecodeString(f *testing.F)               { fuzzDecoder(f, "String") }
func FuzzDecodeBool(f *testing.F)                 { fuzzDecoder(f, "Bool") }
func FuzzDecodeUint32(f *testing.F)               { fuzzDecoder(f, "Uint32") }
func FuzzDecodeUint64(f *testing.F)               { fuzzDecoder(f, "Uint64") }
func FuzzDecodeStrings(f *testing.F)              { fuzzDecoder(f, "Strings") }
