// Package httpserver is the guest side of trellis:http: HTTP requests the
// host receives for the actor. The operator routes a path prefix on a
// listen address to the actor in its grants,
//
//	http: [{listen: "127.0.0.1:8080", path_prefix: /api/}]
//
// and every request for a path under the prefix invokes the actor's
// operation DefaultOperation (or the route's operation) with the request;
// Handle registers it and encodes what the handler answers:
//
//	func init() {
//		httpserver.Handle(httpserver.DefaultOperation, func(r httpserver.Request) httpserver.Response {
//			if r.Method != "GET" {
//				return httpserver.Error(405, "only GET")
//			}
//			return httpserver.JSON(200, map[string]string{"path": r.Path})
//		})
//	}
//
// The shapes are wasmCloud's HttpServer shapes (wasmbus): a wasmCloud
// actor and a Trellis one answer the same requests. The host answers 404
// itself for paths outside every route, 413 for a body over the actor's
// limit, 503 and 504 when the actor is overloaded or too slow, and 500
// when the operation fails.
package httpserver

import (
	"encoding/json"

	"github.com/trellis-edge/trellis/sdk"
	"github.com/trellis-edge/trellis/sdk/internal/msgpack"
	"github.com/trellis-edge/trellis/sdk/internal/wire"
)

// DefaultOperation is the operation a route invokes when it names none
// (wasmCloud's wasmbus name).
const DefaultOperation = "HttpServer.HandleRequest"

// Request is an HTTP request routed to the actor.
type Request struct {
	Method string // "GET", "POST", ...
	// Path is the whole request path, the route's prefix included, without
	// the query.
	Path string
	// QueryString is the query without "?", still escaped ("a=1&b=x%20y").
	QueryString string
	Header      Header
	Body        []byte
}

// Response is the actor's answer.
type Response struct {
	// StatusCode is the HTTP status; 0 means 200.
	StatusCode int
	Header     Header
	Body       []byte
}

// Header is an HTTP header: values by field name. The host gives names in
// canonical form ("Content-Type"), as Go's net/http does.
type Header map[string][]string

// Get returns the first value of the field name, whatever its case.
func (h Header) Get(name string) string {
	if v := h[CanonicalName(name)]; len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if len(v) > 0 && equalFold(k, name) {
			return v[0]
		}
	}
	return ""
}

// Set sets the field name to the single value v.
func (h Header) Set(name, v string) { h[CanonicalName(name)] = []string{v} }

// Add adds v to the values of the field name.
func (h Header) Add(name, v string) {
	k := CanonicalName(name)
	h[k] = append(h[k], v)
}

// CanonicalName returns the canonical form of a header field name: the
// first letter and every letter after a hyphen upper case, the others
// lower case ("content-type" becomes "Content-Type"). A name with a byte
// that cannot be in a field name is returned unchanged, as net/http does.
func CanonicalName(name string) string {
	change := false
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !validNameByte(c) {
			return name
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			change = true
		}
		upper = c == '-'
	}
	if !change {
		return name
	}
	return canonicalize(name)
}

func canonicalize(name string) string {
	b := []byte(name)
	upper := true
	for i, c := range b {
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
	return string(b)
}

// validNameByte reports whether c may be in a field name (an RFC 9110 token).
func validNameByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

const requestPayload = "sdk/httpserver: request"

// DecodeRequest decodes the payload with which the host invokes the
// actor's HTTP operation: {method, path, queryString, header: {name:
// [values]}, body}. A header value given as one string (the legacy
// wasmCloud shape) is read as a list of one.
func DecodeRequest(payload []byte) (Request, error) {
	var r Request
	var seenMethod, seenPath bool
	err := wire.DecodeMap(requestPayload, payload, func(d *msgpack.Decoder, k string) (err error) {
		switch k {
		case "method":
			seenMethod = true
			r.Method, err = d.String()
		case "path":
			seenPath = true
			r.Path, err = d.String()
		case "queryString":
			r.QueryString, err = d.String()
		case "header":
			r.Header, err = decodeHeader(d)
		case "body":
			r.Body, err = d.Bytes()
		default:
			err = d.Skip()
		}
		return err
	})
	switch {
	case err != nil:
		return Request{}, err
	case !seenMethod:
		return Request{}, wire.Invalid(requestPayload, "no method")
	case !seenPath:
		return Request{}, wire.Invalid(requestPayload, "no path")
	}
	if r.Header == nil {
		r.Header = Header{}
	}
	return r, nil
}

func decodeHeader(d *msgpack.Decoder) (Header, error) {
	n, err := d.MapLen()
	if err != nil {
		return nil, err
	}
	h := make(Header, n) // n is bounded by the payload's size
	for range n {
		name, err := d.String()
		if err != nil {
			return nil, err
		}
		t, err := d.Peek()
		if err != nil {
			return nil, err
		}
		if t == msgpack.String {
			v, err := d.String()
			if err != nil {
				return nil, err
			}
			h[name] = append(h[name], v)
			continue
		}
		m, err := d.ArrayLen()
		if err != nil {
			return nil, &msgpack.FieldError{Key: name, Err: err}
		}
		for range m {
			v, err := d.String()
			if err != nil {
				return nil, &msgpack.FieldError{Key: name, Err: err}
			}
			h[name] = append(h[name], v)
		}
	}
	return h, nil
}

// EncodeResponse encodes r as the host expects it back: {statusCode: u16,
// header: {name: [values]}, body: bin}. A StatusCode of 0 is sent as 200,
// one outside 100 to 999 as 500.
func EncodeResponse(r Response) []byte {
	code := r.StatusCode
	switch {
	case code == 0:
		code = 200
	case code < 100 || code > 999:
		code = 500
	}
	b := msgpack.AppendMapHeader(nil, 3)
	b = msgpack.AppendUint(msgpack.AppendString(b, "statusCode"), uint64(code))
	b = msgpack.AppendMapHeader(msgpack.AppendString(b, "header"), len(r.Header))
	for name, values := range r.Header {
		b = msgpack.AppendString(b, name)
		b = msgpack.AppendArrayHeader(b, len(values))
		for _, v := range values {
			b = msgpack.AppendString(b, v)
		}
	}
	return msgpack.AppendBin(msgpack.AppendString(b, "body"), r.Body)
}

// Handle registers operation (with sdk.Handle, so call it from an init
// function) as the actor's HTTP handler: each payload is decoded into a
// Request for f, and f's Response is encoded for the host. An empty
// operation means DefaultOperation. A payload that does not decode is the
// operation's error, which the host answers with 500.
func Handle(operation string, f func(Request) Response) {
	if operation == "" {
		operation = DefaultOperation
	}
	sdk.Handle(operation, func(payload []byte) ([]byte, error) {
		r, err := DecodeRequest(payload)
		if err != nil {
			return nil, err
		}
		return EncodeResponse(f(r)), nil
	})
}

// JSON returns a response of status with v encoded as JSON and the
// Content-Type application/json. A v that cannot be encoded gives a 500
// response saying why.
func JSON(status int, v any) Response {
	body, err := json.Marshal(v)
	if err != nil {
		return Error(500, "httpserver: encoding the response: "+err.Error())
	}
	return Response{
		StatusCode: status,
		Header:     Header{"Content-Type": {"application/json"}},
		Body:       body,
	}
}

// Error returns a response of status with the JSON body {"error": msg}.
func Error(status int, msg string) Response {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg}) // a struct of one string always encodes
	return Response{
		StatusCode: status,
		Header:     Header{"Content-Type": {"application/json"}},
		Body:       body,
	}
}

// Text returns a response of status with s as a plain text body.
func Text(status int, s string) Response {
	return Response{
		StatusCode: status,
		Header:     Header{"Content-Type": {"text/plain; charset=utf-8"}},
		Body:       []byte(s),
	}
}
