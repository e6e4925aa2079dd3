package mesh

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// echoInvoker is the tiniest actor: it returns the payload.
type echoInvoker struct{}

func (echoInvoker) Invoke(_ context.Context, _, _ string, payload []byte) ([]byte, error) {
	return payload, nil
}

// BenchmarkRPC compares an actor call through Trellis RPC ("trellis") with
// a plain nats.go responder doing the same echo ("plain") on the same
// servers in the same run. The responders use in-process connections, as
// the agent does; the caller is a client over loopback TCP, like a local
// app or the nats CLI.
//
//	local           caller and responder on the agent's server
//	local-parallel  the same from GOMAXPROCS*4 goroutines: throughput in calls/s
//	leaf            caller on the hub, responder on an agent (across the leaf link)
//	leaf-parallel   the same, concurrent
func BenchmarkRPC(b *testing.B) {
	hub := startServer(b, ServerOptions{Name: "hub", Listen: "127.0.0.1:0", LeafListen: "127.0.0.1:0"})
	agent := startServer(b, ServerOptions{Name: "agent", Listen: "127.0.0.1:0", Hubs: []string{hub.LeafURL()}})

	r := NewRPC(connect(b, agent), DefaultLattice, "host-bench", echoInvoker{}, nil)
	b.Cleanup(r.Close)
	if err := r.Serve("echo"); err != nil {
		b.Fatal(err)
	}
	const plainSubject = "bench.plain.echo"
	serveEcho := connect(b, agent)
	if _, err := serveEcho.Subscribe(plainSubject, func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		b.Fatal(err)
	}
	if err := serveEcho.Flush(); err != nil {
		b.Fatal(err)
	}

	dial := func(s *Server) *nats.Conn {
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		return nc
	}
	onAgent, onHub := dial(agent), dial(hub)
	eventually(b, "the hub sees both responders", func() bool {
		_, _, err := Call(callCtx(b), onHub, DefaultLattice, "echo", "echo", nil)
		_, err2 := onHub.Request(plainSubject, nil, time.Second)
		return err == nil && err2 == nil
	})

	payload := []byte("tiny payload: 24 bytes!!")
	trellis := func(nc *nats.Conn) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, _, err := Call(ctx, nc, DefaultLattice, "echo", "echo", payload)
			return err
		}
	}
	plain := func(nc *nats.Conn) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := nc.RequestWithContext(ctx, plainSubject, payload)
			return err
		}
	}
	for _, where := range []struct {
		name string
		nc   *nats.Conn
	}{{"local", onAgent}, {"leaf", onHub}} {
		for _, kind := range []struct {
			name string
			call func(*nats.Conn) func(context.Context) error
		}{{"trellis", trellis}, {"plain", plain}} {
			call := kind.call(where.nc)
			b.Run(where.name+"/"+kind.name, func(b *testing.B) {
				// Every call carries a deadline, as real callers' do.
				ctx, cancel := context.WithTimeout(b.Context(), time.Hour)
				defer cancel()
				b.ReportAllocs()
				for b.Loop() {
					if err := call(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(where.name+"-parallel/"+kind.name, func(b *testing.B) {
				ctx, cancel := context.WithTimeout(b.Context(), time.Hour)
				defer cancel()
				b.SetParallelism(4)
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := call(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
			})
		}
	}
}
