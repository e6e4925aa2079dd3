// Command kvcounter is a Trellis actor that counts visits: a GET of
// /api/counter/{name} increments the counter name in the actor's own
// key-value bucket and answers its new value as JSON. See README.md to
// build, grant and try it.
//
// It builds natively too (the SDK stands in for the host there), so that
// its logic is tested with go test.
package main

import (
	"strconv"
	"strings"

	"github.com/trellis-edge/trellis/sdk/httpserver"
	"github.com/trellis-edge/trellis/sdk/kv"
)

// Prefix is the path the route grants; a counter's name is what follows.
const Prefix = "/api/counter/"

// MaxName is the longest counter name, in bytes.
const MaxName = 64

// The handler is registered in init: the host's _initialize runs package
// initialisation, but main.main never runs in a c-shared (reactor) module.
func init() {
	httpserver.Handle(httpserver.DefaultOperation, serve)
}

// main is required by package main and never called.
func main() {}

// serve answers one request.
func serve(r httpserver.Request) httpserver.Response {
	name, ok := strings.CutPrefix(r.Path, Prefix)
	if !ok {
		return httpserver.Error(404, "no such path: "+quote(r.Path))
	}
	if r.Method != "GET" {
		resp := httpserver.Error(405, "method "+r.Method+" not allowed: use GET")
		resp.Header.Set("Allow", "GET")
		return resp
	}
	if reason := checkName(name); reason != "" {
		return httpserver.Error(400, "counter name "+quote(name)+": "+reason)
	}
	n, err := kv.Increment("counter:"+name, 1)
	if err != nil {
		return httpserver.Error(500, "counting "+name+": "+err.Error())
	}
	return httpserver.JSON(200, struct {
		Counter int64 `json:"counter"`
	}{n})
}

// checkName reports why name cannot be a counter name, or "" if it can:
// 1 to MaxName characters of a-z, A-Z, 0-9, _ and -.
func checkName(name string) string {
	const want = "want 1 to 64 characters of a-z, A-Z, 0-9, _ and -"
	if name == "" || len(name) > MaxName {
		return want
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return want
		}
	}
	return ""
}

// quote quotes s for an error message, shortened so that a long path does
// not make a long answer.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
