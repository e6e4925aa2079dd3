package wasmcloud

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/trellis-edge/trellis/capabilities"
)

// The golden payloads are built by hand from the msgpack specification
// (github.com/msgpack/msgpack/blob/master/spec.md), not with the encoder,
// so that they pin key names, key order, types and widths independently.

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// fixstr is a str of fewer than 32 bytes: 0b101xxxxx then the bytes.
func fixstr(s string) []byte {
	if len(s) >= 32 {
		panic("fixstr too long")
	}
	return append([]byte{0xa0 | byte(len(s))}, s...)
}

// fixmap is the header of a map of fewer than 16 entries: 0b1000xxxx.
func fixmap(n int) []byte { return []byte{0x80 | byte(n)} }

// fixarray is the header of an array of fewer than 16 elements: 0b1001xxxx.
func fixarray(n int) []byte { return []byte{0x90 | byte(n)} }

// bin8 is a bin of fewer than 256 bytes: 0xc4, length, bytes.
func bin8(b string) []byte { return append([]byte{0xc4, byte(len(b))}, b...) }

var (
	msgTrue  = []byte{0xc3}
	msgFalse = []byte{0xc2}
)

// must returns an encoding; an encoder error fails the test by panicking.
func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func wantGolden(t *testing.T, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("bytes differ\n got % x\nwant % x", got, want)
	}
}

// wantFieldError checks that err is a bad payload naming field.
func wantFieldError(t *testing.T, err error, field string) {
	t.Helper()
	var pe *PayloadError
	if !errors.Is(err, capabilities.ErrBadPayload) || !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *PayloadError wrapping ErrBadPayload", err)
	}
	if pe.Field != field {
		t.Fatalf("err = %v names field %q, want %q", err, pe.Field, field)
	}
	if field != "" && !strings.Contains(err.Error(), field) {
		t.Fatalf("message %q does not name %q", err, field)
	}
}

func TestGoldenHTTPRequest(t *testing.T) {
	req := HTTPRequest{
		Method: "GET", Path: "/x", QueryString: "a=1",
		Header: map[string][]string{"b": {"2"}, "a": {"1", "3"}},
		Body:   []byte("hi"),
	}
	// wasmbus: header values are lists; keys sorted for determinism.
	wasmbus := cat(fixmap(5),
		fixstr("method"), fixstr("GET"),
		fixstr("path"), fixstr("/x"),
		fixstr("queryString"), fixstr("a=1"),
		fixstr("header"), fixmap(2),
		fixstr("a"), fixarray(2), fixstr("1"), fixstr("3"),
		fixstr("b"), fixarray(1), fixstr("2"),
		fixstr("body"), bin8("hi"))
	wantGolden(t, must(EncodeHTTPRequest(EraWasmbus, req)), wasmbus)

	// 0.18 and waSCC: header values are strings; several values are joined.
	legacy := cat(fixmap(5),
		fixstr("method"), fixstr("GET"),
		fixstr("path"), fixstr("/x"),
		fixstr("queryString"), fixstr("a=1"),
		fixstr("header"), fixmap(2),
		fixstr("a"), fixstr("1, 3"),
		fixstr("b"), fixstr("2"),
		fixstr("body"), bin8("hi"))
	for _, e := range legacyEras {
		wantGolden(t, must(EncodeHTTPRequest(e, req)), legacy)
	}

	// A request without header or body still carries both, empty: the 0.18
	// decoder requires all five keys and serde_bytes refuses nil.
	empty := cat(fixmap(5),
		fixstr("method"), fixstr("GET"), fixstr("path"), fixstr("/"),
		fixstr("queryString"), fixstr(""),
		fixstr("header"), fixmap(0), fixstr("body"), []byte{0xc4, 0x00})
	for _, e := range allEras {
		wantGolden(t, must(EncodeHTTPRequest(e, HTTPRequest{Method: "GET", Path: "/"})), empty)
	}
}

func TestHTTPRequestQueryStringKey(t *testing.T) {
	snake := cat(fixmap(5),
		fixstr("method"), fixstr("GET"), fixstr("path"), fixstr("/"),
		fixstr("query_string"), fixstr("a=1"),
		fixstr("header"), fixmap(0), fixstr("body"), bin8(""))
	for _, e := range allEras {
		_, err := DecodeHTTPRequest(e, snake)
		wantFieldError(t, err, "queryString")
	}
}

func TestGoldenHTTPResponse(t *testing.T) {
	resp := HTTPResponse{StatusCode: 200, Status: "OK", Header: map[string][]string{"c": {"d"}}, Body: []byte("ok")}
	// 200 does not fit a positive fixint (≤ 127): uint8 0xcc 0xc8.
	wasmbus := cat(fixmap(3),
		fixstr("statusCode"), []byte{0xcc, 0xc8},
		fixstr("header"), fixmap(1), fixstr("c"), fixarray(1), fixstr("d"),
		fixstr("body"), bin8("ok"))
	wantGolden(t, must(EncodeHTTPResponse(EraWasmbus, resp)), wasmbus)
	legacy := cat(fixmap(4),
		fixstr("statusCode"), []byte{0xcc, 0xc8},
		fixstr("status"), fixstr("OK"),
		fixstr("header"), fixmap(1), fixstr("c"), fixstr("d"),
		fixstr("body"), bin8("ok"))
	wantGolden(t, must(EncodeHTTPResponse(Era018, resp)), legacy)

	// What actors send: statusCode as a fixed-width u16 or u32 (TinyGo
	// WriteUint16, the 0.18 Go binding's WriteUint32) decodes too.
	for _, code := range [][]byte{{0xcd, 0x00, 0xc8}, {0xce, 0, 0, 0, 0xc8}, {0xcc, 0xc8}} {
		got, err := DecodeHTTPResponse(Era018, cat(fixmap(2), fixstr("statusCode"), code, fixstr("status"), fixstr("OK")))
		if err != nil || got.StatusCode != 200 || got.Status != "OK" {
			t.Fatalf("statusCode % x: %+v, %v", code, got, err)
		}
	}
}

// One AssemblyScript actor appends a 0x00 to its msgpack response; the
// response decoders accept exactly that one byte and nothing else.
func TestResponseTrailingZero(t *testing.T) {
	resp := cat(fixmap(1), fixstr("statusCode"), []byte{0xcc, 0xc8})
	health := cat(fixmap(1), fixstr("healthy"), msgTrue)
	cases := []struct {
		name  string
		tail  []byte
		valid bool
	}{
		{"none", nil, true},
		{"one zero", []byte{0x00}, true},
		{"two zeros", []byte{0x00, 0x00}, false},
		{"one", []byte{0x01}, false},
		{"zero then one", []byte{0x00, 0x01}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, e := range allEras {
				_, err := DecodeHTTPResponse(e, cat(resp, tc.tail))
				if (err == nil) != tc.valid {
					t.Fatalf("%s HttpResponse: err = %v, want valid %v", e, err, tc.valid)
				}
				_, err = DecodeHealthResponse(e, cat(health, tc.tail))
				if (err == nil) != tc.valid {
					t.Fatalf("%s HealthCheckResponse: err = %v, want valid %v", e, err, tc.valid)
				}
			}
		})
	}
	// Requests are not actor responses: no trailing byte is allowed.
	req := must(EncodeHTTPRequest(EraWasmbus, HTTPRequest{Method: "GET", Path: "/"}))
	if _, err := DecodeHTTPRequest(EraWasmbus, cat(req, []byte{0})); err == nil {
		t.Fatal("request with a trailing zero decoded")
	}
}

func TestGoldenIncrement(t *testing.T) {
	req := cat(fixmap(2), fixstr("key"), fixstr("hits"), fixstr("value"), []byte{0x01})
	wantGolden(t, must(EncodeIncrementRequest(IncrementRequest{Key: "hits", Value: 1})), req)

	// wasmbus KeyValue.Increment answers a bare i32 (smithy output: I32) ...
	cases := []struct {
		n    int32
		bare []byte
	}{
		{5, []byte{0x05}},
		{-1, []byte{0xff}},                         // negative fixint
		{300, []byte{0xcd, 0x01, 0x2c}},            // uint16
		{-200, []byte{0xd1, 0xff, 0x38}},           // int16
		{-2147483648, []byte{0xd2, 0x80, 0, 0, 0}}, // int32
	}
	for _, tc := range cases {
		wantGolden(t, must(EncodeIncrementResponse(EraWasmbus, tc.n)), tc.bare)
		// ... and 0.18/waSCC Add answers {value: i32} (AddResponse).
		for _, e := range legacyEras {
			wantGolden(t, must(EncodeIncrementResponse(e, tc.n)), cat(fixmap(1), fixstr("value"), tc.bare))
		}
	}
	// Literal bytes, to be unmistakable.
	wantGolden(t, must(EncodeIncrementResponse(EraWasmbus, 5)), []byte{0x05})
	wantGolden(t, must(EncodeIncrementResponse(Era018, 5)), []byte{0x81, 0xa5, 'v', 'a', 'l', 'u', 'e', 0x05})

	// The eras do not cross: a legacy actor given a bare int would trap.
	if _, err := DecodeIncrementResponse(Era018, []byte{0x05}); err == nil {
		t.Fatal("0.18 Add reply decoded from a bare int")
	}
	if _, err := DecodeIncrementResponse(EraWasmbus, []byte{0x81, 0xa5, 'v', 'a', 'l', 'u', 'e', 0x05}); err == nil {
		t.Fatal("wasmbus Increment reply decoded from a map")
	}
}

func TestGoldenKeyValue(t *testing.T) {
	// A lone key: bare str in wasmbus, {key} in the legacy eras.
	wantGolden(t, must(EncodeKey(EraWasmbus, "k")), fixstr("k"))
	for _, e := range legacyEras {
		wantGolden(t, must(EncodeKey(e, "k")), cat(fixmap(1), fixstr("key"), fixstr("k")))
	}
	wantGolden(t, must(EncodeGetResponse(GetResponse{Value: "v", Exists: true})),
		cat(fixmap(2), fixstr("value"), fixstr("v"), fixstr("exists"), msgTrue))
	wantGolden(t, must(EncodeSetRequest(EraWasmbus, SetRequest{Key: "k", Value: "v"})),
		cat(fixmap(3), fixstr("key"), fixstr("k"), fixstr("value"), fixstr("v"), fixstr("expires"), []byte{0x00}))
	wantGolden(t, must(EncodeListItemRequest(EraWasmbus, ListItemRequest{List: "l", Value: "x"})),
		cat(fixmap(2), fixstr("listName"), fixstr("l"), fixstr("value"), fixstr("x")))
	wantGolden(t, must(EncodeListItemRequest(Era018, ListItemRequest{List: "l", Value: "x"})),
		cat(fixmap(2), fixstr("key"), fixstr("l"), fixstr("value"), fixstr("x")))
	wantGolden(t, must(EncodeSetItemRequest(EraWasmbus, SetItemRequest{Set: "s", Value: "x"})),
		cat(fixmap(2), fixstr("setName"), fixstr("s"), fixstr("value"), fixstr("x")))
	wantGolden(t, must(EncodeListRangeRequest(EraWasmbus, ListRangeRequest{List: "l", Stop: -1})),
		cat(fixmap(3), fixstr("listName"), fixstr("l"), fixstr("start"), []byte{0x00}, fixstr("stop"), []byte{0xff}))
	wantGolden(t, must(EncodeKeys(EraWasmbus, []string{"a"})), cat(fixarray(1), fixstr("a")))
	wantGolden(t, must(EncodeKeys(EraWaSCC, []string{"a"})), cat(fixmap(1), fixstr("keys"), fixarray(1), fixstr("a")))
	wantGolden(t, must(EncodeValuesResponse(nil)), cat(fixmap(1), fixstr("values"), fixarray(0)))
	wantGolden(t, must(EncodeListResponse(2)), cat(fixmap(1), fixstr("newCount"), []byte{0x02}))
	wantGolden(t, must(EncodeDelResponse("k")), cat(fixmap(1), fixstr("key"), fixstr("k")))
	wantGolden(t, must(EncodeSetResponse("v")), cat(fixmap(1), fixstr("value"), fixstr("v")))
	wantGolden(t, must(EncodeKeysRequest(KeysRequest{})), fixmap(0))
	wantGolden(t, must(EncodeBool(true)), msgTrue)
	wantGolden(t, must(EncodeUint32(128)), []byte{0xcc, 0x80})
	wantGolden(t, must(EncodeStrings(nil)), fixarray(0))

	// SetOperationResponse: new_count in 0.18, newCount in waSCC.
	wantGolden(t, must(EncodeSetOperationResponse(Era018, 1)), cat(fixmap(1), fixstr("new_count"), []byte{0x01}))
	wantGolden(t, must(EncodeSetOperationResponse(EraWaSCC, 1)), cat(fixmap(1), fixstr("newCount"), []byte{0x01}))
	_, err := DecodeSetOperationResponse(Era018, cat(fixmap(1), fixstr("newCount"), []byte{0x01}))
	wantFieldError(t, err, "new_count")

	// A legacy expiry is i32.
	if _, err := EncodeSetRequest(Era018, SetRequest{Key: "k", Expires: 1 << 31}); err == nil {
		t.Fatal("legacy expires over MaxInt32 encoded")
	}
	_, err = DecodeSetRequest(Era018, cat(fixmap(3), fixstr("key"), fixstr("k"), fixstr("value"), fixstr("v"), fixstr("expires"), []byte{0xff}))
	wantFieldError(t, err, "expires")
}

func TestGoldenMessaging(t *testing.T) {
	m := Message{Subject: "s", Body: []byte("b")}
	// wasmbus leaves an empty replyTo out, as wasmbus-rpc does for None.
	wantGolden(t, must(EncodeMessage(EraWasmbus, m)),
		cat(fixmap(2), fixstr("subject"), fixstr("s"), fixstr("body"), bin8("b")))
	// The legacy eras always write it.
	legacy := cat(fixmap(3), fixstr("subject"), fixstr("s"), fixstr("replyTo"), fixstr(""), fixstr("body"), bin8("b"))
	for _, e := range legacyEras {
		wantGolden(t, must(EncodeMessage(e, m)), legacy)
	}
	// Decoders accept a nil replyTo (an Option serialized as nil).
	got, err := DecodeMessage(EraWasmbus, cat(fixmap(3), fixstr("subject"), fixstr("s"), fixstr("replyTo"), []byte{0xc0}, fixstr("body"), bin8("b")))
	if err != nil || got.ReplyTo != "" || string(got.Body) != "b" {
		t.Fatalf("nil replyTo: %+v, %v", got, err)
	}
	// reply_to is a documented legacy alias.
	got, err = DecodeMessage(EraWaSCC, cat(fixmap(3), fixstr("subject"), fixstr("s"), fixstr("reply_to"), fixstr("r"), fixstr("body"), bin8("b")))
	if err != nil || got.ReplyTo != "r" {
		t.Fatalf("reply_to: %+v, %v", got, err)
	}
	// 0.18 requires replyTo.
	_, err = DecodeMessage(Era018, cat(fixmap(2), fixstr("subject"), fixstr("s"), fixstr("body"), bin8("b")))
	wantFieldError(t, err, "replyTo")

	wantGolden(t, must(EncodeRequestMessage(EraWasmbus, RequestMessage{Subject: "s", TimeoutMs: 1000})),
		cat(fixmap(3), fixstr("subject"), fixstr("s"), fixstr("body"), bin8(""), fixstr("timeoutMs"), []byte{0xcd, 0x03, 0xe8}))
	wantGolden(t, must(EncodeRequestMessage(Era018, RequestMessage{Subject: "s", TimeoutMs: 1000})),
		cat(fixmap(3), fixstr("subject"), fixstr("s"), fixstr("body"), bin8(""), fixstr("timeout"), []byte{0xcd, 0x03, 0xe8}))
	// A legacy i64 timeout may come in any width; a negative one is refused.
	r, err := DecodeRequestMessage(EraWaSCC, cat(fixmap(2), fixstr("subject"), fixstr("s"), fixstr("timeout"), []byte{0xd3, 0, 0, 0, 0, 0, 0, 0x03, 0xe8}))
	if err != nil || r.TimeoutMs != 1000 {
		t.Fatalf("int64 timeout: %+v, %v", r, err)
	}
	_, err = DecodeRequestMessage(EraWaSCC, cat(fixmap(2), fixstr("subject"), fixstr("s"), fixstr("timeout"), []byte{0xff}))
	wantFieldError(t, err, "timeout")

	wantGolden(t, must(EncodePublishResponse(true)), cat(fixmap(1), fixstr("published"), msgTrue))
}

func TestGoldenLogging(t *testing.T) {
	wantGolden(t, must(EncodeLogEntry(EraWasmbus, LogEntry{Level: "info", Text: "t"})),
		cat(fixmap(2), fixstr("level"), fixstr("info"), fixstr("text"), fixstr("t")))
	wantGolden(t, must(EncodeLogEntry(Era018, LogEntry{Level: "info", Text: "t"})),
		cat(fixmap(3), fixstr("target"), fixstr(""), fixstr("level"), fixstr("info"), fixstr("text"), fixstr("t")))
	// waSCC: the level is a number (3 = info) and the text is "body".
	wascc := cat(fixmap(2), fixstr("level"), []byte{0x03}, fixstr("body"), fixstr("t"))
	wantGolden(t, must(EncodeLogEntry(EraWaSCC, LogEntry{Level: "info", Text: "t"})), wascc)
	got, err := DecodeLogEntry(EraWaSCC, wascc)
	if err != nil || got != (LogEntry{Level: "info", Text: "t"}) {
		t.Fatalf("waSCC: %+v, %v", got, err)
	}
	_, err = DecodeLogEntry(EraWaSCC, cat(fixmap(2), fixstr("level"), []byte{0x06}, fixstr("body"), fixstr("t")))
	wantFieldError(t, err, "level")
	_, err = DecodeLogEntry(EraWaSCC, cat(fixmap(2), fixstr("level"), fixstr("info"), fixstr("body"), fixstr("t")))
	wantFieldError(t, err, "level")
	// An early TinyGo binding wrote Level and Text.
	got, err = DecodeLogEntry(EraWasmbus, cat(fixmap(2), fixstr("Level"), fixstr("warn"), fixstr("Text"), fixstr("t")))
	if err != nil || got != (LogEntry{Level: "warn", Text: "t"}) {
		t.Fatalf("capitalised keys: %+v, %v", got, err)
	}
	_, err = DecodeLogEntry(EraWasmbus, cat(fixmap(1), fixstr("level"), fixstr("warn")))
	wantFieldError(t, err, "text")
}

func TestGoldenNumberGenAndHealth(t *testing.T) {
	wantGolden(t, must(EncodeRangeLimit(RangeLimit{Min: 1, Max: 300})),
		cat(fixmap(2), fixstr("min"), []byte{0x01}, fixstr("max"), []byte{0xcd, 0x01, 0x2c}))
	_, err := DecodeRangeLimit(cat(fixmap(2), fixstr("min"), []byte{0xff}, fixstr("max"), []byte{0x01}))
	wantFieldError(t, err, "min")
	_, err = DecodeRangeLimit(cat(fixmap(2), fixstr("min"), []byte{0x01}, fixstr("max"), []byte{0xcf, 0, 0, 0, 1, 0, 0, 0, 0}))
	wantFieldError(t, err, "max")

	wantGolden(t, must(EncodeHealthRequest(EraWasmbus)), fixmap(0))
	for _, e := range legacyEras {
		wantGolden(t, must(EncodeHealthRequest(e)), cat(fixmap(1), fixstr("placeholder"), msgTrue))
	}
	wantGolden(t, must(EncodeHealthResponse(EraWasmbus, HealthResponse{Healthy: true})),
		cat(fixmap(2), fixstr("healthy"), msgTrue, fixstr("message"), fixstr("")))
	for _, tc := range []struct {
		name string
		b    []byte
		want HealthResponse
	}{
		{"empty (waSCC)", nil, HealthResponse{Healthy: true}},
		{"nil", []byte{0xc0}, HealthResponse{Healthy: true}},
		{"nil and AS zero", []byte{0xc0, 0x00}, HealthResponse{Healthy: true}},
		{"prefixed nil", []byte{0xc1, 0xc0}, HealthResponse{Healthy: true}},
		{"healthy only", cat(fixmap(1), fixstr("healthy"), msgTrue), HealthResponse{Healthy: true}},
		{"unhealthy", cat(fixmap(2), fixstr("healthy"), msgFalse, fixstr("message"), fixstr("m")), HealthResponse{Message: "m"}},
		{"empty map", fixmap(0), HealthResponse{}},
	} {
		for _, e := range allEras {
			got, err := DecodeHealthResponse(e, tc.b)
			if err != nil || got != tc.want {
				t.Fatalf("%s %s: %+v, %v", tc.name, e, got, err)
			}
		}
	}
	_, err = DecodeHealthResponse(EraWasmbus, cat(fixmap(1), fixstr("healthy"), fixstr("yes")))
	wantFieldError(t, err, "healthy")
}

func TestFraming(t *testing.T) {
	key := fixstr("k")
	// Later wasmbus-rpc releases prefix msgpack with 0xc1.
	got, err := DecodeKey(EraWasmbus, cat([]byte{0xc1}, key))
	if err != nil || got != "k" {
		t.Fatalf("0xc1 prefix: %q, %v", got, err)
	}
	// ... and CBOR with 0x7f, which is refused by name.
	_, err = DecodeKey(EraWasmbus, []byte{0x7f, 0x61, 'k'})
	wantFieldError(t, err, "")
	if !strings.Contains(err.Error(), "CBOR") {
		t.Fatalf("err = %v, want it to say CBOR", err)
	}
	// A lone 0x7f is the fixint 127.
	if n, err := DecodeUint32([]byte{0x7f}); err != nil || n != 127 {
		t.Fatalf("fixint 127: %d, %v", n, err)
	}
	_, err = DecodeKey(EraWasmbus, nil)
	wantFieldError(t, err, "")
	_, err = DecodeKey(EraWasmbus, cat(key, key))
	wantFieldError(t, err, "")
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	cases := []struct {
		name   string
		decode func() error
		field  string
	}{
		{"statusCode as str", func() error {
			_, err := DecodeHTTPResponse(EraWasmbus, cat(fixmap(1), fixstr("statusCode"), fixstr("200")))
			return err
		}, "statusCode"},
		{"statusCode misspelt", func() error {
			_, err := DecodeHTTPResponse(EraWasmbus, cat(fixmap(1), fixstr("status_code"), []byte{0xcc, 0xc8}))
			return err
		}, "statusCode"},
		{"legacy statusCode over u16", func() error {
			_, err := DecodeHTTPResponse(Era018, cat(fixmap(1), fixstr("statusCode"), []byte{0xce, 0, 1, 0, 0}))
			return err
		}, "statusCode"},
		{"wasmbus header value is a str", func() error {
			_, err := DecodeHTTPResponse(EraWasmbus, cat(fixmap(2), fixstr("statusCode"), []byte{0x01}, fixstr("header"), fixmap(1), fixstr("A"), fixstr("b")))
			return err
		}, "header[A]"},
		{"legacy header value is a list", func() error {
			_, err := DecodeHTTPResponse(EraWaSCC, cat(fixmap(2), fixstr("statusCode"), []byte{0x01}, fixstr("header"), fixmap(1), fixstr("A"), fixarray(1), fixstr("b")))
			return err
		}, "header[A]"},
		{"body is an int", func() error {
			_, err := DecodeHTTPResponse(EraWasmbus, cat(fixmap(2), fixstr("statusCode"), []byte{0x01}, fixstr("body"), []byte{0x01}))
			return err
		}, "body"},
		{"missing header (0.18)", func() error {
			_, err := DecodeHTTPRequest(Era018, cat(fixmap(4), fixstr("method"), fixstr("G"), fixstr("path"), fixstr("/"), fixstr("queryString"), fixstr(""), fixstr("body"), bin8("")))
			return err
		}, "header"},
		{"increment value over i32", func() error {
			_, err := DecodeIncrementRequest(cat(fixmap(2), fixstr("key"), fixstr("k"), fixstr("value"), []byte{0xce, 0x80, 0, 0, 0}))
			return err
		}, "value"},
		{"list element not a str", func() error {
			_, err := DecodeKeys(EraWasmbus, cat(fixarray(2), fixstr("a"), []byte{0x01}))
			return err
		}, "[1]"},
		{"bin length past the end", func() error {
			_, err := DecodeMessage(EraWasmbus, cat(fixmap(2), fixstr("subject"), fixstr("s"), fixstr("body"), []byte{0xc6, 0xff, 0xff, 0xff, 0xff}))
			return err
		}, "body"},
		{"not a map", func() error {
			_, err := DecodeGetResponse(fixarray(0))
			return err
		}, ""},
		{"float for an int", func() error {
			_, err := DecodeUint32([]byte{0xcb, 0, 0, 0, 0, 0, 0, 0, 0})
			return err
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantFieldError(t, tc.decode(), tc.field) })
	}
}

// Unknown fields are skipped, whatever they hold, within bounds.
func TestUnknownFields(t *testing.T) {
	ok := cat(fixmap(3),
		fixstr("x"), cat(fixmap(1), fixstr("deep"), fixarray(2), []byte{0xcb, 1, 2, 3, 4, 5, 6, 7, 8}, []byte{0xd6, 1, 0, 0, 0, 0}),
		fixstr("value"), fixstr("v"),
		fixstr("exists"), msgTrue)
	if g, err := DecodeGetResponse(ok); err != nil || g != (GetResponse{Value: "v", Exists: true}) {
		t.Fatalf("%+v, %v", g, err)
	}
	long := strings.Repeat("k", 1000)
	_, err := DecodeGetResponse(cat(fixmap(1), []byte{0xda, 0x03, 0xe8}, []byte(long), []byte{0xc1}))
	var pe *PayloadError
	if !errors.As(err, &pe) || len(pe.Field) > maxFieldInError+len("…") {
		t.Fatalf("err = %v: a guest's key must be cut short in errors", err)
	}
	deep := cat(fixmap(1), fixstr("x"), bytes.Repeat([]byte{0x91}, 100000), []byte{0x01})
	_, err = DecodeGetResponse(deep)
	wantFieldError(t, err, "x")
	if !strings.Contains(err.Error(), "nested") {
		t.Fatalf("err = %v", err)
	}
}

func TestInvalidEra(t *testing.T) {
	if _, err := EncodeHTTPRequest(0, HTTPRequest{}); err == nil || errors.Is(err, capabilities.ErrBadPayload) {
		t.Fatalf("era 0: %v, want an error that is not a bad payload", err)
	}
	if _, err := DecodeSetOperationResponse(EraWasmbus, fixmap(0)); err == nil {
		t.Fatal("wasmbus has no SetOperationResponse")
	}
	if Era(9).String() != "era(9)" || EraWaSCC.String() != "waSCC" {
		t.Fatal("Era.String")
	}
}
