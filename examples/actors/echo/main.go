//go:build wasip1

// Command echo is the smallest Trellis actor: operation "echo" answers with
// its payload; any other operation is an error. See README.md to build and
// run it.
package main

import "github.com/trellis-edge/trellis/sdk"

// Handlers are registered in init: the host's _initialize runs package
// initialisation, but main.main never runs in a c-shared (reactor) module.
func init() {
	sdk.Handle("echo", func(payload []byte) ([]byte, error) {
		return payload, nil
	})
}

// main is required by package main and never called.
func main() {}
