package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/trellis-edge/trellis/mesh"
)

func newBenchCmd(io *streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test the lattice, like nats bench",
	}
	var (
		conn    connFlags
		clients int
		calls   int
		size    int
		output  string
	)
	call := &cobra.Command{
		Use:   "call ACTOR OPERATION",
		Short: "Call an actor many times from concurrent clients; report throughput and latency percentiles",
		Long: `Bench call makes --calls calls of OPERATION on ACTOR, spread over --clients concurrent
clients (one NATS connection each), each with a payload of --size bytes, and reports
throughput and the latency distribution. Every call must succeed; the first failure is
reported and counted.`,
		Example: `  trellis bench call echo echo --clients 8 --calls 100000 --size 64`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if clients < 1 || calls < clients || size < 0 {
				return withCode(exitUsage, errors.New("want --clients ≥ 1, --calls ≥ --clients, --size ≥ 0"))
			}
			if output != "table" && output != "json" {
				return withCode(exitUsage, fmt.Errorf("-o %q: want table or json", output))
			}
			conns := make([]*nats.Conn, clients)
			for i := range conns {
				nc, err := conn.connect(fmt.Sprintf("trellis bench %d", i))
				if err != nil {
					return err
				}
				defer nc.Close()
				conns[i] = nc
			}
			payload := make([]byte, size)
			lat := make([][]time.Duration, clients)
			var failed sync.Map
			var wg sync.WaitGroup
			start := time.Now()
			progress := newProgress(io, calls)
			for i, nc := range conns {
				n := calls / clients
				if i < calls%clients {
					n++
				}
				wg.Go(func() {
					l := make([]time.Duration, 0, n)
					for range n {
						ctx, cancel := context.WithTimeout(cmd.Context(), conn.timeout)
						t0 := time.Now()
						_, _, err := mesh.Call(ctx, nc, conn.lattice, args[0], args[1], payload)
						d := time.Since(t0)
						cancel()
						if err != nil {
							failed.LoadOrStore(err.Error(), true)
							progress.add(1, true)
							continue
						}
						l = append(l, d)
						progress.add(1, false)
					}
					lat[i] = l
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			progress.done()
			r := benchResult{Actor: args[0], Operation: args[1], Clients: clients, Calls: calls, Size: size, Elapsed: elapsed}
			var all []time.Duration
			for _, l := range lat {
				all = append(all, l...)
			}
			r.summarize(all)
			failed.Range(func(k, _ any) bool { r.Errors = append(r.Errors, k.(string)); return true })
			if output == "json" {
				return writeJSON(io.stdout, r)
			}
			r.print(io)
			if r.Failed > 0 {
				return withCode(exitError, fmt.Errorf("%d calls failed: %v", r.Failed, r.Errors))
			}
			return nil
		},
	}
	conn.add(call)
	call.Flags().IntVar(&clients, "clients", 4, "concurrent clients, one connection each")
	call.Flags().IntVar(&calls, "calls", 10000, "calls in total")
	call.Flags().IntVar(&size, "size", 16, "payload bytes")
	call.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.AddCommand(call)
	return cmd
}

type benchResult struct {
	Actor     string        `json:"actor"`
	Operation string        `json:"operation"`
	Clients   int           `json:"clients"`
	Calls     int           `json:"calls"`
	Size      int           `json:"size"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	OK        int           `json:"ok"`
	Failed    int           `json:"failed"`
	PerSecond float64       `json:"calls_per_second"`
	P50       time.Duration `json:"p50_ns"`
	P90       time.Duration `json:"p90_ns"`
	P99       time.Duration `json:"p99_ns"`
	Max       time.Duration `json:"max_ns"`
	Errors    []string      `json:"errors,omitempty"`
}

func (r *benchResult) summarize(lat []time.Duration) {
	r.OK, r.Failed = len(lat), r.Calls-len(lat)
	r.PerSecond = float64(r.OK) / r.Elapsed.Seconds()
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	at := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	r.P50, r.P90, r.P99, r.Max = at(0.50), at(0.90), at(0.99), lat[len(lat)-1]
}

func (r *benchResult) print(io *streams) {
	fmt.Fprintf(io.stdout, "%s %s: %d calls (%d failed), %d clients, %d-byte payloads, in %s\n",
		r.Actor, r.Operation, r.Calls, r.Failed, r.Clients, r.Size, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(io.stdout, "  throughput  %.0f calls/s\n", r.PerSecond)
	fmt.Fprintf(io.stdout, "  latency     p50 %s  p90 %s  p99 %s  max %s\n", r.P50, r.P90, r.P99, r.Max)
}

// progress prints a line to stderr every second while a long run goes on.
type progress struct {
	mu        sync.Mutex
	io        *streams
	total     int
	n, failed int
	last      time.Time
}

func newProgress(io *streams, total int) *progress {
	return &progress{io: io, total: total, last: time.Now()}
}

func (p *progress) add(n int, failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += n
	if failed {
		p.failed += n
	}
	if time.Since(p.last) >= time.Second {
		p.last = time.Now()
		fmt.Fprintf(p.io.stderr, "  %d/%d calls (%d failed)\n", p.n, p.total, p.failed)
	}
}

func (p *progress) done() {}
