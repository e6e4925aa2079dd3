// Package logging serves the logging compatibility namespaces of wasmCloud
// actors: wasmcloud:builtin:logging (Logging.WriteLog {level, text}),
// 0.18's wasmcloud:logging (WriteLog {target, level, text}) and waSCC's
// wascc:logging (WriteLog {level: u32, body}). Lines go to the agent's log
// with the actor's name, rate-limited per actor so that a chatty or hostile
// actor cannot flood the device's disk. Native actors log with trellis:log
// or waPC's __console_log, which the runtime serves itself.
//
// No grant is needed: logging touches nothing outside the actor.
package logging

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
)

// Namespaces the handler serves.
var Namespaces = []string{wasmcloud.Logging, wasmcloud.Logging018, wasmcloud.WaSCCLogging}

// Defaults of the per-actor rate limit and the line length.
const (
	DefaultRate  = 100 // lines per second, sustained
	DefaultBurst = 200 // lines at once
	MaxLine      = 4096
)

// Handler logs actors' WriteLog calls.
type Handler struct {
	log         *slog.Logger
	rate, burst float64
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	dropped atomic.Uint64
}

type bucket struct {
	tokens float64
	last   time.Time
	warned bool
}

// New returns a handler that writes to log (nil discards).
func New(log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{log: log, rate: DefaultRate, burst: DefaultBurst, now: time.Now, buckets: map[string]*bucket{}}
}

// Dropped counts lines dropped by the rate limit.
func (h *Handler) Dropped() uint64 { return h.dropped.Load() }

// Handle implements capabilities.Handler.
func (h *Handler) Handle(ctx context.Context, call capabilities.Call) ([]byte, error) {
	op, ok := wasmcloud.LookupHostCall(call.Contract, call.Operation)
	if !ok || op.Name != wasmcloud.OpWriteLog && op.Name != wasmcloud.OpLegacyWriteLog {
		return nil, fmt.Errorf("%w: %s %q", capabilities.ErrUnknownOperation, call.Contract, call.Operation)
	}
	if err := capabilities.CheckMsgpack(call.Payload, capabilities.MaxPayloadDepth); err != nil {
		return nil, fmt.Errorf("%s: %w", call.Operation, err)
	}
	entry, err := wasmcloud.DecodeLogEntry(op.Era, call.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", capabilities.ErrBadPayload, call.Operation, err)
	}
	if h.allow(call.Actor) {
		text := entry.Text
		if len(text) > MaxLine {
			text = text[:MaxLine] + "…"
		}
		attrs := []any{"actor", call.Actor, "level", entry.Level}
		if entry.Target != "" {
			attrs = append(attrs, "target", entry.Target)
		}
		h.log.Log(ctx, levelOf(entry.Level), text, attrs...)
	}
	return nil, nil
}

// allow takes a token from the actor's bucket; the first line dropped in a
// run of drops is reported once.
func (h *Handler) allow(actor string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	b, ok := h.buckets[actor]
	if !ok {
		b = &bucket{tokens: h.burst, last: now}
		h.buckets[actor] = b
	}
	b.tokens = min(h.burst, b.tokens+now.Sub(b.last).Seconds()*h.rate)
	b.last = now
	if b.tokens < 1 {
		h.dropped.Add(1)
		if !b.warned {
			b.warned = true
			h.log.Warn("actor logs too fast; dropping lines", "actor", actor, "rate", h.rate)
		}
		return false
	}
	b.tokens--
	b.warned = false
	return true
}

// levelOf maps the eras' level words to slog levels; unknown words log at
// info.
func levelOf(level string) slog.Level {
	switch strings.ToLower(level) {
	case "error", "critical":
		return slog.LevelError
	case "warn", "warning":
		return slog.LevelWarn
	case "debug", "trace":
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
