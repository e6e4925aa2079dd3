package wasmcloud

import (
	"strings"
)

// HTTPRequest is what the host sends an actor's HandleRequest operation:
// op [OpHandleRequest] (wasmbus) or [OpLegacyHandleRequest] (0.18, waSCC).
//
// Wire shape, keys exactly as shown:
//
//	wasmbus:     {method: str, path: str, queryString: str, header: map<str, [str]>, body: bin}
//	0.18, waSCC: {method: str, path: str, queryString: str, header: map<str, str>,   body: bin}
//
// Sources: wasmCloud/interfaces httpserver/httpserver.smithy (HttpRequest,
// HeaderMap = map<String, HeaderValues>, HeaderValues = list<String>) and
// httpserver/tinygo/httpserver.go; wasmCloud/actor-interfaces
// http-server/httpserver.widl and http-server/rust/src/generated.rs
// (header: HashMap<String, String>, body serde_bytes); protochron/wascc-codec
// src/http.rs (camelCase, header and body #[serde(default)]). The key is
// queryString: a guest given query_string rejects the request.
type HTTPRequest struct {
	Method      string
	Path        string
	QueryString string
	// Header holds every value of each field. The legacy eras carry one
	// string per name: the encoder joins several values with ", " (RFC 9110
	// §5.3) and the decoder yields one-element lists.
	Header map[string][]string
	Body   []byte
}

// HTTPResponse is what an actor's HandleRequest returns.
//
// Wire shape:
//
//	wasmbus:     {statusCode: u16, header: map<str, [str]>, body: bin}
//	0.18, waSCC: {statusCode: u32, status: str, header: map<str, str>, body: bin}
//
// Sources as for [HTTPRequest] (HttpResponse; widl Response; wascc-codec
// Response). wasmbus has no status field.
type HTTPResponse struct {
	// StatusCode is the HTTP status. The legacy eras carry it as u32; a
	// value over 65535 does not decode.
	StatusCode uint16
	// Status is the reason phrase ("OK"); legacy eras only, empty otherwise.
	Status string
	// Header as for HTTPRequest.Header; legacy decoding yields one-element lists.
	Header map[string][]string
	Body   []byte
}

// Shape names used in errors.
const (
	shapeHTTPRequest  = "HttpRequest"
	shapeHTTPResponse = "HttpResponse"
)

func joinHeader(h map[string][]string) map[string]string {
	if h == nil {
		return map[string]string{}
	}
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[k] = strings.Join(v, ", ")
	}
	return out
}

func splitHeader(h map[string]string) map[string][]string {
	if h == nil {
		return nil
	}
	out := make(map[string][]string, len(h))
	for k, v := range h {
		out[k] = []string{v}
	}
	return out
}

// EncodeHTTPRequest encodes r for an actor of era e. Every field is written,
// header and body even when empty: the 0.18 decoder requires all five and
// the wasmbus Rust decoder requires header.
func EncodeHTTPRequest(e Era, r HTTPRequest) ([]byte, error) {
	header := r.Header
	if header == nil {
		header = map[string][]string{}
	}
	fields := []field{
		{key: "method", ptr: &r.Method},
		{key: "path", ptr: &r.Path},
		{key: "queryString", ptr: &r.QueryString},
		{key: "header", ptr: &header},
		{key: "body", ptr: &r.Body},
	}
	switch {
	case e == EraWasmbus:
	case e.legacy():
		flat := joinHeader(r.Header)
		fields[3].ptr = &flat
	default:
		return nil, errEra(shapeHTTPRequest, e)
	}
	return encodeStruct(fields)
}

// DecodeHTTPRequest decodes an HTTP request of era e. Required fields: all
// five in wasmbus (smithy @required) and 0.18 (no serde defaults);
// method, path and queryString in waSCC (header and body default).
func DecodeHTTPRequest(e Era, b []byte) (HTTPRequest, error) {
	var r HTTPRequest
	var flat map[string]string
	fields := []field{
		{key: "method", required: true, ptr: &r.Method},
		{key: "path", required: true, ptr: &r.Path},
		{key: "queryString", required: true, ptr: &r.QueryString},
		{key: "header", required: e != EraWaSCC, ptr: &r.Header},
		{key: "body", required: e != EraWaSCC, ptr: &r.Body},
	}
	if !e.valid() {
		return HTTPRequest{}, errEra(shapeHTTPRequest, e)
	}
	if e.legacy() {
		fields[3].ptr = &flat
	}
	if err := decodeStruct(shapeHTTPRequest, b, decodeOpts{}, fields); err != nil {
		return HTTPRequest{}, err
	}
	if e.legacy() {
		r.Header = splitHeader(flat)
	}
	return r, nil
}

// EncodeHTTPResponse encodes an actor's response of era e (what a test
// guest or a Trellis-native actor returns).
func EncodeHTTPResponse(e Era, r HTTPResponse) ([]byte, error) {
	header := r.Header
	if header == nil {
		header = map[string][]string{}
	}
	switch {
	case e == EraWasmbus:
		return encodeStruct([]field{
			{key: "statusCode", ptr: &r.StatusCode},
			{key: "header", ptr: &header},
			{key: "body", ptr: &r.Body},
		})
	case e.legacy():
		code := uint32(r.StatusCode)
		flat := joinHeader(r.Header)
		return encodeStruct([]field{
			{key: "statusCode", ptr: &code},
			{key: "status", ptr: &r.Status},
			{key: "header", ptr: &flat},
			{key: "body", ptr: &r.Body},
		})
	}
	return nil, errEra(shapeHTTPResponse, e)
}

// DecodeHTTPResponse decodes what an actor of era e returned from
// HandleRequest. statusCode is required (a misspelt key must not read as
// status 0); status, header and body may be absent. One trailing 0x00 is
// accepted (the AssemblyScript quirk, see the package comment).
func DecodeHTTPResponse(e Era, b []byte) (HTTPResponse, error) {
	var r HTTPResponse
	opts := decodeOpts{trailingZero: true}
	switch {
	case e == EraWasmbus:
		err := decodeStruct(shapeHTTPResponse, b, opts, []field{
			{key: "statusCode", required: true, ptr: &r.StatusCode},
			{key: "header", ptr: &r.Header},
			{key: "body", ptr: &r.Body},
		})
		if err != nil {
			return HTTPResponse{}, err
		}
		return r, nil
	case e.legacy():
		var flat map[string]string
		err := decodeStruct(shapeHTTPResponse, b, opts, []field{
			{key: "statusCode", required: true, ptr: &r.StatusCode},
			{key: "status", ptr: &r.Status},
			{key: "header", ptr: &flat},
			{key: "body", ptr: &r.Body},
		})
		if err != nil {
			return HTTPResponse{}, err
		}
		r.Header = splitHeader(flat)
		return r, nil
	}
	return HTTPResponse{}, errEra(shapeHTTPResponse, e)
}
