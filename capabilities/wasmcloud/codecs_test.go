package wasmcloud

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/trellis-edge/trellis/capabilities"
)

var allEras = []Era{EraWasmbus, Era018, EraWaSCC}

// codec is one decoder with its encoder and sample values, for the
// round-trip tests and as the seeds of its fuzz target.
type codec struct {
	name    string
	eras    []Era // the eras it exists in; era-less codecs list all and ignore it
	encode  func(Era, any) ([]byte, error)
	decode  func(Era, []byte) (any, error)
	samples []any
}

// wrap adapts typed functions to the codec signatures.
func wrap[T any](enc func(Era, T) ([]byte, error), dec func(Era, []byte) (T, error)) (func(Era, any) ([]byte, error), func(Era, []byte) (any, error)) {
	return func(e Era, v any) ([]byte, error) { return enc(e, v.(T)) },
		func(e Era, b []byte) (any, error) { return dec(e, b) }
}

// noEra adapts an era-less function.
func noEra[T, R any](f func(T) (R, error)) func(Era, T) (R, error) {
	return func(_ Era, v T) (R, error) { return f(v) }
}

func codecOf[T any](name string, eras []Era, enc func(Era, T) ([]byte, error), dec func(Era, []byte) (T, error), samples ...T) codec {
	e, d := wrap(enc, dec)
	c := codec{name: name, eras: eras, encode: e, decode: d}
	for _, s := range samples {
		c.samples = append(c.samples, s)
	}
	return c
}

var legacyEras = []Era{Era018, EraWaSCC}

// codecs lists every decoder of the package.
var codecs = []codec{
	codecOf("HTTPRequest", allEras, EncodeHTTPRequest, DecodeHTTPRequest,
		HTTPRequest{Method: "GET", Path: "/hello", QueryString: "a=1&b=2", Header: map[string][]string{"Accept": {"*/*"}, "X-Id": {"7"}}, Body: []byte("hi")},
		HTTPRequest{Method: "POST", Path: "/", Header: map[string][]string{}, Body: []byte{0, 1, 2, 0xff}},
	),
	codecOf("HTTPResponse", allEras, EncodeHTTPResponse, DecodeHTTPResponse,
		HTTPResponse{StatusCode: 200, Header: map[string][]string{"Content-Type": {"text/plain"}}, Body: []byte("ok")},
		HTTPResponse{StatusCode: 65535, Header: map[string][]string{}, Body: []byte{}},
		HTTPResponse{StatusCode: 404, Status: "Not Found", Header: map[string][]string{}, Body: []byte("gone")},
	),
	codecOf("Key", allEras, EncodeKey, DecodeKey, "counter", "", "ключ"),
	codecOf("Keys", allEras, EncodeKeys, DecodeKeys, []string{"a", "b"}, []string{}),
	codecOf("GetResponse", allEras, noEra(EncodeGetResponse), noEra(DecodeGetResponse),
		GetResponse{Value: "v", Exists: true}, GetResponse{}),
	codecOf("SetRequest", allEras, EncodeSetRequest, DecodeSetRequest,
		SetRequest{Key: "k", Value: "v", Expires: 60}, SetRequest{Key: "k", Value: ""}),
	codecOf("IncrementRequest", allEras, noEra(EncodeIncrementRequest), noEra(DecodeIncrementRequest),
		IncrementRequest{Key: "hits", Value: 1}, IncrementRequest{Key: "hits", Value: -2147483648}),
	codecOf("IncrementResponse", allEras, EncodeIncrementResponse, DecodeIncrementResponse,
		int32(5), int32(-1), int32(2147483647)),
	codecOf("ListItemRequest", allEras, EncodeListItemRequest, DecodeListItemRequest,
		ListItemRequest{List: "l", Value: "x"}),
	codecOf("ListRangeRequest", allEras, EncodeListRangeRequest, DecodeListRangeRequest,
		ListRangeRequest{List: "l", Start: 0, Stop: -1}),
	codecOf("SetItemRequest", allEras, EncodeSetItemRequest, DecodeSetItemRequest,
		SetItemRequest{Set: "s", Value: "x"}),
	codecOf("KeysRequest", []Era{EraWasmbus}, noEra(EncodeKeysRequest), noEra(DecodeKeysRequest),
		KeysRequest{GlobExpression: "user.*"}, KeysRequest{}),
	codecOf("ValuesResponse", legacyEras, noEra(EncodeValuesResponse), noEra(DecodeValuesResponse),
		[]string{"a", "b"}, []string{}),
	codecOf("ListResponse", legacyEras, noEra(EncodeListResponse), noEra(DecodeListResponse), int32(3)),
	codecOf("SetOperationResponse", legacyEras, EncodeSetOperationResponse, DecodeSetOperationResponse, int32(1), int32(0)),
	codecOf("DelResponse", legacyEras, noEra(EncodeDelResponse), noEra(DecodeDelResponse), "k"),
	codecOf("SetResponse", legacyEras, noEra(EncodeSetResponse), noEra(DecodeSetResponse), "v"),
	codecOf("Message", allEras, EncodeMessage, DecodeMessage,
		Message{Subject: "sensors.temp", ReplyTo: "_INBOX.1", Body: []byte("21.5")},
		Message{Subject: "s", Body: []byte{}},
	),
	codecOf("RequestMessage", allEras, EncodeRequestMessage, DecodeRequestMessage,
		RequestMessage{Subject: "svc", Body: []byte("q"), TimeoutMs: 2000}),
	codecOf("PublishResponse", []Era{Era018}, noEra(EncodePublishResponse), noEra(DecodePublishResponse), true, false),
	codecOf("LogEntry", allEras,
		func(e Era, l LogEntry) ([]byte, error) {
			if e != Era018 {
				l.Target = ""
			}
			return EncodeLogEntry(e, l)
		}, DecodeLogEntry,
		LogEntry{Level: "info", Text: "started"}, LogEntry{Level: "error", Text: "", Target: "actor"}),
	codecOf("RangeLimit", []Era{EraWasmbus, Era018}, noEra(EncodeRangeLimit), noEra(DecodeRangeLimit),
		RangeLimit{Min: 1, Max: 6}, RangeLimit{Max: 4294967295}),
	codecOf("HealthRequest", allEras,
		func(e Era, _ struct{}) ([]byte, error) { return EncodeHealthRequest(e) },
		func(e Era, b []byte) (struct{}, error) { return struct{}{}, DecodeHealthRequest(e, b) },
		struct{}{}),
	codecOf("HealthResponse", allEras, EncodeHealthResponse, DecodeHealthResponse,
		HealthResponse{Healthy: true}, HealthResponse{Message: "disk full"}),
	codecOf("String", allEras, noEra(EncodeString), noEra(DecodeString), "3f1c4a9e-0000-4000-8000-000000000000", ""),
	codecOf("Bool", allEras, noEra(EncodeBool), noEra(DecodeBool), true, false),
	codecOf("Uint32", allEras, noEra(EncodeUint32), noEra(DecodeUint32), uint32(0), uint32(127), uint32(128), uint32(4294967295)),
	codecOf("Uint64", allEras, noEra(EncodeUint64), noEra(DecodeUint64), uint64(0), uint64(1<<63)),
	codecOf("Strings", allEras, noEra(EncodeStrings), noEra(DecodeStrings), []string{"x", "y", "z"}, []string{}),
}

func codecNamed(t testing.TB, name string) codec {
	t.Helper()
	for _, c := range codecs {
		if c.name == name {
			return c
		}
	}
	t.Fatalf("no codec %q", name)
	return codec{}
}

// expectedAfterRoundTrip is what decoding v's encoding yields in era e when
// the era cannot carry all of v.
func expectedAfterRoundTrip(e Era, v any) any {
	switch v := v.(type) {
	case LogEntry:
		if e != Era018 {
			v.Target = ""
		}
		return v
	case HTTPResponse:
		if e == EraWasmbus {
			v.Status = ""
		}
		return v
	}
	return v
}

func TestRoundTrip(t *testing.T) {
	for _, c := range codecs {
		for _, e := range c.eras {
			for i, v := range c.samples {
				t.Run(c.name+"/"+e.String()+"/"+string(rune('0'+i)), func(t *testing.T) {
					b, err := c.encode(e, v)
					if err != nil {
						t.Fatalf("encode: %v", err)
					}
					got, err := c.decode(e, b)
					if err != nil {
						t.Fatalf("decode % x: %v", b, err)
					}
					if want := expectedAfterRoundTrip(e, v); !reflect.DeepEqual(got, want) {
						t.Fatalf("got %#v, want %#v", got, want)
					}
					b2, err := c.encode(e, got)
					if err != nil || !bytes.Equal(b, b2) {
						t.Fatalf("re-encoding differs: % x, then % x (%v)", b, b2, err)
					}
				})
			}
		}
	}
}

// fuzzDecoder is the body of every fuzz target: a decoder never panics, its
// errors are bad payloads, and what it accepts re-encodes to bytes it
// decodes to the same value.
func fuzzDecoder(f *testing.F, name string) {
	c := codecNamed(f, name)
	for _, e := range c.eras {
		for _, v := range c.samples {
			b, err := c.encode(e, v)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(e), b)
			f.Add(uint8(e), append(append([]byte{prefixMsgpack}, b...), 0))
			if len(b) > 2 {
				f.Add(uint8(e), b[:len(b)/2])
			}
		}
	}
	for _, g := range garbage {
		f.Add(uint8(EraWasmbus), g)
		f.Add(uint8(Era018), g)
	}
	f.Fuzz(func(t *testing.T, era uint8, b []byte) {
		e := c.eras[int(era)%len(c.eras)]
		v, err := c.decode(e, b)
		if err != nil {
			var pe *PayloadError
			if !errors.Is(err, capabilities.ErrBadPayload) || !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *PayloadError wrapping ErrBadPayload", err)
			}
			return
		}
		b2, err := c.encode(e, v)
		if err != nil {
			var pe *PayloadError
			if errors.As(err, &pe) {
				return // a value the decoder's range admits but the era's encoder cannot write
			}
			t.Fatalf("re-encode %#v: %v", v, err)
		}
		v2, err := c.decode(e, b2)
		if err != nil {
			t.Fatalf("decode of re-encoding % x: %v", b2, err)
		}
		// Compared as bytes: nil and empty lists and maps encode alike.
		if b3, err := c.encode(e, v2); err != nil || !bytes.Equal(b2, b3) {
			t.Fatalf("%#v re-decoded as %#v: % x then % x (%v)", v, v2, b2, b3, err)
		}
	})
}

// garbage seeds every fuzz target with framing and length traps.
var garbage = [][]byte{
	{},
	{0x00},
	{0xc0},
	{0xc1},
	{0xc1, 0x80},
	{0x7f, 0x00},
	{0x7f, 0x80},
	{0xdf, 0xff, 0xff, 0xff, 0xff},      // map32 of 4G entries
	{0xdd, 0xff, 0xff, 0xff, 0xff},      // array32 of 4G elements
	{0xc6, 0xff, 0xff, 0xff, 0xff},      // bin32 of 4 GiB
	{0xdb, 0xff, 0xff, 0xff, 0xff},      // str32 of 4 GiB
	{0x81, 0xa1, 'x', 0xc9, 0, 0, 0, 1}, // unknown field: ext32 without data
	{0x81, 0xa1, 'x', 0xc1},             // unknown field: the never-used code
	{0x81, 0xcc, 0x01, 0x01},            // int key
	bytes.Repeat([]byte{0x91}, 1000),    // deep nesting at the top
	append([]byte{0x81, 0xa1, 'x'}, bytes.Repeat([]byte{0x91}, 1000)...), // deep nesting in an unknown field
}
