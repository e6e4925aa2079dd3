//go:build !wasip1

package main

import (
	"strings"
	"testing"

	"github.com/trellis-edge/trellis/capabilities"
	hostkv "github.com/trellis-edge/trellis/capabilities/kv"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
	"github.com/trellis-edge/trellis/sdk/httpserver"
	"github.com/trellis-edge/trellis/sdk/sdktest"
	"github.com/trellis-edge/trellis/store"
)

// host runs the actor against the real trellis:kv handler over a real
// store, through the dispatcher, as the agent would, with grants g.
func host(t *testing.T, g capabilities.Grants) *sdktest.Host {
	t.Helper()
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d := capabilities.NewDispatcher(capabilities.DispatcherOptions{})
	d.Register(capabilities.KV, hostkv.Handler{Store: st})
	if err := d.SetGrants("kvcounter", g); err != nil {
		t.Fatal(err)
	}
	h := sdktest.New(t)
	h.Serve(capabilities.KV, func(op string, payload []byte) ([]byte, error) {
		return d.Dispatch(t.Context(), capabilities.Call{Actor: "kvcounter", Binding: "default", Contract: capabilities.KV, Operation: op, Payload: payload})
	})
	return h
}

// request makes a request the way the HTTP host encodes it and decodes the
// answer the way it does.
func request(t *testing.T, h *sdktest.Host, method, path string) wasmcloud.HTTPResponse {
	t.Helper()
	req, err := wasmcloud.EncodeHTTPRequest(wasmcloud.EraWasmbus, wasmcloud.HTTPRequest{Method: method, Path: path, Header: map[string][]string{"Accept": {"*/*"}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Invoke(httpserver.DefaultOperation, req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp, err := wasmcloud.DecodeHTTPResponse(wasmcloud.EraWasmbus, b)
	if err != nil {
		t.Fatalf("%s %s: response: %v", method, path, err)
	}
	return resp
}

func TestCounter(t *testing.T) {
	h := host(t, capabilities.Grants{KV: true})
	long := strings.Repeat("n", 64)
	tests := []struct {
		method, path string
		status       int
		body         string // exact, or a substring for errors
		allow        string
	}{
		{"GET", "/api/counter/hits", 200, `{"counter":1}`, ""},
		{"GET", "/api/counter/hits", 200, `{"counter":2}`, ""},
		{"GET", "/api/counter/other_one-2", 200, `{"counter":1}`, ""},
		{"GET", "/api/counter/hits", 200, `{"counter":3}`, ""},
		{"GET", "/api/counter/" + long, 200, `{"counter":1}`, ""},
		{"GET", "/api/counter/", 400, `"error":"counter name \"\": want 1 to 64 characters of a-z, A-Z, 0-9, _ and -"`, ""},
		{"GET", "/api/counter/" + long + "n", 400, "want 1 to 64 characters", ""},
		{"GET", "/api/counter/a/b", 400, `counter name \"a/b\"`, ""},
		{"GET", "/api/counter/a b", 400, "want 1 to 64", ""},
		{"GET", "/api/counter/caf\u00e9", 400, "want 1 to 64", ""},
		{"GET", "/api/counter/a.b", 400, "want 1 to 64", ""},
		{"POST", "/api/counter/hits", 405, "method POST not allowed: use GET", "GET"},
		{"DELETE", "/api/counter/hits", 405, "use GET", "GET"},
		{"GET", "/api/other", 404, `no such path: \"/api/other\"`, ""},
		{"GET", "/", 404, "no such path", ""},
	}
	for _, tt := range tests {
		resp := request(t, h, tt.method, tt.path)
		body := string(resp.Body)
		ok := int(resp.StatusCode) == tt.status
		if tt.status == 200 {
			ok = ok && body == tt.body
		} else {
			ok = ok && strings.Contains(body, tt.body)
		}
		if !ok {
			t.Errorf("%s %.40s: %d %s; want %d %s", tt.method, tt.path, resp.StatusCode, body, tt.status, tt.body)
		}
		if ct := resp.Header["Content-Type"]; len(ct) != 1 || ct[0] != "application/json" {
			t.Errorf("%s %.40s: Content-Type %q", tt.method, tt.path, ct)
		}
		if got := strings.Join(resp.Header["Allow"], ","); got != tt.allow {
			t.Errorf("%s %.40s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
	}
	// The counter is the decimal text the contract documents.
	var keys []string
	for _, c := range h.CallsTo(capabilities.KV) {
		keys = append(keys, c.Operation)
	}
	if len(keys) != 5 || keys[0] != "Increment" {
		t.Errorf("kv calls %q, want one Increment per counted request", keys)
	}
}

func TestCounterWithoutGrant(t *testing.T) {
	h := host(t, capabilities.Grants{})
	resp := request(t, h, "GET", "/api/counter/hits")
	if resp.StatusCode != 500 || !strings.Contains(string(resp.Body), "denied") {
		t.Errorf("without a kv grant: %d %s; want 500 naming the denial", resp.StatusCode, resp.Body)
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"a", "Z", "0", "_", "-", "a-b_C9", strings.Repeat("x", MaxName)} {
		if r := checkName(ok); r != "" {
			t.Errorf("checkName(%q) = %q, want ok", ok, r)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", MaxName+1), "a/b", "a b", "a.b", "é", "a\x00", "%41"} {
		if checkName(bad) == "" {
			t.Errorf("checkName(%q) accepted", bad)
		}
	}
}

// FuzzServe: no request path or method makes the handler panic, and only
// valid names are counted.
func FuzzServe(f *testing.F) {
	f.Add("GET", "/api/counter/hits")
	f.Add("GET", "/api/counter/")
	f.Add("PUT", "/api/counter/\xff")
	f.Fuzz(func(t *testing.T, method, path string) {
		h := sdktest.New(t)
		h.Serve(capabilities.KV, func(string, []byte) ([]byte, error) { return []byte{0x81, 0xa5, 'v', 'a', 'l', 'u', 'e', 0x01}, nil })
		resp := serve(httpserver.Request{Method: method, Path: path})
		name, _ := strings.CutPrefix(path, Prefix)
		if counted := len(h.Calls) > 0; counted != (resp.StatusCode == 200) || counted && checkName(name) != "" {
			t.Fatalf("%q %q: status %d after %d kv calls", method, path, resp.StatusCode, len(h.Calls))
		}
	})
}
