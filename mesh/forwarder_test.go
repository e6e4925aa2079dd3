package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const tmLattice = DefaultLattice

// tmRig is a hub with its telemetry stream, a proxy in front of its leaf
// listener, and one device (a leaf through the proxy) with its telemetry
// stream.
type tmRig struct {
	hubOpts ServerOptions
	hub     *Server
	proxy   *tcpProxy
	host    string
	devOpts ServerOptions
	dev     *Server
}

func newTMRig(t testing.TB, host string, limits TelemetryLimits) *tmRig {
	t.Helper()
	r := &tmRig{host: host, hubOpts: hubOptions(t, "127.0.0.1:0")}
	r.hubOpts.NoAdvertise = true
	r.hub = startServer(t, r.hubOpts)
	ensureHubTelemetry(t, r.hub)
	leaf, err := parseLeafURL(r.hub.LeafURL())
	if err != nil {
		t.Fatal(err)
	}
	r.proxy = startProxy(t, leaf)
	r.devOpts = agentOptions(t, host, r.proxy.URL())
	r.devOpts.NoAdvertise = true
	r.startDevice(t, limits)
	eventually(t, "the device's uplink", r.dev.LeafConnected)
	return r
}

// startDevice starts the device's server (again, on the same store) and
// ensures its telemetry stream.
func (r *tmRig) startDevice(t testing.TB, limits TelemetryLimits) {
	t.Helper()
	r.dev = startServer(t, r.devOpts)
	js, err := jetstream.New(connect(t, r.dev))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureDeviceTelemetry(t.Context(), js, tmLattice, r.host, limits); err != nil {
		t.Fatal(err)
	}
}

func ensureHubTelemetry(t testing.TB, hub *Server) {
	t.Helper()
	js, err := jetstream.New(connect(t, hub))
	if err != nil {
		t.Fatal(err)
	}
	if err := EnsureHubTelemetry(t.Context(), js, HubTelemetryOptions{}); err != nil {
		t.Fatal(err)
	}
}

// restartHub shuts the hub down, waits until the device notices, runs
// during (the outage), and starts the hub again on the same leaf port and
// store.
func (r *tmRig) restartHub(t *testing.T, during func()) {
	t.Helper()
	leaf, err := parseLeafURL(r.hub.LeafURL())
	if err != nil {
		t.Fatal(err)
	}
	shutdown(t, r.hub)
	eventually(t, "the device notices the hub is gone", func() bool { return !r.dev.LeafConnected() })
	during()
	opts := r.hubOpts
	opts.LeafListen = leaf
	eventually(t, "a new hub on "+leaf, func() bool {
		s, err := StartServer(t.Context(), opts)
		if errors.Is(err, syscall.EADDRINUSE) {
			return false // the port is not free yet
		}
		if err != nil {
			t.Fatal(err)
		}
		r.hub = s
		return true
	})
	t.Cleanup(func() { shutdown(t, r.hub) })
	ensureHubTelemetry(t, r.hub)
}

func (r *tmRig) forwarderOptions(t testing.TB) ForwarderOptions {
	return ForwarderOptions{Server: r.dev, Lattice: tmLattice, Host: r.host, Logger: testLogger(t)}
}

// runForwarder runs f until the returned stop (or the test's end).
func runForwarder(t testing.TB, f *Forwarder) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("forwarder: %v", err)
		}
	})
	t.Cleanup(stop)
	return stop
}

func newForwarder(t testing.TB, o ForwarderOptions) *Forwarder {
	t.Helper()
	f, err := NewForwarder(o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// tmPayload is message i's body: its index, so that order and gaps show.
func tmPayload(i int) []byte { return []byte(fmt.Sprintf("%08d", i)) }

// publisher publishes telemetry on a device with JetStream, one message
// every period, counting what its stream stored.
type publisher struct {
	stored   atomic.Int64
	rejected atomic.Int64
	done     chan struct{}
	err      error
}

// publishSteady publishes n messages, index from+0 … from+n-1, on topic
// "temp" of host through s. A full stream (reject policy) counts as
// rejected and goes on; any other error stops it.
func publishSteady(t testing.TB, s *Server, host string, from, n int, period time.Duration) *publisher {
	t.Helper()
	js, err := jetstream.New(connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	p := &publisher{done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(p.done)
		var tick <-chan time.Time
		if period > 0 {
			t := time.NewTicker(period)
			defer t.Stop()
			tick = t.C
		}
		for i := from; i < from+n; i++ {
			if _, err := js.Publish(ctx, TelemetrySubject(tmLattice, host, "temp"), tmPayload(i)); err != nil {
				if IsTelemetryFull(err) {
					p.rejected.Add(1)
				} else {
					p.err = fmt.Errorf("publish %d: %w", i, err)
					return
				}
			} else {
				p.stored.Add(1)
			}
			if period > 0 {
				select {
				case <-tick:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-p.done })
	return p
}

func (p *publisher) wait(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(4 * waitBound):
		t.Fatal("publisher not done")
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
}

// hubMsg is one message of the hub's telemetry stream.
type hubMsg struct {
	subject string
	header  nats.Header
	index   int
}

// hubStream returns the hub's telemetry stream.
func hubStream(t testing.TB, hub *Server) jetstream.Stream {
	t.Helper()
	js, err := jetstream.New(connect(t, hub))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), TelemetryStream)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func hubCount(t testing.TB, st jetstream.Stream) uint64 {
	t.Helper()
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// hubMessages reads the hub's telemetry stream in order.
func hubMessages(t testing.TB, hub *Server) []hubMsg {
	t.Helper()
	st := hubStream(t, hub)
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []hubMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(t.Context(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		i, err := strconv.Atoi(string(m.Data))
		if err != nil {
			t.Fatalf("hub message %d: body %q", seq, m.Data)
		}
		out = append(out, hubMsg{subject: m.Subject, header: m.Header, index: i})
	}
	return out
}

// checkSequence fails unless the hub holds exactly the indexes want, in
// order, each with a well-formed message id of host whose sequences grow.
func checkSequence(t testing.TB, got []hubMsg, host string, want []int) {
	t.Helper()
	idx := make([]int, len(got))
	var lastSeq uint64
	var created int64
	for i, m := range got {
		idx[i] = m.index
		h, c, seq, err := ParseTelemetryMsgID(m.header.Get(nats.MsgIdHdr))
		if err != nil || h != host {
			t.Fatalf("hub message %d: id %q: host %q, %v", i, m.header.Get(nats.MsgIdHdr), h, err)
		}
		if created != 0 && c != created {
			t.Fatalf("hub message %d: stream created %d, before %d", i, c, created)
		}
		if seq <= lastSeq {
			t.Fatalf("hub message %d: sequence %d after %d", i, seq, lastSeq)
		}
		created, lastSeq = c, seq
	}
	if len(idx) != len(want) {
		t.Fatalf("hub holds %d messages, want %d\n%s", len(idx), len(want), diffIndexes(idx, want))
	}
	for i := range want {
		if idx[i] != want[i] {
			t.Fatalf("hub message %d is %d, want %d\n%s", i, idx[i], want[i], diffIndexes(idx, want))
		}
	}
}

// diffIndexes describes the first difference and the duplicates.
func diffIndexes(got, want []int) string {
	seen := map[int]int{}
	var dups []int
	for _, g := range got {
		if seen[g]++; seen[g] == 2 {
			dups = append(dups, g)
		}
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("first difference at %d; duplicates %v; got[%d:] starts %v", i, head(dups, 10), i, head(got[min(i, len(got)):], 10))
}

func head(s []int, n int) []int { return s[:min(n, len(s))] }

func upTo(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// checkCaughtUp waits until the forwarder reports nothing waiting and
// checks its counters.
func checkCaughtUp(t testing.TB, f *Forwarder, forwarded, dropped uint64) {
	t.Helper()
	eventually(t, "the forwarder reports no backlog", func() bool {
		st := f.Stats()
		return st.Backlog == 0 && st.OfflineSince.IsZero() && st.Forwarded+st.Dropped >= forwarded+dropped
	})
	st := f.Stats()
	if st.Forwarded != forwarded || st.Dropped != dropped || st.Reordered != 0 || st.Skipped != 0 || st.Offline != 0 {
		t.Fatalf("stats %+v: want %d forwarded, %d dropped", st, forwarded, dropped)
	}
}

// TestTelemetryHubOutage: the hub goes away while a device publishes at a
// steady rate, and comes back on the same port and store.
func TestTelemetryHubOutage(t *testing.T) {
	const n = 3000
	r := newTMRig(t, "dev-a", TelemetryLimits{})
	f := newForwarder(t, r.forwarderOptions(t))
	runForwarder(t, f)
	p := publishSteady(t, r.dev, r.host, 0, n, 2*time.Millisecond)

	eventually(t, "600 published", func() bool { return p.stored.Load() >= 600 })
	r.restartHub(t, func() {
		at := p.stored.Load()
		eventually(t, "a backlog while the hub is down", func() bool {
			st := f.Stats()
			return p.stored.Load() >= at+500 && st.Backlog > 0 && !st.Oldest.IsZero() && st.Offline > 0 && st.LastError != ""
		})
	})
	p.wait(t)
	st := hubStream(t, r.hub)
	eventually(t, "the hub has every message", func() bool { return hubCount(t, st) >= n })
	checkSequence(t, hubMessages(t, r.hub), r.host, upTo(n))
	checkCaughtUp(t, f, n, 0)
}

// TestTelemetryUplinkCut: the device's uplink is cut (the proxy drops every
// connection and refuses new ones) twice while it publishes.
func TestTelemetryUplinkCut(t *testing.T) {
	const n = 3000
	r := newTMRig(t, "dev-b", TelemetryLimits{})
	f := newForwarder(t, r.forwarderOptions(t))
	runForwarder(t, f)
	p := publishSteady(t, r.dev, r.host, 0, n, 2*time.Millisecond)

	for _, at := range []int64{500, 1800} {
		eventually(t, "published before the cut", func() bool { return p.stored.Load() >= at })
		r.proxy.Cut()
		eventually(t, "the device notices the cut", func() bool { return !r.dev.LeafConnected() })
		eventually(t, "a backlog during the cut", func() bool {
			st := f.Stats()
			return p.stored.Load() >= at+400 && st.Backlog > 0 && st.Offline > 0
		})
		r.proxy.Restore()
	}
	p.wait(t)
	st := hubStream(t, r.hub)
	eventually(t, "the hub has every message", func() bool { return hubCount(t, st) >= n })
	checkSequence(t, hubMessages(t, r.hub), r.host, upTo(n))
	checkCaughtUp(t, f, n, 0)
}

// TestTelemetryReplayDeduplicated forces the replay case: the hub stores
// what the device forwards but its acknowledgements never arrive (the proxy
// drops the hub's side), so the device keeps everything and sends it again
// once the uplink is back. The hub keeps one copy of each, found either by
// asking the hub where it stands (checkpoint) or by its duplicate window.
func TestTelemetryReplayDeduplicated(t *testing.T) {
	for _, tt := range []struct {
		name         string
		noCheckpoint bool
	}{
		{"checkpoint", false},
		{"duplicate window", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const n = 200
			r := newTMRig(t, "dev-c", TelemetryLimits{})
			o := r.forwarderOptions(t)
			o.AckTimeout = 500 * time.Millisecond
			f := newForwarder(t, o)
			f.noCheckpoint = tt.noCheckpoint
			runForwarder(t, f)

			// A first message goes through normally.
			publishSteady(t, r.dev, r.host, 0, 1, 0).wait(t)
			st := hubStream(t, r.hub)
			eventually(t, "the first message forwarded", func() bool { return f.Stats().Forwarded == 1 })

			r.proxy.DropFromHub()
			publishSteady(t, r.dev, r.host, 1, n-1, 0).wait(t)
			eventually(t, "the hub stores what it never acknowledges", func() bool { return hubCount(t, st) == n })
			eventually(t, "the device still holds it, failing", func() bool {
				s := f.Stats()
				return s.Forwarded == 1 && s.LastError != "" && s.Offline > 0
			})

			r.proxy.Cut()
			eventually(t, "the device notices the cut", func() bool { return !r.dev.LeafConnected() })
			r.proxy.Restore()
			eventually(t, "the device catches up", func() bool { return f.Stats().Forwarded == n })
			checkSequence(t, hubMessages(t, r.hub), r.host, upTo(n))
			if got := hubCount(t, st); got != n {
				t.Fatalf("hub has %d messages, want %d", got, n)
			}
			s := f.Stats()
			if s.Duplicates == 0 || s.Duplicates > n-1 || s.Reordered != 0 {
				t.Fatalf("stats %+v: want duplicates (the replay), none reordered", s)
			}
			checkCaughtUp(t, f, n, 0)
		})
	}
}

// TestTelemetryFullBuffer: the hub is unreachable and the device's buffer
// fills up. drop_oldest keeps the newest and counts what it dropped; reject
// refuses new messages and keeps what it stored.
func TestTelemetryFullBuffer(t *testing.T) {
	const n = 1500
	limits := func(when string) TelemetryLimits {
		return TelemetryLimits{MaxBytes: 32 << 10, WhenFull: when}
	}
	t.Run("drop_oldest", func(t *testing.T) {
		r := newTMRig(t, "dev-d", limits(TelemetryDropOldest))
		r.proxy.Cut()
		eventually(t, "the device notices the cut", func() bool { return !r.dev.LeafConnected() })
		o := r.forwarderOptions(t)
		o.Window = 16
		f := newForwarder(t, o)
		runForwarder(t, f)

		p := publishSteady(t, r.dev, r.host, 0, n, 0)
		p.wait(t)
		if p.stored.Load() != n || p.rejected.Load() != 0 {
			t.Fatalf("stored %d, rejected %d: drop_oldest takes every message", p.stored.Load(), p.rejected.Load())
		}
		eventually(t, "the stream dropped the oldest", func() bool {
			st := f.Stats()
			return st.Backlog > 0 && st.Backlog < n/2 && st.Dropped > 0
		})

		r.proxy.Restore()
		eventually(t, "every message forwarded or dropped", func() bool {
			st := f.Stats()
			return st.Forwarded+st.Dropped == n
		})
		got := hubMessages(t, r.hub)
		st := f.Stats()
		if uint64(len(got)) != st.Forwarded || got[len(got)-1].index != n-1 {
			t.Fatalf("hub has %d messages ending with %d; forwarder says %d forwarded", len(got), got[len(got)-1].index, st.Forwarded)
		}
		// In order, none twice; the gaps are what was dropped.
		want := make([]int, len(got))
		for i, m := range got {
			want[i] = m.index
			if i > 0 && m.index <= got[i-1].index {
				t.Fatalf("hub message %d is %d after %d", i, m.index, got[i-1].index)
			}
		}
		checkSequence(t, got, r.host, want)
		// The newest are all there: the stream discards from the oldest
		// end. Before the one gap are the oldest, which the forwarder
		// had read before the stream dropped them.
		gaps := 0
		for i := 1; i < len(got); i++ {
			if got[i].index != got[i-1].index+1 {
				gaps++
			}
		}
		if gaps != 1 {
			t.Fatalf("%d gaps in what the hub has, want 1: the oldest read, then the newest kept", gaps)
		}
		checkCaughtUp(t, f, st.Forwarded, n-st.Forwarded)
	})

	// A forwarder started after the drops forwards the newest, in order;
	// it counts the drops it can see (see ForwarderStats.Dropped).
	t.Run("drop_oldest before a restart", func(t *testing.T) {
		r := newTMRig(t, "dev-d2", limits(TelemetryDropOldest))
		publishSteady(t, r.dev, r.host, 0, 10, 0).wait(t)
		o := r.forwarderOptions(t)
		f := newForwarder(t, o)
		stop := runForwarder(t, f)
		eventually(t, "10 forwarded", func() bool { return f.Stats().Forwarded == 10 })
		r.proxy.Cut()
		eventually(t, "the device notices the cut", func() bool { return !r.dev.LeafConnected() })
		stop()

		publishSteady(t, r.dev, r.host, 10, n, 0).wait(t)
		f = newForwarder(t, o)
		runForwarder(t, f)
		r.proxy.Restore()
		eventually(t, "the backlog forwarded", func() bool {
			st := f.Stats()
			return st.Backlog == 0 && st.Forwarded > 0 && st.OfflineSince.IsZero()
		})
		st := f.Stats()
		got := hubMessages(t, r.hub)
		if uint64(len(got)) != 10+st.Forwarded || st.Forwarded+st.Dropped > n {
			t.Fatalf("stats %+v; hub has %d", st, len(got))
		}
		want := upTo(10)
		for i := n + 10 - int(st.Forwarded); i < n+10; i++ {
			want = append(want, i)
		}
		checkSequence(t, got, r.host, want)
	})

	t.Run("reject", func(t *testing.T) {
		r := newTMRig(t, "dev-e", limits(TelemetryReject))
		r.proxy.Cut()
		eventually(t, "the device notices the cut", func() bool { return !r.dev.LeafConnected() })
		o := r.forwarderOptions(t)
		o.Window = 16
		f := newForwarder(t, o)
		runForwarder(t, f)

		p := publishSteady(t, r.dev, r.host, 0, n, 0)
		p.wait(t)
		stored := int(p.stored.Load())
		if stored == 0 || p.rejected.Load() == 0 || stored+int(p.rejected.Load()) != n {
			t.Fatalf("stored %d, rejected %d of %d: want the buffer to fill up", stored, p.rejected.Load(), n)
		}
		eventually(t, "the backlog is what was stored", func() bool { return f.Stats().Backlog == uint64(stored) })

		r.proxy.Restore()
		eventually(t, "the stored messages forwarded", func() bool { return f.Stats().Forwarded == uint64(stored) })
		// Sequential publishes: the first ones were stored, the rest refused.
		checkSequence(t, hubMessages(t, r.hub), r.host, upTo(stored))
		checkCaughtUp(t, f, uint64(stored), 0)

		// With the backlog gone, the buffer takes messages again.
		publishSteady(t, r.dev, r.host, n, 10, 0).wait(t)
		eventually(t, "new messages forwarded", func() bool { return f.Stats().Forwarded == uint64(stored+10) })
	})
}

// TestTelemetryDeviceRestart: the backlog is on disk. The device restarts
// during an outage, with messages the hub stored but never acknowledged,
// and a new forwarder sends the rest, once each, in order.
func TestTelemetryDeviceRestart(t *testing.T) {
	r := newTMRig(t, "dev-f", TelemetryLimits{})
	f := newForwarder(t, r.forwarderOptions(t))
	stop := runForwarder(t, f)

	publishSteady(t, r.dev, r.host, 0, 100, 0).wait(t)
	eventually(t, "100 forwarded", func() bool { return f.Stats().Forwarded == 100 })

	// Stored by the hub, not acknowledged on the device.
	st := hubStream(t, r.hub)
	r.proxy.DropFromHub()
	publishSteady(t, r.dev, r.host, 100, 50, 0).wait(t)
	eventually(t, "the hub stores 150", func() bool { return hubCount(t, st) == 150 })
	// Then not even sent.
	r.proxy.Cut()
	eventually(t, "the device notices the cut", func() bool { return !r.dev.LeafConnected() })
	publishSteady(t, r.dev, r.host, 150, 150, 0).wait(t)

	stop()
	shutdown(t, r.dev)
	r.startDevice(t, TelemetryLimits{})
	f = newForwarder(t, r.forwarderOptions(t))
	runForwarder(t, f)
	eventually(t, "the backlog survives the restart", func() bool { return f.Stats().Backlog == 200 })
	publishSteady(t, r.dev, r.host, 300, 100, 0).wait(t)

	r.proxy.Restore()
	eventually(t, "the hub has every message", func() bool { return hubCount(t, st) >= 400 })
	eventually(t, "the device catches up", func() bool { return f.Stats().Forwarded == 300 })
	checkSequence(t, hubMessages(t, r.hub), r.host, upTo(400))
	checkCaughtUp(t, f, 300, 0)
}

// TestTelemetryLocalProgram: a program on the device bus (TCP, not the
// agent) publishes telemetry, with JetStream and with core NATS; both are
// forwarded with the headers documented, and a subscriber on the hub sees
// them live too.
func TestTelemetryLocalProgram(t *testing.T) {
	r := newTMRig(t, "dev-g", TelemetryLimits{})
	f := newForwarder(t, r.forwarderOptions(t))
	runForwarder(t, f)

	live, err := connect(t, r.hub).SubscribeSync(TelemetryWildcard(tmLattice, r.host))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(r.dev.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// Interest from the hub reaches the device before the live message.
	eventually(t, "the hub's subscription reaches the device", func() bool {
		if err := nc.Publish(TelemetrySubject(tmLattice, r.host, "probe"), []byte("00000000")); err != nil {
			t.Fatal(err)
		}
		_, err := live.NextMsg(50 * time.Millisecond)
		return err == nil
	})
	m := nats.NewMsg(TelemetrySubject(tmLattice, r.host, "room1.temp"))
	m.Data = []byte("00000001")
	m.Header.Set("Content-Type", "application/json")
	m.Header.Set(nats.MsgIdHdr, "reading-1")
	m.Header.Set(jetstream.ExpectedStreamHeader, TelemetryStream) // for the device's stream
	m.Header.Set("Nats-Something-New", "x")
	ack, err := js.PublishMsg(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(t.Context(), m); err != nil { // same id: the device drops it
		t.Fatal(err)
	}
	if err := nc.Publish(TelemetrySubject(tmLattice, r.host, "room1.hum"), []byte("00000002")); err != nil {
		t.Fatal(err)
	}
	if _, err := live.NextMsg(waitBound); err != nil {
		t.Fatalf("live: %v", err)
	}
	var got []hubMsg
	eventually(t, "both forwarded", func() bool {
		got = hubMessages(t, r.hub)
		return len(got) > 2 && got[len(got)-1].index == 2
	})
	last := got[len(got)-2:]
	if last[0].index != 1 || last[1].index != 2 {
		t.Fatalf("hub ends with %d, %d", last[0].index, last[1].index)
	}
	h := last[0].header
	wantSubject := ForwardedTelemetrySubject(tmLattice, r.host, "room1.temp")
	if last[0].subject != wantSubject || last[1].subject != ForwardedTelemetrySubject(tmLattice, r.host, "room1.hum") {
		t.Fatalf("subjects %q, %q", last[0].subject, last[1].subject)
	}
	if h.Get("Content-Type") != "application/json" || h.Get(HeaderOriginMsgID) != "reading-1" || h.Get(HeaderHost) != r.host {
		t.Fatalf("headers %v", h)
	}
	if _, _, seq, err := ParseTelemetryMsgID(h.Get(nats.MsgIdHdr)); err != nil || seq != ack.Sequence {
		t.Fatalf("message id %q: want the device stream's sequence %d (%v)", h.Get(nats.MsgIdHdr), ack.Sequence, err)
	}
	published, err := time.Parse(time.RFC3339Nano, h.Get(HeaderPublished))
	if err != nil || published.IsZero() || published.Location() != time.UTC {
		t.Fatalf("published %q: %v", h.Get(HeaderPublished), err)
	}
	if h.Get("Nats-Something-New") != "" || h.Get(jetstream.ExpectedStreamHeader) != TelemetryStream {
		t.Fatalf("the device's directives forwarded: %v", h)
	}
}

// TestTelemetryLostInFlight: messages are lost on the way to the hub, the
// uplink reconnects, and new messages come before the lost ones time out.
// The forwarder notices the new connection and sends the lost ones first.
func TestTelemetryLostInFlight(t *testing.T) {
	r := newTMRig(t, "dev-h", TelemetryLimits{})
	o := r.forwarderOptions(t)
	o.AckTimeout = time.Hour // only the new connection can tell
	f := newForwarder(t, o)
	runForwarder(t, f)
	publishSteady(t, r.dev, r.host, 0, 10, 0).wait(t)
	eventually(t, "10 forwarded", func() bool { return f.Stats().Forwarded == 10 })

	r.proxy.DropToHub()
	publishSteady(t, r.dev, r.host, 10, 10, 0).wait(t)
	r.proxy.Cut()
	eventually(t, "the device notices the cut", func() bool { return !r.dev.LeafConnected() })
	r.proxy.Restore()
	serveEcho(t, connect(t, r.hub), "hub.ping", "hub")
	devConn := connect(t, r.dev)
	eventually(t, "the hub is reachable again", func() bool { return requestOK(devConn, "hub.ping", "hub:x") })
	publishSteady(t, r.dev, r.host, 20, 10, 0).wait(t)

	eventually(t, "30 forwarded", func() bool { return f.Stats().Forwarded == 30 })
	checkSequence(t, hubMessages(t, r.hub), r.host, upTo(30))
	checkCaughtUp(t, f, 30, 0)
}

// TestTelemetryHubRefusesForGood: a message the hub's stream will never
// take (over its size limit) is skipped instead of holding up the rest.
func TestTelemetryHubRefusesForGood(t *testing.T) {
	r := newTMRig(t, "dev-i", TelemetryLimits{})
	js, err := jetstream.New(connect(t, r.hub))
	if err != nil {
		t.Fatal(err)
	}
	cfg := hubTelemetryConfig(HubTelemetryOptions{}.withDefaults())
	cfg.MaxMsgSize = 1024
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	f := newForwarder(t, r.forwarderOptions(t))
	runForwarder(t, f)
	dev, err := jetstream.New(connect(t, r.dev))
	if err != nil {
		t.Fatal(err)
	}
	subject := TelemetrySubject(tmLattice, r.host, "big")
	for _, body := range [][]byte{tmPayload(0), append(tmPayload(1), make([]byte, 2048)...), tmPayload(2)} {
		if _, err := dev.Publish(t.Context(), subject, body); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the small ones forwarded, the big one skipped", func() bool {
		st := f.Stats()
		return st.Forwarded == 2 && st.Skipped == 1 && st.Backlog == 0
	})
	got := hubMessages(t, r.hub)
	if len(got) != 2 || got[0].index != 0 || got[1].index != 2 {
		t.Fatalf("hub has %+v", got)
	}
}

func TestForwarderOptionsRejected(t *testing.T) {
	s := startServer(t, ServerOptions{Name: "fwd", DontListen: true, StoreDir: t.TempDir()})
	plain := startServer(t, ServerOptions{Name: "plain", DontListen: true})
	ok := ForwarderOptions{Server: s, Lattice: "default", Host: "dev"}
	for _, tt := range []struct {
		name string
		edit func(o *ForwarderOptions)
		want string
	}{
		{"no server", func(o *ForwarderOptions) { o.Server = nil }, "no server"},
		{"no jetstream", func(o *ForwarderOptions) { o.Server = plain }, "no JetStream"},
		{"lattice", func(o *ForwarderOptions) { o.Lattice = "a.b" }, "lattice"},
		{"host", func(o *ForwarderOptions) { o.Host = "" }, "host"},
		{"hub domain", func(o *ForwarderOptions) { o.HubDomain = "h*" }, "hub domain"},
		{"window", func(o *ForwarderOptions) { o.Window = -1 }, "window"},
		{"window bytes", func(o *ForwarderOptions) { o.WindowBytes = -1 }, "window bytes"},
		{"ack timeout", func(o *ForwarderOptions) { o.AckTimeout = -time.Second }, "ack timeout"},
		{"retry", func(o *ForwarderOptions) { o.RetryInterval = -time.Second }, "retry interval"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.edit(&o)
			_, err := NewForwarder(o)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "mesh: ") {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := NewForwarder(ok); err != nil {
		t.Fatal(err)
	}
}

// TestForwarderWithoutStream: Run keeps trying until the stream exists, and
// reports why meanwhile.
func TestForwarderWithoutStream(t *testing.T) {
	s := startServer(t, ServerOptions{Name: "nostream", DontListen: true, StoreDir: t.TempDir()})
	f := newForwarder(t, ForwarderOptions{Server: s, Lattice: tmLattice, Host: "nostream", Logger: testLogger(t)})
	runForwarder(t, f)
	eventually(t, "the missing stream reported", func() bool {
		return strings.Contains(f.Stats().LastError, "stream not found")
	})
	if err := f.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Run: %v", err)
	}
	js, err := jetstream.New(connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureDeviceTelemetry(t.Context(), js, tmLattice, "nostream", TelemetryLimits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), TelemetrySubject(tmLattice, "nostream", "x"), tmPayload(0)); err != nil {
		t.Fatal(err)
	}
	// No hub at all: the message waits, and the failure says why.
	eventually(t, "the forwarder reads the stream and fails to reach a hub", func() bool {
		st := f.Stats()
		return st.Backlog == 1 && strings.Contains(st.LastError, "no responders") && st.Offline > 0
	})
}

var ackCases = []struct {
	data  string
	quick bool // decoded without encoding/json
	dup   bool
	err   bool
}{
	{`{"stream":"TELEMETRY","domain":"hub","seq":12}`, true, false, false},
	{`{"stream":"TELEMETRY","seq":12}`, true, false, false},
	{`{"stream":"TELEMETRY","domain":"hub","seq":12,"duplicate": true}`, false, true, false},
	{`{"stream":"TELEMETRY","seq":12,"duplicate":true}`, false, true, false},
	{`{"error":{"code":503,"err_code":10077,"description":"maximum bytes exceeded"}}`, false, false, true},
	{`{"stream":"","seq":1}`, false, false, false},
	{`{"stream":"x","error":{"code":400}}`, false, false, true},
	{`{"stream":"0","dupliCAtE":true}`, false, true, false},
	{`{"stream":"TELEMETRY","seq":12,"Error":{"code":400}}`, false, false, true},
	{`{"stream":"T\"X","seq":1}`, false, false, false},
	{`{"stream":"TELEMETRY","seq":012}`, false, false, false},
	{`garbage`, false, false, false},
}

func TestQuickAck(t *testing.T) {
	for _, tt := range ackCases {
		var quick, slow hubAck
		ok := quickAck([]byte(tt.data), &quick)
		if ok != tt.quick {
			t.Errorf("%s: quick %v", tt.data, ok)
		}
		if json.Unmarshal([]byte(tt.data), &slow) == nil && !ok {
			if slow.Duplicate != tt.dup || (slow.Error != nil) != tt.err {
				t.Errorf("%s: %+v", tt.data, slow)
			}
		}
	}
}

// FuzzHubReply: the hub's answers and their subjects never make the
// forwarder panic, and the quick decoding agrees with encoding/json.
func FuzzHubReply(f *testing.F) {
	for _, tt := range ackCases {
		f.Add("_INBOX.abc.1.2", []byte(tt.data))
	}
	f.Add("_INBOX.abc.x.2", []byte(nil))
	f.Add("_INBOX.abc.1", []byte("{}"))
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		s := &session{inbox: "_INBOX.abc"}
		s.parseReply(subject)
		var quick, slow hubAck
		if quickAck(data, &quick) {
			if err := json.Unmarshal(data, &slow); err != nil || slow != quick {
				t.Fatalf("%q: quick says %+v, encoding/json says %+v (%v)", data, quick, slow, err)
			}
		}
	})
}
