//go:build !wasip1

package httpserver_test

import (
	"encoding/hex"
	"math"
	"reflect"
	"strings"
	"testing"

	vm "github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/sdk/httpserver"
	"github.com/trellis-edge/trellis/sdk/internal/calltest"
	"github.com/trellis-edge/trellis/sdk/sdktest"
)

type m = map[string]any

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    httpserver.Request
		wantErr string
	}{
		{
			name: "wasmbus",
			payload: marshal(m{"method": "POST", "path": "/api/x", "queryString": "a=1", "body": []byte("hi"),
				"header": m{"Content-Type": []string{"text/plain"}, "Accept": []string{"a", "b"}}}),
			want: httpserver.Request{Method: "POST", Path: "/api/x", QueryString: "a=1", Body: []byte("hi"),
				Header: httpserver.Header{"Content-Type": {"text/plain"}, "Accept": {"a", "b"}}},
		},
		{
			name:    "legacy header, nil body",
			payload: marshal(m{"method": "GET", "path": "/", "queryString": "", "header": m{"Accept": "x"}, "body": nil}),
			want:    httpserver.Request{Method: "GET", Path: "/", Header: httpserver.Header{"Accept": {"x"}}},
		},
		{
			name:    "no header, unknown key",
			payload: marshal(m{"method": "GET", "path": "/", "trailer": m{"x": []any{1}}}),
			want:    httpserver.Request{Method: "GET", Path: "/", Header: httpserver.Header{}},
		},
		{name: "no method", payload: marshal(m{"path": "/"}), wantErr: "sdk/httpserver: request: no method"},
		{name: "no path", payload: marshal(m{"method": "GET"}), wantErr: "sdk/httpserver: request: no path"},
		{name: "bad header value", payload: marshal(m{"method": "GET", "path": "/", "header": m{"A": []int{1}}}), wantErr: `key "header": key "A": msgpack: want str, got int`},
		{name: "not msgpack", payload: []byte("GET / HTTP/1.1"), wantErr: "want map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := httpserver.DecodeRequest(tt.payload)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, %v; want %#v", got, err, tt.want)
			}
		})
	}
}

func TestEncodeResponse(t *testing.T) {
	tests := []struct {
		name string
		r    httpserver.Response
		want string
	}{
		{
			name: "text",
			r:    httpserver.Text(200, "ok"),
			want: "83aa737461747573436f6465ccc8a668656164657281ac436f6e74656e742d5479706591b9746578742f706c61696e3b20636861727365743d7574662d38a4626f6479c4026f6b",
		},
		{
			name: "zero value: 200, empty header and body",
			r:    httpserver.Response{},
			want: "83aa737461747573436f6465ccc8a668656164657280a4626f6479c400",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hex.EncodeToString(httpserver.EncodeResponse(tt.r)); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}

	// Round trip through the host's msgpack library, into the host's shape.
	type wire struct {
		StatusCode uint16              `msgpack:"statusCode"`
		Header     map[string][]string `msgpack:"header"`
		Body       []byte              `msgpack:"body"`
	}
	for _, tc := range []struct {
		r    httpserver.Response
		want wire
	}{
		{httpserver.Response{StatusCode: 404, Header: httpserver.Header{"A": {"1", "2"}, "B": nil}, Body: []byte("x")},
			wire{404, map[string][]string{"A": {"1", "2"}, "B": {}}, []byte("x")}},
		{httpserver.Response{StatusCode: 99}, wire{500, map[string][]string{}, []byte{}}},
		{httpserver.Response{StatusCode: math.MaxInt32}, wire{500, map[string][]string{}, []byte{}}},
	} {
		var got wire
		if err := vm.Unmarshal(httpserver.EncodeResponse(tc.r), &got); err != nil {
			t.Fatal(err)
		}
		if got.StatusCode != tc.want.StatusCode || string(got.Body) != string(tc.want.Body) || len(got.Header) != len(tc.want.Header) {
			t.Errorf("%+v encodes as %+v, want %+v", tc.r, got, tc.want)
		}
		for k, v := range tc.want.Header {
			if strings.Join(got.Header[k], ",") != strings.Join(v, ",") {
				t.Errorf("header %s = %q, want %q", k, got.Header[k], v)
			}
		}
	}
}

func TestHelpers(t *testing.T) {
	r := httpserver.JSON(201, map[string]int{"counter": 3})
	if r.StatusCode != 201 || string(r.Body) != `{"counter":3}` || r.Header.Get("content-type") != "application/json" {
		t.Errorf("JSON: %d %q %v", r.StatusCode, r.Body, r.Header)
	}
	r = httpserver.JSON(200, func() {})
	if r.StatusCode != 500 || !strings.Contains(string(r.Body), "unsupported type") {
		t.Errorf("JSON of a func: %d %q", r.StatusCode, r.Body)
	}
	r = httpserver.Error(400, `bad "name"`)
	if r.StatusCode != 400 || string(r.Body) != `{"error":"bad \"name\""}` {
		t.Errorf("Error: %d %q", r.StatusCode, r.Body)
	}
}

func TestHeader(t *testing.T) {
	h := httpserver.Header{}
	h.Set("content-type", "a")
	h.Add("X-FOO-bar", "1")
	h.Add("x-foo-bar", "2")
	if !reflect.DeepEqual(h, httpserver.Header{"Content-Type": {"a"}, "X-Foo-Bar": {"1", "2"}}) {
		t.Errorf("header %v", h)
	}
	raw := httpserver.Header{"x-odd": {"v"}} // not canonical: found by a case-insensitive scan
	if raw.Get("X-Odd") != "v" || raw.Get("x-ODD") != "v" || raw.Get("nope") != "" {
		t.Error("Get of a non-canonical name")
	}
	for in, want := range map[string]string{
		"content-length": "Content-Length", "ETAG": "Etag", "a-b-c": "A-B-C", "": "", "x y": "x y", "Ok-Already": "Ok-Already", "-x": "-X",
	} {
		if got := httpserver.CanonicalName(in); got != want {
			t.Errorf("CanonicalName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHandle(t *testing.T) {
	h := sdktest.New(t)
	var seen httpserver.Request
	httpserver.Handle("", func(r httpserver.Request) httpserver.Response {
		seen = r
		return httpserver.JSON(200, map[string]string{"path": r.Path})
	})
	req := marshal(m{"method": "GET", "path": "/api/x", "queryString": "", "header": m{}, "body": []byte{}})
	resp, err := h.Invoke(httpserver.DefaultOperation, req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		StatusCode int                 `msgpack:"statusCode"`
		Header     map[string][]string `msgpack:"header"`
		Body       []byte              `msgpack:"body"`
	}
	if err := vm.Unmarshal(resp, &got); err != nil {
		t.Fatal(err)
	}
	if got.StatusCode != 200 || string(got.Body) != `{"path":"/api/x"}` || got.Header["Content-Type"][0] != "application/json" || seen.Method != "GET" {
		t.Errorf("response %+v for request %+v", got, seen)
	}
	if _, err := h.Invoke(httpserver.DefaultOperation, []byte{0x90}); err == nil || !strings.Contains(err.Error(), "sdk/httpserver: request") {
		t.Errorf("bad request payload: %v", err)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(marshal(m{"method": "POST", "path": "/api/x", "queryString": "a=1", "body": []byte("hi"), "header": m{"A": []string{"1"}}}))
	f.Add(marshal(m{"method": "GET", "path": "/", "header": m{"A": "1", "B": nil}}))
	f.Add(calltest.Hex("82a6686561646572df7fffffffa0a0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := httpserver.DecodeRequest(b)
		if err == nil && r.Header == nil {
			t.Fatal("decoded a request with a nil header")
		}
	})
}

// marshal encodes v as the host does, with its msgpack library.
func marshal(v any) []byte {
	b, err := vm.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
