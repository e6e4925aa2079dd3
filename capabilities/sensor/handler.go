package sensor

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/trellis-edge/trellis/capabilities"
)

// Handler serves trellis:sensor: Read {sensor} → {measurements}, from the
// sensors configured on this device. A sensor can be added or replaced
// while actors run (a provider swap); a read in progress finishes on the
// reader it started with.
type Handler struct {
	mu      sync.RWMutex
	readers map[string]Reader
}

// NewHandler returns a handler serving readers by name.
func NewHandler(readers map[string]Reader) *Handler {
	h := &Handler{readers: map[string]Reader{}}
	for name, r := range readers {
		h.readers[name] = r
	}
	return h
}

// Set adds or replaces the reader of a named sensor; nil removes it.
func (h *Handler) Set(name string, r Reader) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r == nil {
		delete(h.readers, name)
		return
	}
	h.readers[name] = r
}

// Names returns the configured sensors, sorted.
func (h *Handler) Names() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	names := make([]string, 0, len(h.readers))
	for n := range h.readers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Handle implements capabilities.Handler.
func (h *Handler) Handle(ctx context.Context, call capabilities.Call) ([]byte, error) {
	if call.Operation != OpRead {
		return nil, fmt.Errorf("%w: %s %q", capabilities.ErrUnknownOperation, capabilities.Sensor, call.Operation)
	}
	req, err := DecodeReadRequest(call.Payload)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(call.Grants.Sensors, req.Sensor) {
		return nil, fmt.Errorf("%w: actor %s may not read sensor %q", capabilities.ErrDenied, call.Actor, req.Sensor)
	}
	h.mu.RLock()
	r, ok := h.readers[req.Sensor]
	h.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: no sensor %q on this device", capabilities.ErrUnavailable, req.Sensor)
	}
	ms, err := r.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", capabilities.Sensor, req.Sensor, err)
	}
	return EncodeReadResponse(ReadResponse{Measurements: ms})
}
