package httpserver_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/httpserver"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
)

// FuzzActorResponse feeds arbitrary bytes to the server as an actor's
// answer, over real HTTP, in both formats: the server must not fail, and it
// answers either 502 or the response the bytes decode to.
func FuzzActorResponse(f *testing.F) {
	for _, e := range []wasmcloud.Era{wasmcloud.EraWasmbus, wasmcloud.Era018} {
		for _, r := range []wasmcloud.HTTPResponse{
			{StatusCode: 200, Body: []byte("ok")},
			{StatusCode: 404, Status: "Not Found", Header: map[string][]string{"X-A": {"1", "2"}}},
			{StatusCode: 204, Body: []byte("no body allowed")},
			{StatusCode: 101},
			{StatusCode: 1000},
			{StatusCode: 302, Header: map[string][]string{"Location": {"/x"}, "Bad\r\nName": {"v"}, "X-B": {"a\x00b"}}},
		} {
			b, err := wasmcloud.EncodeHTTPResponse(e, r)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
			f.Add(append(b, 0))
			f.Add(append([]byte{0xc1}, b...))
			f.Add(b[:len(b)/2])
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x7f})
	f.Add(bytes.Repeat([]byte{0x91}, 100000))
	f.Add([]byte{0x81, 0xaa, 's', 't', 'a', 't', 'u', 's', 'C', 'o', 'd', 'e', 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})

	// The actor answers with the request's body: one server serves every input.
	s := httpserver.New(httpserver.Options{MaxBody: 1 << 20, Invoke: func(_ context.Context, _, _ string, payload []byte) ([]byte, error) {
		req, err := wasmcloud.DecodeHTTPRequest(wasmcloud.EraWasmbus, payload)
		if err != nil {
			req, err = wasmcloud.DecodeHTTPRequest(wasmcloud.Era018, payload)
		}
		return req.Body, err
	}})
	f.Cleanup(func() { _ = s.Close(context.Background()) })
	if err := s.Bind("a", capabilities.Grants{HTTP: []capabilities.HTTPGrant{
		{Listen: "127.0.0.1:0", PathPrefix: "/wasmbus/"},
		{Listen: "127.0.0.1:0", PathPrefix: "/legacy/", Format: capabilities.FormatLegacy},
	}}); err != nil {
		f.Fatal(err)
	}
	routes := s.Routes()
	tr := &http.Transport{}
	f.Cleanup(tr.CloseIdleConnections)

	f.Fuzz(func(t *testing.T, answer []byte) {
		if len(answer) > 1<<20 {
			return
		}
		for _, r := range routes {
			era := wasmcloud.EraWasmbus
			if r.Format == capabilities.FormatLegacy {
				era = wasmcloud.Era018
			}
			req, err := http.NewRequest(http.MethodPost, "http://"+r.Addr+r.PathPrefix, bytes.NewReader(answer))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := tr.RoundTrip(req) // no client: it would follow, and parse, a Location
			if err != nil {
				t.Fatalf("%s: %v", r.PathPrefix, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("%s: reading the body: %v", r.PathPrefix, err)
			}
			want, derr := wasmcloud.DecodeHTTPResponse(era, answer)
			valid := derr == nil && want.StatusCode >= 200 && want.StatusCode <= 599
			switch {
			case !valid:
				if resp.StatusCode != http.StatusBadGateway || resp.Header.Get(httpserver.ErrorCodeHeader) != httpserver.CodeBadResponse {
					t.Fatalf("%s: an answer that is not a valid HttpResponse (%v) got %d %q", r.PathPrefix, derr, resp.StatusCode, resp.Header)
				}
			case resp.StatusCode != int(want.StatusCode):
				t.Fatalf("%s: status %d, want %d", r.PathPrefix, resp.StatusCode, want.StatusCode)
			case bodyAllowed(resp.StatusCode) && !bytes.Equal(body, want.Body):
				t.Fatalf("%s: body %q, want %q", r.PathPrefix, body, want.Body)
			case resp.Header.Get(httpserver.ErrorCodeHeader) != "":
				t.Fatalf("%s: the actor's response carries %s", r.PathPrefix, httpserver.ErrorCodeHeader)
			}
		}
	})
}

func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified
}
