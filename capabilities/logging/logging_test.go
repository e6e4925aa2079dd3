package logging

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
)

func TestWriteLogEveryEra(t *testing.T) {
	var out bytes.Buffer
	h := New(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	for _, tc := range []struct {
		ns, op string
		era    wasmcloud.Era
		entry  wasmcloud.LogEntry
		want   string
	}{
		{wasmcloud.Logging, wasmcloud.OpWriteLog, wasmcloud.EraWasmbus, wasmcloud.LogEntry{Level: "warn", Text: "wasmbus line"}, `level=WARN msg="wasmbus line" actor=a level=warn`},
		{wasmcloud.Logging018, wasmcloud.OpLegacyWriteLog, wasmcloud.Era018, wasmcloud.LogEntry{Target: "kv", Level: "info", Text: "0.18 line"}, `level=INFO msg="0.18 line" actor=a level=info target=kv`},
		{wasmcloud.WaSCCLogging, wasmcloud.OpLegacyWriteLog, wasmcloud.EraWaSCC, wasmcloud.LogEntry{Level: "error", Text: "wascc line"}, `level=ERROR msg="wascc line" actor=a level=error`},
	} {
		payload, err := wasmcloud.EncodeLogEntry(tc.era, tc.entry)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := h.Handle(context.Background(), capabilities.Call{Actor: "a", Contract: tc.ns, Operation: tc.op, Payload: payload})
		if err != nil || resp != nil {
			t.Fatalf("%s %s: %q, %v", tc.ns, tc.op, resp, err)
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s: log %q lacks %q", tc.ns, out.String(), tc.want)
		}
	}
	// The wrong era's shape, an unknown op and garbage are errors the guest sees.
	bad, _ := wasmcloud.EncodeLogEntry(wasmcloud.EraWasmbus, wasmcloud.LogEntry{Level: "info", Text: "x"})
	if _, err := h.Handle(context.Background(), capabilities.Call{Actor: "a", Contract: wasmcloud.WaSCCLogging, Operation: wasmcloud.OpLegacyWriteLog, Payload: bad}); !errors.Is(err, capabilities.ErrBadPayload) {
		t.Errorf("a wasmbus entry on wascc:logging: %v", err)
	}
	if _, err := h.Handle(context.Background(), capabilities.Call{Actor: "a", Contract: wasmcloud.Logging, Operation: "Logging.Shout"}); !errors.Is(err, capabilities.ErrUnknownOperation) {
		t.Errorf("unknown op: %v", err)
	}
}

func TestRateLimitPerActor(t *testing.T) {
	var out bytes.Buffer
	h := New(slog.New(slog.NewTextHandler(&out, nil)))
	now := time.Unix(1000, 0)
	h.now = func() time.Time { return now }
	payload, _ := wasmcloud.EncodeLogEntry(wasmcloud.EraWasmbus, wasmcloud.LogEntry{Level: "info", Text: "spam"})
	call := func(actor string) {
		if _, err := h.Handle(context.Background(), capabilities.Call{Actor: actor, Contract: wasmcloud.Logging, Operation: wasmcloud.OpWriteLog, Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	for range DefaultBurst + 50 {
		call("noisy")
	}
	if got := h.Dropped(); got != 50 {
		t.Fatalf("dropped %d lines of a burst of %d, want 50", got, DefaultBurst+50)
	}
	call("quiet") // another actor's lines are not dropped
	if got := h.Dropped(); got != 50 {
		t.Fatalf("a quiet actor's line was dropped (%d)", got)
	}
	now = now.Add(time.Second) // a second refills DefaultRate lines
	for range DefaultRate {
		call("noisy")
	}
	if got := h.Dropped(); got != 50 {
		t.Fatalf("after a second, %d dropped; want the rate refilled", got)
	}
	if n := strings.Count(out.String(), "dropping lines"); n != 1 {
		t.Errorf("the drop was reported %d times, want once per run of drops", n)
	}
}

func FuzzHandle(f *testing.F) {
	for _, e := range []wasmcloud.Era{wasmcloud.EraWasmbus, wasmcloud.Era018, wasmcloud.EraWaSCC} {
		p, _ := wasmcloud.EncodeLogEntry(e, wasmcloud.LogEntry{Level: "info", Text: "x"})
		f.Add(uint8(e), p)
	}
	f.Add(uint8(0), []byte{0xdc, 0xff, 0xff})
	h := New(nil)
	f.Fuzz(func(t *testing.T, era uint8, payload []byte) {
		ns := Namespaces[int(era)%len(Namespaces)]
		op := wasmcloud.OpLegacyWriteLog
		if ns == wasmcloud.Logging {
			op = wasmcloud.OpWriteLog
		}
		_, _ = h.Handle(context.Background(), capabilities.Call{Actor: "f", Contract: ns, Operation: op, Payload: payload})
	})
}
