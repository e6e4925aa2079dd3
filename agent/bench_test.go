package agent_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-edge/trellis/agent"
	"github.com/trellis-edge/trellis/mesh"
)

// BenchmarkLocalCall: a local program calls the tiny echo actor
// (agent/actor/testdata/echo.wat) through the device's NATS bus, against a
// plain nats.go responder doing the same echo on the same agent's server,
// same run. Budget: trellis ≤ 1.5× plain latency, ≥ 20k calls/s concurrent.
func BenchmarkLocalCall(b *testing.B) {
	a := startAgent(b, "bench", "", nil, agent.ActorConfig{Name: "echo", Module: echoWasm,
		Limits: actorLimits(runtime.GOMAXPROCS(0) * 4)})
	// The responder uses an in-process connection, as the agent's RPC does.
	responder, err := a.agent.Connect()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(responder.Close)
	if _, err := responder.Subscribe("bench.plain.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		b.Fatal(err)
	}
	if err := responder.Flush(); err != nil {
		b.Fatal(err)
	}
	caller := connect(b, a.url)
	payload := []byte("hello, trellis")
	calls := map[string]func(nc *nats.Conn) error{
		"trellis": func(nc *nats.Conn) error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _, err := mesh.Call(ctx, nc, mesh.DefaultLattice, "echo", "echo", payload)
			return err
		},
		"plain": func(nc *nats.Conn) error {
			_, err := nc.Request("bench.plain.echo", payload, 5*time.Second)
			return err
		},
	}
	for _, name := range []string{"trellis", "plain"} {
		call := calls[name]
		b.Run("serial/"+name, func(b *testing.B) {
			for b.Loop() {
				if err := call(caller); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("parallel/"+name, func(b *testing.B) {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := call(caller); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}
