package mesh

import (
	"time"

	"github.com/trellis-edge/trellis/capabilities"
)

// Inventory is what one host reports about itself: in replies to the
// control API's inventory and ping, and in every heartbeat event.
type Inventory struct {
	Host      HostInfo    `json:"host"`
	Actors    []ActorInfo `json:"actors"`
	Timestamp time.Time   `json:"timestamp"`
}

// HostInfo describes a host.
type HostInfo struct {
	ID        string            `json:"id"`   // the host's public nkey (N…)
	Name      string            `json:"name"` // --name, default the hostname
	Lattice   string            `json:"lattice"`
	Labels    map[string]string `json:"labels"`
	Version   string            `json:"version"` // trellis version
	Arch      string            `json:"arch"`    // GOOS/GOARCH, e.g. linux/arm
	Engine    string            `json:"engine"`  // compiler or interpreter
	StartedAt time.Time         `json:"started_at"`
	Uptime    Duration          `json:"uptime"`
	Memory    MemoryInfo        `json:"memory"`
	// Telemetry is the host's telemetry backlog; nil when the host keeps
	// none (no JetStream).
	Telemetry *TelemetryStatus `json:"telemetry,omitempty"`
}

// TelemetryStatus is a host's telemetry buffer: what is waiting for the
// hub, and what the buffer's policy has cost.
type TelemetryStatus struct {
	Backlog   uint64    `json:"backlog"`              // messages the hub has not stored yet
	Oldest    time.Time `json:"oldest,omitzero"`      // when the oldest of them was published
	Offline   Duration  `json:"offline,omitempty"`    // how long forwarding has been failing
	Dropped   uint64    `json:"dropped"`              // discarded by drop_oldest before they were forwarded
	Rejected  uint64    `json:"rejected"`             // refused by reject while the buffer was full
	Forwarded uint64    `json:"forwarded"`            // stored by the hub since the agent started
	LastError string    `json:"last_error,omitempty"` // why forwarding last failed
}

// MemoryInfo is the host process's memory use in bytes.
type MemoryInfo struct {
	RSS     uint64 `json:"rss"`      // resident set size; 0 where unknown
	GoHeap  uint64 `json:"go_heap"`  // Go heap in use (includes guest linear memory)
	GoTotal uint64 `json:"go_total"` // memory obtained from the OS by the Go runtime
}

// ActorInfo describes one running actor on a host.
type ActorInfo struct {
	Name         string `json:"name"`
	Digest       string `json:"digest"` // sha256 of the module, lowercase hex
	Revision     uint64 `json:"revision"`
	MaxInstances int    `json:"max_instances"`
	Instances    int    `json:"instances"` // live
	Idle         int    `json:"idle"`
	Calls        uint64 `json:"calls"`
	Failures     uint64 `json:"failures"`
}

// ActorLimits are an actor's limits on the wire; zero fields mean defaults.
// Durations are Go duration strings ("2s").
type ActorLimits struct {
	MaxInstances   int      `json:"max_instances,omitempty"`
	MemoryPages    uint32   `json:"memory_pages,omitempty"`
	CallTimeout    Duration `json:"call_timeout,omitempty"`
	MaxRequest     int      `json:"max_request,omitempty"`
	MaxResponse    int      `json:"max_response,omitempty"`
	MaxHostPayload int      `json:"max_host_payload,omitempty"`
	MaxHostCalls   int      `json:"max_host_calls,omitempty"`
}

// StartActor asks a host to start (or, with UpdateActor, replace) an actor.
// The module travels in the request (base64 in JSON), so the servers'
// max_payload must exceed it; fleet deployments fetch artifacts by digest
// instead.
type StartActor struct {
	Name   string              `json:"name"`
	Module []byte              `json:"module"`
	Limits ActorLimits         `json:"limits"`
	Grants capabilities.Grants `json:"grants"` // deny by default: zero grants nothing
}

// StopActor asks a host to stop an actor.
type StopActor struct {
	Name string `json:"name"`
}

// ScaleActor changes how many instances an actor may run at once.
type ScaleActor struct {
	Name         string `json:"name"`
	MaxInstances int    `json:"max_instances"`
}

// Labels puts (or, for a delete, names) host labels.
type Labels struct {
	Labels map[string]string `json:"labels"`
}

// Reply is the envelope of every control API reply.
type Reply struct {
	Success  bool   `json:"success"`
	Message  string `json:"message,omitempty"`
	Response any    `json:"response,omitempty"`
}

// Duration is a time.Duration that is a Go duration string in JSON and
// YAML ("2s"); the one type grants and the wire share.
type Duration = capabilities.Duration
