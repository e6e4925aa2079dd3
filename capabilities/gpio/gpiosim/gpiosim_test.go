package gpiosim_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellis-edge/trellis/capabilities/gpio"
	"github.com/trellis-edge/trellis/capabilities/gpio/gpiosim"
)

// clock is an injected clock: each reading is one second after the last.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// at is the time of the clock's nth reading.
func at(n int) time.Time {
	return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Second)
}

// newSim returns a provider that is closed, and checked for goroutines
// left behind, when the test ends.
func newSim(t *testing.T, lines []string, opts *gpiosim.Options) *gpiosim.Provider {
	t.Helper()
	p, err := gpiosim.New(lines, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
		checkNoDeliverers(t)
	})
	return p
}

// checkNoDeliverers fails if a watch goroutine of this package is running.
// Close waits for them, so after Close none may be left.
func checkNoDeliverers(t *testing.T) {
	t.Helper()
	// A goroutine that has called wg.Done is still on its way out: give
	// it a few turns of the scheduler before calling it a leak.
	var stacks string
	for range 1000 {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "gpiosim.(*Provider).deliver") {
			return
		}
		runtime.Gosched()
	}
	t.Errorf("a watch goroutine outlived Close:\n%s", stacks)
}

func line(t *testing.T, p gpio.Provider, name string) gpio.Line {
	t.Helper()
	l, err := p.Line(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// recorder collects the events of a watch.
type recorder struct {
	ch chan gpio.Event
}

func newRecorder() *recorder { return &recorder{ch: make(chan gpio.Event, 4096)} }

func (r *recorder) fn(ev gpio.Event) { r.ch <- ev }

// next waits for the next event.
func (r *recorder) next(t *testing.T) gpio.Event {
	t.Helper()
	return <-r.ch
}

// none checks that no event is buffered (call after Close, when delivery
// has stopped).
func (r *recorder) none(t *testing.T) {
	t.Helper()
	select {
	case ev := <-r.ch:
		t.Errorf("unexpected event %+v", ev)
	default:
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		opts  *gpiosim.Options
		ok    bool
	}{
		{"none", nil, nil, true},
		{"two", []string{"GPIO27", "GPIO17"}, nil, true},
		{"no pwm", []string{"GPIO17"}, &gpiosim.Options{NoPWM: []string{"GPIO17"}}, true},
		{"duplicate", []string{"GPIO17", "GPIO17"}, nil, false},
		{"empty name", []string{""}, nil, false},
		{"space", []string{"GPIO 17"}, nil, false},
		{"no pwm unknown", []string{"GPIO17"}, &gpiosim.Options{NoPWM: []string{"GPIO18"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := gpiosim.New(tc.lines, tc.opts)
			if (err == nil) != tc.ok {
				t.Fatalf("New(%q) error = %v, want ok=%v", tc.lines, err, tc.ok)
			}
			if p != nil {
				p.Close()
			}
		})
	}
}

func TestLinesSorted(t *testing.T) {
	p := newSim(t, []string{"GPIO27", "GPIO17", "GPIO22"}, nil)
	got := p.Lines()
	if strings.Join(got, ",") != "GPIO17,GPIO22,GPIO27" {
		t.Fatalf("Lines() = %v", got)
	}
	got[0] = "changed"
	if p.Lines()[0] != "GPIO17" {
		t.Fatal("Lines() shares its slice with the provider")
	}
}

func TestUnknownLine(t *testing.T) {
	p := newSim(t, []string{"GPIO17", "GPIO27"}, nil)
	check := func(what string, err error) {
		t.Helper()
		var ue *gpio.UnknownLineError
		if !errors.As(err, &ue) || !errors.Is(err, gpio.ErrUnknownLine) {
			t.Fatalf("%s: error %v, want an UnknownLineError", what, err)
		}
		for _, s := range []string{`"GPIO99"`, "GPIO17", "GPIO27"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q does not mention %s", what, err, s)
			}
		}
	}
	_, err := p.Line("GPIO99")
	check("Line", err)
	check("Set", p.Set("GPIO99", gpio.High))
	_, err = p.Get("GPIO99")
	check("Get", err)
	_, err = p.State("GPIO99")
	check("State", err)
}

func TestReadWriteGetSet(t *testing.T) {
	ctx := t.Context()
	p := newSim(t, []string{"GPIO17", "GPIO27"}, nil)
	in, out := line(t, p, "GPIO17"), line(t, p, "GPIO27")

	steps := []struct {
		name string
		do   func() error
	}{
		{"set input high", func() error { return p.Set("GPIO17", gpio.High) }},
		{"write output high", func() error { return out.Write(ctx, gpio.High) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	for _, tc := range []struct {
		name   string
		l      gpio.Line
		want   gpio.Level
		output bool
	}{
		{"GPIO17", in, gpio.High, false},
		{"GPIO27", out, gpio.High, true},
	} {
		if got, err := tc.l.Read(ctx); err != nil || got != tc.want {
			t.Errorf("%s Read = %v, %v; want %v", tc.name, got, err, tc.want)
		}
		if got, err := p.Get(tc.name); err != nil || got != tc.want {
			t.Errorf("%s Get = %v, %v; want %v", tc.name, got, err, tc.want)
		}
		if s, _ := p.State(tc.name); s.Output != tc.output {
			t.Errorf("%s State.Output = %v, want %v", tc.name, s.Output, tc.output)
		}
	}
	if err := out.Write(ctx, gpio.Low); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Get("GPIO27"); got != gpio.Low {
		t.Errorf("Get after Write(Low) = %v", got)
	}
	// The outside cannot drive a line the device drives.
	if err := p.Set("GPIO27", gpio.High); !errors.Is(err, gpio.ErrDirection) {
		t.Errorf("Set on an output = %v, want ErrDirection", err)
	}
}

func TestWatchEdges(t *testing.T) {
	sets := []gpio.Level{gpio.High, gpio.High, gpio.Low, gpio.High, gpio.Low}
	// Clock readings: one per change of level (the repeated High is no edge).
	changes := []struct {
		n     int
		level gpio.Level
	}{{1, gpio.High}, {2, gpio.Low}, {3, gpio.High}, {4, gpio.Low}}
	for _, edge := range []gpio.Edge{gpio.EdgeRising, gpio.EdgeFalling, gpio.EdgeBoth} {
		t.Run(edge.String(), func(t *testing.T) {
			clk := newClock()
			p := newSim(t, []string{"GPIO17"}, &gpiosim.Options{Now: clk.Now})
			rec := newRecorder()
			if err := line(t, p, "GPIO17").Watch(t.Context(), edge, rec.fn); err != nil {
				t.Fatal(err)
			}
			for _, l := range sets {
				if err := p.Set("GPIO17", l); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range changes {
				if !edge.Includes(c.level) {
					continue
				}
				want := gpio.Event{Line: "GPIO17", Level: c.level, Time: at(c.n)}
				if got := rec.next(t); got != want {
					t.Fatalf("event = %+v, want %+v", got, want)
				}
			}
			p.Close()
			rec.none(t)
		})
	}
}

// TestWatchOrderNoOverlap sets many levels while the callback is slow
// enough to queue them: every edge arrives, in order, and calls of one
// watch never overlap.
func TestWatchOrderNoOverlap(t *testing.T) {
	p := newSim(t, []string{"GPIO17"}, &gpiosim.Options{Now: newClock().Now})
	var inside atomic.Int32
	var overlapped atomic.Bool
	rec := newRecorder()
	err := line(t, p, "GPIO17").Watch(t.Context(), gpio.EdgeBoth, func(ev gpio.Event) {
		if inside.Add(1) != 1 {
			overlapped.Store(true)
		}
		runtime.Gosched()
		rec.fn(ev)
		inside.Add(-1)
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			if err := p.Set("GPIO17", i%2 == 0); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	var last time.Time
	for i := range n {
		ev := rec.next(t)
		if ev.Level != (i%2 == 0) || !ev.Time.After(last) {
			t.Fatalf("event %d = %+v after %v: out of order", i, ev, last)
		}
		last = ev.Time
	}
	if overlapped.Load() {
		t.Fatal("callback calls of one watch overlapped")
	}
}

func TestWatchEndsWithContext(t *testing.T) {
	p := newSim(t, []string{"GPIO17"}, nil)
	l := line(t, p, "GPIO17")
	ctx, cancel := context.WithCancel(t.Context())
	gone, kept := newRecorder(), newRecorder()
	if err := l.Watch(ctx, gpio.EdgeBoth, gone.fn); err != nil {
		t.Fatal(err)
	}
	if err := l.Watch(t.Context(), gpio.EdgeBoth, kept.fn); err != nil {
		t.Fatal(err)
	}
	if s, _ := p.State("GPIO17"); s.Watches != 2 {
		t.Fatalf("Watches = %d, want 2", s.Watches)
	}
	cancel()
	if s, _ := p.State("GPIO17"); s.Watches != 1 {
		t.Fatalf("Watches after cancel = %d, want 1", s.Watches)
	}
	if err := p.Set("GPIO17", gpio.High); err != nil {
		t.Fatal(err)
	}
	if ev := kept.next(t); ev.Level != gpio.High {
		t.Fatalf("kept watch got %+v", ev)
	}
	p.Close()
	gone.none(t)
}

func TestWatchedLineIsAnInput(t *testing.T) {
	ctx := t.Context()
	p := newSim(t, []string{"GPIO17"}, nil)
	l := line(t, p, "GPIO17")
	if err := l.Write(ctx, gpio.High); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	rec := newRecorder()
	if err := l.Watch(wctx, gpio.EdgeFalling, rec.fn); err != nil {
		t.Fatal(err)
	}
	if s, _ := p.State("GPIO17"); s.Output {
		t.Fatal("a watched line is still an output")
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"Write", l.Write(ctx, gpio.Low)},
		{"PWM", l.PWM(ctx, 0.5, 1000)},
	} {
		if !errors.Is(tc.err, gpio.ErrDirection) {
			t.Errorf("%s on a watched line = %v, want ErrDirection", tc.name, tc.err)
		}
	}
	if err := p.Set("GPIO17", gpio.Low); err != nil {
		t.Fatal(err)
	}
	if ev := rec.next(t); ev.Level != gpio.Low {
		t.Fatalf("event %+v", ev)
	}
	cancel()
	if err := l.Write(ctx, gpio.Low); err != nil {
		t.Fatalf("Write once the watch ended: %v", err)
	}
}

func TestPWM(t *testing.T) {
	ctx := t.Context()
	p := newSim(t, []string{"GPIO17", "GPIO18"}, &gpiosim.Options{NoPWM: []string{"GPIO17"}})
	plain, pwm := line(t, p, "GPIO17"), line(t, p, "GPIO18")

	if err := plain.PWM(ctx, 0.5, 1000); !errors.Is(err, gpio.ErrUnsupported) {
		t.Errorf("PWM on a line without = %v, want ErrUnsupported", err)
	}
	for _, tc := range []struct {
		name string
		duty gpio.Duty
		freq gpio.Hertz
		says string
	}{
		{"duty above 1", 1.5, 1000, "duty"},
		{"zero frequency", 0.5, 0, "frequency"},
		{"negative frequency", 0.5, -1, "frequency"},
	} {
		if err := pwm.PWM(ctx, tc.duty, tc.freq); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("PWM with %s = %v, want an error about the %s", tc.name, err, tc.says)
		}
	}
	if err := pwm.PWM(ctx, 0.25, 50); err != nil {
		t.Fatal(err)
	}
	s, _ := p.State("GPIO18")
	if want := (gpiosim.LineState{Name: "GPIO18", Output: true, HasPWM: true, PWM: true, Duty: 0.25, Freq: 50}); s != want {
		t.Fatalf("State = %+v, want %+v", s, want)
	}
	if _, err := pwm.Read(ctx); !errors.Is(err, gpio.ErrDirection) {
		t.Errorf("Read while generating PWM = %v, want ErrDirection", err)
	}
	if err := p.Set("GPIO18", gpio.High); !errors.Is(err, gpio.ErrDirection) {
		t.Errorf("Set while generating PWM = %v, want ErrDirection", err)
	}
	if err := pwm.Write(ctx, gpio.High); err != nil {
		t.Fatal(err)
	}
	if s, _ := p.State("GPIO18"); s.PWM || !s.Output || s.Level != gpio.High {
		t.Fatalf("State after Write = %+v, want a plain output at high", s)
	}
}

func TestContextDone(t *testing.T) {
	p := newSim(t, []string{"GPIO17"}, nil)
	l := line(t, p, "GPIO17")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, rerr := l.Read(ctx)
	for name, err := range map[string]error{
		"Read":  rerr,
		"Write": l.Write(ctx, gpio.High),
		"Watch": l.Watch(ctx, gpio.EdgeBoth, func(gpio.Event) {}),
		"PWM":   l.PWM(ctx, 0.5, 1000),
	} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a done context = %v, want context.Canceled", name, err)
		}
	}
	if s, _ := p.State("GPIO17"); s.Output || s.Watches != 0 {
		t.Errorf("a refused call changed the line: %+v", s)
	}
}

func TestWatchArguments(t *testing.T) {
	l := line(t, newSim(t, []string{"GPIO17"}, nil), "GPIO17")
	if err := l.Watch(t.Context(), 0, func(gpio.Event) {}); err == nil {
		t.Error("Watch with no edge succeeded")
	}
	if err := l.Watch(t.Context(), gpio.EdgeBoth, nil); err == nil {
		t.Error("Watch with a nil callback succeeded")
	}
}

func TestClose(t *testing.T) {
	ctx := t.Context()
	p := newSim(t, []string{"GPIO17"}, nil)
	l := line(t, p, "GPIO17")
	rec := newRecorder()
	if err := l.Watch(ctx, gpio.EdgeBoth, rec.fn); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoDeliverers(t)
	_, rerr := l.Read(ctx)
	_, lerr := p.Line("GPIO17")
	_, gerr := p.Get("GPIO17")
	for name, err := range map[string]error{
		"Line":  lerr,
		"Read":  rerr,
		"Write": l.Write(ctx, gpio.High),
		"Watch": l.Watch(ctx, gpio.EdgeBoth, rec.fn),
		"PWM":   l.PWM(ctx, 0.5, 1000),
		"Set":   p.Set("GPIO17", gpio.High),
		"Get":   gerr,
	} {
		if !errors.Is(err, gpio.ErrUnavailable) {
			t.Errorf("%s after Close = %v, want ErrUnavailable", name, err)
		}
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	rec.none(t)
}

// TestSlowWatcherDrops fills the queue of a watch whose callback is stuck:
// the edges beyond the queue are dropped and counted, Set never blocks, and
// the queued edges are delivered once the callback returns.
func TestSlowWatcherDrops(t *testing.T) {
	const queue = 1024 // the provider's bound
	p := newSim(t, []string{"GPIO17"}, nil)
	entered, release, all := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var got atomic.Int64
	err := line(t, p, "GPIO17").Watch(t.Context(), gpio.EdgeBoth, func(gpio.Event) {
		switch got.Add(1) {
		case 1:
			close(entered)
			<-release
		case 1 + queue:
			close(all)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Set("GPIO17", gpio.High); err != nil {
		t.Fatal(err)
	}
	<-entered // the first edge is being delivered; the next ones queue
	const n = 3000
	for i := range n {
		if err := p.Set("GPIO17", i%2 == 1); err != nil { // every Set is an edge
			t.Fatal(err)
		}
	}
	if s, _ := p.State("GPIO17"); s.Dropped != n-queue {
		t.Fatalf("Dropped = %d, want %d", s.Dropped, n-queue)
	}
	close(release)
	<-all
	p.Close()
	if got.Load() != 1+queue {
		t.Fatalf("%d edges delivered, want %d", got.Load(), 1+queue)
	}
}

// TestCallbackMayUseProvider: a callback that drives another line (an
// actor answering a button with an LED) does not deadlock.
func TestCallbackMayUseProvider(t *testing.T) {
	ctx := t.Context()
	p := newSim(t, []string{"BUTTON", "LED"}, nil)
	led := line(t, p, "LED")
	done := make(chan gpio.Level, 1)
	err := line(t, p, "BUTTON").Watch(ctx, gpio.EdgeRising, func(ev gpio.Event) {
		if err := led.Write(ctx, ev.Level); err != nil {
			t.Error(err)
		}
		l, _ := p.Get("LED")
		done <- l
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Set("BUTTON", gpio.High); err != nil {
		t.Fatal(err)
	}
	if l := <-done; l != gpio.High {
		t.Fatalf("LED = %v", l)
	}
}

// TestConcurrentUse runs every operation from many goroutines; run with
// -race.
func TestConcurrentUse(t *testing.T) {
	ctx := t.Context()
	names := []string{"GPIO17", "GPIO18", "GPIO27"}
	p := newSim(t, names, nil)
	var calls atomic.Int64
	var wg sync.WaitGroup
	for i := range 12 {
		name := names[i%len(names)]
		l := line(t, p, name)
		wg.Go(func() {
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			for j := range 200 {
				switch (i + j) % 6 {
				case 0:
					_ = p.Set(name, j%2 == 0)
				case 1:
					_, _ = l.Read(ctx)
				case 2:
					_ = l.Write(ctx, j%2 == 0)
				case 3:
					_ = l.Watch(wctx, gpio.EdgeBoth, func(gpio.Event) { calls.Add(1) })
				case 4:
					_ = l.PWM(ctx, 0.5, 100)
				case 5:
					_, _ = p.State(name)
				}
			}
		})
	}
	wg.Wait()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoDeliverers(t)
	t.Logf("%d callbacks", calls.Load())
}
