//go:build !wasip1

// Package calltest runs table tests of the SDK's contract wrappers against
// a fake host: each case makes one call, which must reach the host as
// exactly the operation and payload given, and return what the case wants
// from the host's answer. Only the SDK's tests import it.
package calltest

import (
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/trellis-edge/trellis/sdk"
	"github.com/trellis-edge/trellis/sdk/sdktest"
)

// Case is one call.
type Case struct {
	Name string
	// Call makes the call and returns its results for comparison with Want.
	Call func() (any, error)
	// Answer is the host's response, or AnswerErr its error.
	Answer    []byte
	AnswerErr error
	// Op and Payload (hex) are what the host must see.
	Op, Payload string
	Want        any
	// WantErr, if set, is text the call's error must contain.
	WantErr string
}

// Hex decodes s; it panics on error, for use in table literals.
func Hex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Run runs each case as a subtest against a fake host serving namespace.
func Run(t *testing.T, namespace string, cases []Case) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.Name, func(t *testing.T) {
			h := sdktest.New(t)
			h.Serve(namespace, func(string, []byte) ([]byte, error) { return tt.Answer, tt.AnswerErr })
			got, err := tt.Call()
			calls := h.CallsTo(namespace)
			if len(calls) != 1 {
				t.Fatalf("%d host calls, want 1", len(calls))
			}
			if c := calls[0]; c.Binding != "default" || c.Operation != tt.Op || hex.EncodeToString(c.Payload) != tt.Payload {
				t.Errorf("host call %s %s %x, want default %s %s", c.Binding, c.Operation, c.Payload, tt.Op, tt.Payload)
			}
			if tt.WantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.WantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.WantErr)
				}
				var he *sdk.HostError
				if tt.AnswerErr != nil && !errors.As(err, &he) {
					t.Errorf("error %T for a host error, want a *sdk.HostError", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if !reflect.DeepEqual(got, tt.Want) {
				t.Errorf("got %#v, want %#v", got, tt.Want)
			}
		})
	}
}
