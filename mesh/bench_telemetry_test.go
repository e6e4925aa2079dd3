package mesh

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// benchBacklog is the number of messages that pile up on the device while
// its uplink is cut.
const benchBacklog = 100_000

// sourcingBound caps each wait of the sourcing benchmark: it may take minutes
// to resume, and the figure is then the bound.
const sourcingBound = 60 * time.Second

// longOutage is the long outage of the benchmark: beyond 10 s JetStream
// sourcing drops its consumer on the device and retries with a growing
// backoff (5 s × 2 × failures, up to 2 min).
var longOutage = flag.Duration("telemetry-outage", 60*time.Second, "the long uplink outage of BenchmarkTelemetryResume")

// BenchmarkTelemetryResume measures, after a cut uplink returns with a
// backlog of 100k messages on the device, the time until the hub stores the
// first of them and the rate at which it gets the rest: with the Forwarder
// (default window, and one message at a time), and with plain JetStream
// stream sourcing (a hub stream sourcing the device's stream through its
// domain). The uplink stays cut for as long as the backlog takes to store
// (a short outage, about a second) or for -telemetry-outage (60 s by
// default). Each run sets up its own hub, proxy and device, so run it once:
//
//	go test -run '^$' -bench TelemetryResume -benchtime 1x ./mesh
func BenchmarkTelemetryResume(b *testing.B) {
	for _, outage := range []time.Duration{0, *longOutage} {
		name := "short-outage"
		if outage > 0 {
			name = fmt.Sprintf("outage-%s", outage)
		}
		b.Run("forwarder/"+name, func(b *testing.B) { benchForwarderResume(b, 0, outage) })
		if outage == 0 {
			b.Run("forwarder-window-1/"+name, func(b *testing.B) { benchForwarderResume(b, 1, outage) })
		}
		b.Run("sourcing/"+name, func(b *testing.B) { benchSourcingResume(b, outage) })
	}
}

// waitOutage lets the outage last until since+outage.
func waitOutage(b *testing.B, since time.Time, outage time.Duration) {
	select {
	case <-time.After(time.Until(since.Add(outage))):
	case <-b.Context().Done():
		b.Fatal(b.Context().Err())
	}
}

func benchForwarderResume(b *testing.B, window int, outage time.Duration) {
	r := newTMRig(b, "bench-fwd", TelemetryLimits{MaxBytes: 256 << 20})
	o := r.forwarderOptions(b)
	o.Window = window
	f := newForwarder(b, o)
	runForwarder(b, f)
	st := hubStream(b, r.hub)

	publishBacklog(b, r.dev, TelemetrySubject(tmLattice, r.host, "temp"), 1)
	eventually(b, "the path works", func() bool { return hubCount(b, st) == 1 })

	r.proxy.Cut()
	cut := time.Now()
	eventually(b, "the device notices the cut", func() bool { return !r.dev.LeafConnected() })
	publishBacklog(b, r.dev, TelemetrySubject(tmLattice, r.host, "temp"), benchBacklog)
	eventually(b, "the forwarder sees the backlog", func() bool { return f.Stats().Backlog == benchBacklog })
	waitOutage(b, cut, outage)

	b.ResetTimer()
	first, all, ok := measureResume(b, r.proxy, st, 1, benchBacklog, 4*sourcingBound)
	b.StopTimer()
	reportResume(b, first, all, ok)
	if ok {
		eventually(b, "the forwarder counts every message", func() bool { return f.Stats().Forwarded == benchBacklog+1 })
		if s := f.Stats(); s.Reordered != 0 || s.Duplicates != 0 || s.Dropped != 0 {
			b.Fatalf("stats %+v", s)
		}
	}
}

func benchSourcingResume(b *testing.B, outage time.Duration) {
	r := newTMRig(b, "bench-src", TelemetryLimits{})
	ctx := b.Context()
	devJS, err := jetstream.New(connect(b, r.dev))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := devJS.CreateStream(ctx, jetstream.StreamConfig{
		Name: "SRC", Subjects: []string{"src.>"}, Storage: jetstream.FileStorage, MaxBytes: 256 << 20,
	}); err != nil {
		b.Fatal(err)
	}
	hubJS, err := jetstream.New(connect(b, r.hub))
	if err != nil {
		b.Fatal(err)
	}
	sourced, err := hubJS.CreateStream(ctx, jetstream.StreamConfig{
		Name:    "SOURCED",
		Storage: jetstream.FileStorage,
		Sources: []*jetstream.StreamSource{{
			Name:     "SRC",
			External: &jetstream.ExternalStream{APIPrefix: "$JS." + r.host + ".API"},
		}},
	})
	if err != nil {
		b.Fatal(err)
	}

	publishBacklog(b, r.dev, "src.temp", 1)
	eventually(b, "the sourcing works", func() bool { return hubCount(b, sourced) == 1 })

	r.proxy.Cut()
	cut := time.Now()
	eventually(b, "the device notices the cut", func() bool { return !r.dev.LeafConnected() })
	publishBacklog(b, r.dev, "src.temp", benchBacklog)
	waitOutage(b, cut, outage)

	b.ResetTimer()
	first, all, ok := measureResume(b, r.proxy, sourced, 1, benchBacklog, sourcingBound)
	b.StopTimer()
	reportResume(b, first, all, ok)
}

// publishBacklog stores n messages on subject in the device's JetStream.
func publishBacklog(b testing.TB, dev *Server, subject string, n int) {
	b.Helper()
	js, err := jetstream.New(connect(b, dev), jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 64)
	for i := range n {
		copy(body, fmt.Sprintf("%08d", i))
		if _, err := js.PublishAsync(subject, body, jetstream.WithStallWait(waitBound)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * waitBound):
		b.Fatal("backlog not stored")
	}
}

// measureResume restores the uplink and returns the time until st holds
// more than base messages (first) and base+n (all). A phase that does not
// end within bound stops the measure: ok is false, and the durations say
// how long it waited.
func measureResume(b testing.TB, p *tcpProxy, st jetstream.Stream, base, n uint64, bound time.Duration) (first, all time.Duration, ok bool) {
	b.Helper()
	count := func() uint64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		info, err := st.Info(ctx)
		if err != nil {
			return 0
		}
		return info.State.Msgs
	}
	start := time.Now()
	p.Restore()
	for count() <= base {
		if first = time.Since(start); first > bound {
			return first, first, false
		}
		time.Sleep(2 * time.Millisecond)
	}
	first = time.Since(start)
	for count() < base+n {
		if all = time.Since(start); all-first > bound {
			return first, all, false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return first, time.Since(start), true
}

func reportResume(b *testing.B, first, all time.Duration, ok bool) {
	b.ReportMetric(float64(first.Milliseconds()), "ms-to-first")
	b.ReportMetric(all.Seconds(), "s-to-all")
	if ok && all > first {
		b.ReportMetric(float64(benchBacklog-1)/(all-first).Seconds(), "msgs/s")
	}
	if !ok {
		b.Logf("gave up waiting: %s to the first message, %s in all", first.Round(time.Millisecond), all.Round(time.Millisecond))
	}
}
