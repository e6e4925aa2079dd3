package actor

import (
	"fmt"
	"time"
)

// Defaults applied to the zero fields of Limits.
const (
	DefaultMaxInstances = 4
	DefaultMemoryPages  = 512 // 32 MiB
	DefaultCallTimeout  = 10 * time.Second
	DefaultMaxPayload   = 4 << 20 // request, response and host-call payload
	DefaultMaxHostCalls = 1 << 16 // per call
	maxMemoryPages      = 65536   // the wasm32 maximum
	maxPayloadLimit     = 64 << 20
	defaultMaxCallDepth = 16
	wasmPageSize        = 65536
)

// Limits bound one actor. The zero value of a field means its default.
type Limits struct {
	// MaxInstances is how many instances may run calls at once.
	MaxInstances int `json:"max_instances,omitempty" yaml:"max_instances,omitempty"`
	// MemoryPages caps each instance's linear memory, in 64 KiB pages.
	MemoryPages uint32 `json:"memory_pages,omitempty" yaml:"memory_pages,omitempty"`
	// CallTimeout is the deadline of one call, including the wait for an
	// instance; a caller's earlier deadline wins.
	CallTimeout time.Duration `json:"call_timeout,omitempty" yaml:"call_timeout,omitempty"`
	// MaxRequest, MaxResponse and MaxHostPayload cap the bytes of a call's
	// payload, its response (or error), and one host call's arguments.
	MaxRequest     int `json:"max_request,omitempty" yaml:"max_request,omitempty"`
	MaxResponse    int `json:"max_response,omitempty" yaml:"max_response,omitempty"`
	MaxHostPayload int `json:"max_host_payload,omitempty" yaml:"max_host_payload,omitempty"`
	// MaxHostCalls caps the host calls of one guest call.
	MaxHostCalls int `json:"max_host_calls,omitempty" yaml:"max_host_calls,omitempty"`
}

// Validate reports the first field out of range, by name and value.
func (l Limits) Validate() error {
	switch {
	case l.MaxInstances < 0 || l.MaxInstances > 1024:
		return fmt.Errorf("limits: max_instances %d: want 0 (default) to 1024", l.MaxInstances)
	case l.MemoryPages > maxMemoryPages:
		return fmt.Errorf("limits: memory_pages %d: want 0 (default) to %d", l.MemoryPages, maxMemoryPages)
	case l.CallTimeout < 0:
		return fmt.Errorf("limits: call_timeout %s: must not be negative", l.CallTimeout)
	case l.MaxRequest < 0 || l.MaxRequest > maxPayloadLimit:
		return fmt.Errorf("limits: max_request %d: want 0 (default) to %d", l.MaxRequest, maxPayloadLimit)
	case l.MaxResponse < 0 || l.MaxResponse > maxPayloadLimit:
		return fmt.Errorf("limits: max_response %d: want 0 (default) to %d", l.MaxResponse, maxPayloadLimit)
	case l.MaxHostPayload < 0 || l.MaxHostPayload > maxPayloadLimit:
		return fmt.Errorf("limits: max_host_payload %d: want 0 (default) to %d", l.MaxHostPayload, maxPayloadLimit)
	case l.MaxHostCalls < 0:
		return fmt.Errorf("limits: max_host_calls %d: must not be negative", l.MaxHostCalls)
	}
	return nil
}

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxInstances, DefaultMaxInstances)
	def(&l.MaxRequest, DefaultMaxPayload)
	def(&l.MaxResponse, DefaultMaxPayload)
	def(&l.MaxHostPayload, DefaultMaxPayload)
	def(&l.MaxHostCalls, DefaultMaxHostCalls)
	if l.MemoryPages == 0 {
		l.MemoryPages = DefaultMemoryPages
	}
	if l.CallTimeout == 0 {
		l.CallTimeout = DefaultCallTimeout
	}
	return l
}
