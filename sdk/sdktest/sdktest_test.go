//go:build !wasip1

package sdktest_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/trellis-edge/trellis/sdk"
	"github.com/trellis-edge/trellis/sdk/sdktest"
)

func TestHost(t *testing.T) {
	h := sdktest.New(t)
	h.Serve("ns", func(op string, p []byte) ([]byte, error) {
		if op == "fail" {
			return nil, errors.New("no such thing")
		}
		return append([]byte(op+":"), p...), nil
	})
	sdk.Handle("relay", func(p []byte) ([]byte, error) {
		sdk.Info("relaying")
		sdk.Log("console")
		return sdk.HostCall("default", "ns", string(p), []byte("x"))
	})

	resp, err := h.Invoke("relay", []byte("op"))
	if err != nil || string(resp) != "op:x" {
		t.Errorf("relay: %q, %v", resp, err)
	}
	_, err = h.Invoke("relay", []byte("fail"))
	var ge *sdktest.GuestError
	if !errors.As(err, &ge) || !strings.Contains(ge.Message, "no such thing") || ge.Operation != "relay" {
		t.Errorf("failing relay: %v", err)
	}
	if _, err := h.Invoke("nope", nil); err == nil || !strings.Contains(err.Error(), `unknown operation "nope"`) {
		t.Errorf("unknown operation: %v", err)
	}
	if _, err := sdk.HostCall("default", "trellis:kv", "Get", nil); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Errorf("call to a namespace nobody serves: %v", err)
	}
	if resp, err := h.Invoke("relay", []byte("")); err != nil || string(resp) != ":x" {
		t.Errorf("empty payload: %q, %v", resp, err)
	}

	if n := len(h.CallsTo("ns")); n != 3 {
		t.Errorf("%d calls to ns, want 3", n)
	}
	if len(h.Calls) != 7 { // 3 relays × (log + ns) + the denied one
		t.Errorf("%d calls: %+v", len(h.Calls), h.Calls)
	}
	if strings.Join(h.Logs, "|") != "info: relaying|info: relaying|info: relaying" || len(h.Console) != 3 {
		t.Errorf("logs %q, console %q", h.Logs, h.Console)
	}
}

// Handlers registered during a test are gone after it: the same operation
// can be registered again.
func TestHandlersAreDroppedAfterATest(t *testing.T) {
	for i := range 3 {
		t.Run("run", func(t *testing.T) {
			h := sdktest.New(t)
			sdk.Handle("again", func([]byte) ([]byte, error) { return []byte{byte(i)}, nil })
			if resp, err := h.Invoke("again", nil); err != nil || len(resp) != 1 || resp[0] != byte(i) {
				t.Errorf("run %d: %v, %v", i, resp, err)
			}
		})
	}
}
