package messaging

import (
	"errors"
	"testing"

	"github.com/trellis-edge/trellis/capabilities"
)

func TestDecodeStored(t *testing.T) {
	sp, err := decodeStored([]byte(`{"subject":"cmd.>","operation":"Op","queue":"q"}`))
	if err != nil || sp != (spec{Subject: "cmd.>", Queue: "q", Operation: "Op", Format: capabilities.FormatWasmbus}) {
		t.Fatalf("%+v, %v", sp, err)
	}
	for _, bad := range []string{``, `{}`, `{"subject":"cmd.>"}`, `{"subject":"a b","operation":"Op"}`, `{"subject":"x","operation":"Op","extra":1}`, `[1]`} {
		if _, err := decodeStored([]byte(bad)); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}

// FuzzDecodeStored: stored records are read back at every start; a corrupt
// one must not panic.
func FuzzDecodeStored(f *testing.F) {
	f.Add([]byte(`{"subject":"cmd.>","operation":"Op","queue":"q"}`))
	f.Add([]byte(`{"subject":"\u0000","operation":"Op"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeStored(b)
	})
}

// FuzzDecodeSubscribe checks the native decoders' contract: a payload
// either decodes into a valid request or fails with ErrBadPayload.
func FuzzDecodeSubscribe(f *testing.F) {
	f.Add([]byte{0x83, 0xa7, 's', 'u', 'b', 'j', 'e', 'c', 't', 0xa1, 'x', 0xa9, 'o', 'p', 'e', 'r', 'a', 't', 'i', 'o', 'n', 0xa1, 'O', 0xa5, 'q', 'u', 'e', 'u', 'e', 0xa1, 'q'})
	f.Add([]byte{0x81, 0xa2, 'i', 'd', 0xa1, 'x'})
	f.Add([]byte{0x82, 0xa5, 't', 'o', 'p', 'i', 'c', 0xa1, 't', 0xa4, 'b', 'o', 'd', 'y', 0xc4, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeSubscribe(b); err != nil {
			if !errors.Is(err, capabilities.ErrBadPayload) {
				t.Fatalf("Subscribe: %v does not wrap ErrBadPayload", err)
			}
		} else if checkSubject("subject", r.Subject, true) != nil || validOperation(r.Operation) != "" || validQueue(r.Queue) != "" {
			t.Fatalf("Subscribe decoded an invalid request %+v", r)
		}
		if _, err := decodeUnsubscribe(b); err != nil && !errors.Is(err, capabilities.ErrBadPayload) {
			t.Fatalf("Unsubscribe: %v does not wrap ErrBadPayload", err)
		}
		if _, err := decodeTelemetry(b); err != nil && !errors.Is(err, capabilities.ErrBadPayload) {
			t.Fatalf("telemetry: %v does not wrap ErrBadPayload", err)
		}
	})
}
