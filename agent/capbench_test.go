package agent

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/agent/actor"
	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/gpio"
	"github.com/trellis-edge/trellis/capabilities/gpio/gpiosim"
	"github.com/trellis-edge/trellis/capabilities/kv"
	"github.com/trellis-edge/trellis/mesh"
	"github.com/trellis-edge/trellis/store"
)

// capBench is the agent's capability path without the bus: the real
// runtime with the kitchen actor, the real dispatcher, and a real store.
type capBench struct {
	rt    *actor.Runtime
	caps  *capabilities.Dispatcher
	store *store.Store
}

func newCapBench(b *testing.B, grants capabilities.Grants) *capBench {
	b.Helper()
	st, err := store.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	caps := capabilities.NewDispatcher(capabilities.DispatcherOptions{})
	caps.Register(capabilities.KV, kv.Handler{Store: st})
	rt, err := actor.New(actor.Options{Capabilities: &hostCalls{caps: caps}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rt.Close(context.Background()) })
	wasm, err := os.ReadFile("actor/testdata/kitchen.wasm")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := rt.Start(context.Background(), "kitchen", wasm, actor.Limits{MaxInstances: runtime.GOMAXPROCS(0) * 2}); err != nil {
		b.Fatal(err)
	}
	if err := caps.SetGrants("kitchen", grants); err != nil {
		b.Fatal(err)
	}
	return &capBench{rt: rt, caps: caps, store: st}
}

// BenchmarkGPIOEdgeToActor: the latency from a simulated input's edge to
// the return of the actor operation it invokes (the gpio handler's queue
// and delivery goroutine, the runtime's invocation), against a direct
// invocation of the same operation in the same run (the floor).
func BenchmarkGPIOEdgeToActor(b *testing.B) {
	cb := newCapBench(b, capabilities.Grants{GPIO: []capabilities.GPIOGrant{{Line: "BUTTON", Direction: capabilities.DirIn}}})
	sim, err := gpiosim.New([]string{"BUTTON"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sim.Close() })
	done := make(chan error, 1)
	h := gpio.NewHandler(sim, func(ctx context.Context, actor, op string, payload []byte) error {
		_, err := cb.rt.Invoke(ctx, actor, op, payload)
		done <- err
		return err
	})
	b.Cleanup(h.Close)
	watch, _ := msgpack.Marshal(gpio.WatchRequest{Line: "BUTTON", Edge: gpio.EdgeBoth, Operation: "count"})
	g, _ := cb.caps.Grants("kitchen")
	if _, err := h.Handle(context.Background(), capabilities.Call{Actor: "kitchen", Contract: capabilities.GPIO, Operation: gpio.OpWatch, Payload: watch, Grants: g}); err != nil {
		b.Fatal(err)
	}
	b.Run("edge", func(b *testing.B) {
		level := gpio.Low
		for b.Loop() {
			level = !level
			if err := sim.Set("BUTTON", level); err != nil {
				b.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					b.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				b.Fatal("an edge never reached the actor")
			}
		}
	})
	b.Run("direct-invoke", func(b *testing.B) {
		for b.Loop() {
			if _, err := cb.rt.Invoke(context.Background(), "kitchen", "count", watch); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkKVIncrement: a counter incremented by the actor through
// trellis:kv (host call, grant check, msgpack, store write with fsync)
// against the same increment as a direct call on the same store file,
// same run. Serial and from every core.
func BenchmarkKVIncrement(b *testing.B) {
	cb := newCapBench(b, capabilities.Grants{KV: true})
	inc, _ := msgpack.Marshal(map[string]any{"key": []byte("visits"), "delta": 1})
	payload := append([]byte("trellis:kv\nIncrement\n"), inc...)
	viaActor := func() error {
		_, err := cb.rt.Invoke(context.Background(), "kitchen", "hostcall", payload)
		return err
	}
	// The same store file, so that both pay the same fsync; another bucket.
	viaStore := func() error {
		_, err := cb.store.KVIncrement("direct", []byte("visits"), 1)
		return err
	}
	for _, c := range []struct {
		name string
		fn   func() error
	}{{"actor", viaActor}, {"bbolt", viaStore}} {
		b.Run("serial/"+c.name, func(b *testing.B) {
			for b.Loop() {
				if err := c.fn(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "incr/s")
		})
		b.Run("parallel/"+c.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.fn(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "incr/s")
		})
	}
}

// BenchmarkTelemetryPublish: sustained telemetry through an actor
// (trellis:telemetry, stored by the device's stream before the call
// returns) against a program publishing to the same stream with
// JetStream acknowledgements on an in-process connection, same run.
func BenchmarkTelemetryPublish(b *testing.B) {
	ready := make(chan struct{})
	a, err := New(Config{DataDir: b.TempDir(), Listen: "127.0.0.1:0", HTTPAddr: HTTPOff, Name: "bench",
		Telemetry: TelemetryConfig{MaxBytes: 1 << 30},
		Actors: []ActorConfig{{Name: "kitchen", Module: "actor/testdata/kitchen.wasm",
			Limits: actor.Limits{MaxInstances: runtime.GOMAXPROCS(0) * 2}, Grants: capabilities.Grants{Telemetry: []string{"bench.>"}}}},
	}, Options{Ready: func(string, string) { close(ready) }})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case err := <-done:
		b.Fatal(err)
	}
	body := make([]byte, 64)
	req, _ := msgpack.Marshal(map[string]any{"topic": "bench.temp", "body": body})
	payload := append([]byte("trellis:telemetry\nPublish\n"), req...)
	nc, err := a.Connect()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	subject := mesh.TelemetrySubject(a.cfg.Lattice, a.hostID, "bench.direct")
	for _, c := range []struct {
		name string
		fn   func() error
	}{
		{"actor", func() error { _, err := a.rt.Invoke(context.Background(), "kitchen", "hostcall", payload); return err }},
		{"jetstream", func() error { _, err := js.Publish(context.Background(), subject, body); return err }},
	} {
		b.Run("serial/"+c.name, func(b *testing.B) {
			for b.Loop() {
				if err := c.fn(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
		b.Run("parallel/"+c.name, func(b *testing.B) {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.fn(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
