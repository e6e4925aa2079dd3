// Package telemetry is the guest side of trellis:telemetry: measurements
// and events an actor reports to the hub, on topics. The actor needs a
// grant of topic patterns, such as `telemetry: [temperature]`; a topic no
// pattern matches fails with an error that says "denied".
//
// A topic is one or more dot-separated tokens without wildcards; the host
// publishes the body on trellis.<lattice>.tm.<host>.<topic>.
//
//	err := telemetry.Publish("temperature", []byte(`{"temperature":21.5}`))
//
// Errors the host returns are *sdk.HostError.
package telemetry

import (
	"github.com/trellis-edge/trellis/sdk/internal/msgpack"
	"github.com/trellis-edge/trellis/sdk/internal/wire"
)

// Namespace is the contract's namespace.
const Namespace = "trellis:telemetry"

// Publish reports body on topic.
func Publish(topic string, body []byte) error {
	b := msgpack.AppendMapHeader(nil, 2)
	b = msgpack.AppendString(msgpack.AppendString(b, "topic"), topic)
	b = msgpack.AppendBin(msgpack.AppendString(b, "body"), body)
	_, err := wire.Call(Namespace, "Publish", b)
	return err
}
