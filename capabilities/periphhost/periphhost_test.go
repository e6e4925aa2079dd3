package periphhost

import (
	"context"
	"errors"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/physic"

	"github.com/trellis-edge/trellis/capabilities/gpio"
)

// gpioreg is process-global: every pin a test registers has a name of its
// own (from the test's name), and is unregistered when the test ends.

func pinName(t *testing.T, suffix string) string {
	name := "T_" + strings.NewReplacer("/", "_", "Test", "").Replace(t.Name()) + "_" + suffix
	if len(name) > gpio.MaxLineName {
		t.Fatalf("test pin name %q is too long", name)
	}
	return name
}

func register(t *testing.T, p pgpio.PinIO) {
	t.Helper()
	if err := gpioreg.Register(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := gpioreg.Unregister(p.Name()); err != nil {
			t.Error(err)
		}
	})
}

// newPin registers a fake pin.
func newPin(t *testing.T, suffix string) *testPin {
	t.Helper()
	p := &testPin{N: pinName(t, suffix), EdgesChan: make(chan pgpio.Level)}
	register(t, p)
	return p
}

// noPWMPin refuses PWM the way periph's character-device pins do.
type noPWMPin struct{ *testPin }

func (noPWMPin) PWM(pgpio.Duty, physic.Frequency) error { return errors.New("PWM() not implemented") }

// clock is an injected clock: each reading is one second after the last.
type clock struct {
	mu sync.Mutex
	n  int
}

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return at(c.n)
}

func at(n int) time.Time { return epoch.Add(time.Duration(n) * time.Second) }

// open opens a provider of the named pins that is closed, and checked for
// loops left behind, when the test ends. It polls often, so that watches
// end soon after their context; no test measures that.
func open(t *testing.T, names ...string) *Provider {
	t.Helper()
	p, err := Open(names, &Options{Now: (&clock{}).Now, Poll: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
		checkNoLoops(t)
	})
	return p
}

// checkNoLoops fails if a watch loop of this package is running. It is
// meant for after Close (or a Write), which wait for them.
func checkNoLoops(t *testing.T) {
	t.Helper()
	// A goroutine that has called wg.Done is still on its way out: give
	// it a few turns of the scheduler before calling it a leak.
	var stacks string
	for range 1000 {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "periphhost.(*Provider).loop") {
			return
		}
		runtime.Gosched()
	}
	t.Errorf("a watch loop is still running:\n%s", stacks)
}

func lineOf(t *testing.T, p *Provider, name string) gpio.Line {
	t.Helper()
	l, err := p.Line(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func level(p *testPin) pgpio.Level {
	p.Lock()
	defer p.Unlock()
	return p.L
}

// events returns a callback that sends each event on a channel, and the
// channel.
func events() (func(gpio.Event), chan gpio.Event) {
	ch := make(chan gpio.Event, 64)
	return func(ev gpio.Event) { ch <- ev }, ch
}

func noEvent(t *testing.T, ch chan gpio.Event) {
	t.Helper()
	select {
	case ev := <-ch:
		t.Errorf("unexpected event %+v", ev)
	default:
	}
}

func TestInit(t *testing.T) {
	r, err := Init()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Init()
	if err != nil || !reflect.DeepEqual(r, again) {
		t.Fatalf("second Init = %+v, %v; want the first report", again, err)
	}
	seen := map[string]string{}
	note := func(name, group string) {
		if name == "" {
			t.Errorf("a %s driver has no name", group)
		}
		if g, dup := seen[name]; dup {
			t.Errorf("driver %s is both %s and %s", name, g, group)
		}
		seen[name] = group
	}
	for _, d := range r.Loaded {
		note(d, "loaded")
	}
	for _, g := range []struct {
		name string
		ds   []DriverStatus
	}{{"skipped", r.Skipped}, {"failed", r.Failed}} {
		for _, d := range g.ds {
			note(d.Name, g.name)
			if d.Reason == "" {
				t.Errorf("%s driver %s has no reason", g.name, d.Name)
			}
		}
	}
	if len(seen) == 0 {
		t.Error("Init reports no driver at all")
	}
	t.Logf("periph host drivers on %s/%s:\n%s", runtime.GOOS, runtime.GOARCH, r)
}

func TestOpen(t *testing.T) {
	a, b := newPin(t, "a"), newPin(t, "b")

	t.Run("named", func(t *testing.T) {
		p := open(t, b.N, a.N)
		if got := p.Lines(); !slices.Equal(got, []string{a.N, b.N}) {
			t.Errorf("Lines() = %v", got)
		}
		if !reflect.DeepEqual(p.Report(), mustInit(t)) {
			t.Error("Report() differs from Init's")
		}
	})
	t.Run("all", func(t *testing.T) {
		// A kernel line name no grant could name is left out.
		odd := &testPin{N: pinName(t, "x") + " (spare)"}
		register(t, odd)
		got := open(t).Lines()
		if !slices.Contains(got, a.N) || !slices.Contains(got, b.N) || slices.Contains(got, odd.N) {
			t.Errorf("Lines() = %v, want %s and %s among them, not %q", got, a.N, b.N, odd.N)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		_, err := Open([]string{"T_absent"}, nil)
		var ue *gpio.UnknownLineError
		if !errors.As(err, &ue) || !errors.Is(err, gpio.ErrUnknownLine) {
			t.Fatalf("Open of an unknown pin = %v, want an UnknownLineError", err)
		}
		if !strings.Contains(err.Error(), `"T_absent"`) || !slices.Contains(ue.Lines, a.N) {
			t.Errorf("%v: want the name and the registered pins", err)
		}
	})
	for _, tc := range []struct {
		name  string
		lines []string
	}{
		{"duplicate", []string{a.N, a.N}},
		{"bad name", []string{"GPIO 17"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if p, err := Open(tc.lines, nil); err == nil {
				p.Close()
				t.Fatalf("Open(%q) succeeded", tc.lines)
			}
		})
	}
	t.Run("unknown line of a provider", func(t *testing.T) {
		_, err := open(t, a.N).Line(b.N)
		if !errors.Is(err, gpio.ErrUnknownLine) || !strings.Contains(err.Error(), a.N) {
			t.Errorf("Line of a pin not opened = %v", err)
		}
	})
}

func mustInit(t *testing.T) Report {
	r, err := Init()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReadWrite(t *testing.T) {
	ctx := t.Context()
	pin := newPin(t, "p")
	pin.L = pgpio.High
	l := lineOf(t, open(t, pin.N), pin.N)

	if got, err := l.Read(ctx); err != nil || got != gpio.High {
		t.Fatalf("Read = %v, %v; want high", got, err)
	}
	for _, want := range []gpio.Level{gpio.Low, gpio.High, gpio.Low} {
		if err := l.Write(ctx, want); err != nil {
			t.Fatal(err)
		}
		if got := level(pin); got != pgpio.Level(want) {
			t.Errorf("pin level after Write(%v) = %v", want, got)
		}
		if got, err := l.Read(ctx); err != nil || got != want {
			t.Errorf("Read after Write(%v) = %v, %v", want, got, err)
		}
	}
}

func TestWatch(t *testing.T) {
	for _, tc := range []struct {
		edge  gpio.Edge
		sends []pgpio.Level // edges the hardware sees (only of the kind detected)
	}{
		{gpio.EdgeRising, []pgpio.Level{pgpio.High, pgpio.High, pgpio.High}},
		{gpio.EdgeFalling, []pgpio.Level{pgpio.Low, pgpio.Low}},
		{gpio.EdgeBoth, []pgpio.Level{pgpio.High, pgpio.Low, pgpio.High, pgpio.Low}},
	} {
		t.Run(tc.edge.String(), func(t *testing.T) {
			pin := newPin(t, "p")
			p := open(t, pin.N)
			fn, ch := events()
			if err := lineOf(t, p, pin.N).Watch(t.Context(), tc.edge, fn); err != nil {
				t.Fatal(err)
			}
			for i, l := range tc.sends {
				pin.EdgesChan <- l
				want := gpio.Event{Line: pin.N, Level: gpio.Level(l), Time: at(i + 1)}
				if got := <-ch; got != want {
					t.Fatalf("event %d = %+v, want %+v", i, got, want)
				}
			}
		})
	}
}

// TestWatchWidens: a second watch for the other edge widens the pin to
// both edges; each watch gets only its own kind.
func TestWatchWidens(t *testing.T) {
	ctx := t.Context()
	pin := newPin(t, "p")
	l := lineOf(t, open(t, pin.N), pin.N)
	riseFn, rise := events()
	fallFn, fall := events()
	if err := l.Watch(ctx, gpio.EdgeRising, riseFn); err != nil {
		t.Fatal(err)
	}
	if err := l.Watch(ctx, gpio.EdgeFalling, fallFn); err != nil {
		t.Fatal(err)
	}
	pin.EdgesChan <- pgpio.Low
	if ev := <-fall; ev.Level != gpio.Low {
		t.Fatalf("falling watch got %+v", ev)
	}
	pin.EdgesChan <- pgpio.High
	if ev := <-rise; ev.Level != gpio.High {
		t.Fatalf("rising watch got %+v", ev)
	}
	// Each callback ran before the next edge was taken: nothing else is queued.
	pin.EdgesChan <- pgpio.Low
	<-fall
	noEvent(t, rise)
}

func TestWatchEndsWithContext(t *testing.T) {
	ctx := t.Context()
	pin := newPin(t, "p")
	p := open(t, pin.N)
	l := lineOf(t, p, pin.N)
	wctx, cancel := context.WithCancel(ctx)
	goneFn, gone := events()
	keptFn, kept := events()
	if err := l.Watch(wctx, gpio.EdgeBoth, goneFn); err != nil {
		t.Fatal(err)
	}
	kctx, kcancel := context.WithCancel(ctx)
	if err := l.Watch(kctx, gpio.EdgeBoth, keptFn); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(ctx, gpio.High); !errors.Is(err, gpio.ErrDirection) {
		t.Fatalf("Write on a watched line = %v, want ErrDirection", err)
	}
	cancel()
	pin.EdgesChan <- pgpio.High
	if ev := <-kept; ev.Level != gpio.High {
		t.Fatalf("kept watch got %+v", ev)
	}
	noEvent(t, gone)

	// With no live watch, Write waits for the loop to end and then drives
	// the pin: after it returns no loop is left.
	kcancel()
	if err := l.Write(ctx, gpio.Low); err != nil {
		t.Fatalf("Write once the watches ended: %v", err)
	}
	checkNoLoops(t)
	if got := level(pin); got != pgpio.Low {
		t.Errorf("pin level = %v, want low", got)
	}
	// And the line can be watched again.
	againFn, again := events()
	if err := l.Watch(ctx, gpio.EdgeRising, againFn); err != nil {
		t.Fatal(err)
	}
	pin.EdgesChan <- pgpio.High
	<-again
	noEvent(t, kept)
}

func TestPWM(t *testing.T) {
	ctx := t.Context()
	pin := newPin(t, "pwm")
	plain := &testPin{N: pinName(t, "plain"), EdgesChan: make(chan pgpio.Level)}
	register(t, noPWMPin{plain})
	p := open(t, pin.N, plain.N)
	l := lineOf(t, p, pin.N)

	for _, tc := range []struct {
		duty gpio.Duty
		freq gpio.Hertz
		d    pgpio.Duty
		f    physic.Frequency
	}{
		{0.5, 1000, pgpio.DutyHalf, physic.KiloHertz},
		{0.25, 50, pgpio.DutyMax / 4, 50 * physic.Hertz},
		{1, 0.5, pgpio.DutyMax, physic.Hertz / 2},
		{0, gpio.MaxFreq, 0, physic.GigaHertz},
	} {
		if err := l.PWM(ctx, tc.duty, tc.freq); err != nil {
			t.Fatalf("PWM(%v, %v): %v", tc.duty, tc.freq, err)
		}
		pin.Lock()
		d, f := pin.D, pin.F
		pin.Unlock()
		if d != tc.d || f != tc.f {
			t.Errorf("PWM(%v, %v) set duty %v, freq %v; want %v, %v", tc.duty, tc.freq, d, f, tc.d, tc.f)
		}
	}
	if _, err := l.Read(ctx); !errors.Is(err, gpio.ErrDirection) {
		t.Errorf("Read while generating PWM = %v, want ErrDirection", err)
	}
	for _, tc := range []struct {
		name string
		duty gpio.Duty
		freq gpio.Hertz
	}{{"duty above 1", 1.5, 1000}, {"zero frequency", 0.5, 0}, {"frequency above MaxFreq", 0.5, gpio.MaxFreq * 2}} {
		if err := l.PWM(ctx, tc.duty, tc.freq); err == nil {
			t.Errorf("PWM with %s succeeded", tc.name)
		}
	}
	if err := l.PWM(ctx, 0.5, 1e-7); !errors.Is(err, gpio.ErrUnsupported) {
		t.Errorf("PWM below 1 µHz = %v, want ErrUnsupported", err)
	}
	if err := lineOf(t, p, plain.N).PWM(ctx, 0.5, 1000); !errors.Is(err, gpio.ErrUnsupported) {
		t.Errorf("PWM on a pin without = %v, want ErrUnsupported", err)
	}
	fn, _ := events()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := l.Watch(wctx, gpio.EdgeBoth, fn); err != nil {
		t.Fatal(err)
	}
	if err := l.PWM(ctx, 0.5, 1000); !errors.Is(err, gpio.ErrDirection) {
		t.Errorf("PWM on a watched line = %v, want ErrDirection", err)
	}
}

func TestContextDone(t *testing.T) {
	pin := newPin(t, "p")
	l := lineOf(t, open(t, pin.N), pin.N)
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
	checkNoLoops(t)
}

func TestWatchArguments(t *testing.T) {
	pin := newPin(t, "p")
	l := lineOf(t, open(t, pin.N), pin.N)
	if err := l.Watch(t.Context(), 0, func(gpio.Event) {}); err == nil {
		t.Error("Watch with no edge succeeded")
	}
	if err := l.Watch(t.Context(), gpio.EdgeBoth, nil); err == nil {
		t.Error("Watch with a nil callback succeeded")
	}
}

func TestWatchRefusedByPin(t *testing.T) {
	pin := &testPin{N: pinName(t, "p")} // no EdgesChan: gpiotest refuses edge detection
	register(t, pin)
	l := lineOf(t, open(t, pin.N), pin.N)
	if err := l.Watch(t.Context(), gpio.EdgeBoth, func(gpio.Event) {}); err == nil {
		t.Fatal("Watch succeeded on a pin that refuses edge detection")
	}
	checkNoLoops(t)
}

func TestClose(t *testing.T) {
	ctx := t.Context()
	pin := newPin(t, "p")
	p := open(t, pin.N)
	l := lineOf(t, p, pin.N)
	fn, ch := events()
	if err := l.Watch(ctx, gpio.EdgeBoth, fn); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoLoops(t)
	_, rerr := l.Read(ctx)
	_, lerr := p.Line(pin.N)
	for name, err := range map[string]error{
		"Line":  lerr,
		"Read":  rerr,
		"Write": l.Write(ctx, gpio.High),
		"Watch": l.Watch(ctx, gpio.EdgeBoth, fn),
		"PWM":   l.PWM(ctx, 0.5, 1000),
	} {
		if !errors.Is(err, gpio.ErrUnavailable) {
			t.Errorf("%s after Close = %v, want ErrUnavailable", name, err)
		}
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	noEvent(t, ch)
}

// TestConcurrentUse reads, writes and watches from many goroutines while
// edges arrive; run with -race.
func TestConcurrentUse(t *testing.T) {
	ctx := t.Context()
	in, out := newPin(t, "in"), newPin(t, "out")
	p := open(t, in.N, out.N)
	inL, outL := lineOf(t, p, in.N), lineOf(t, p, out.N)
	var calls atomic.Int64
	// One watch lives until every edge is sent (an edge with no watch left
	// would wait forever on EdgesChan); the others come and go.
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	if err := inL.Watch(kctx, gpio.EdgeBoth, func(gpio.Event) { calls.Add(1) }); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			if err := inL.Watch(wctx, gpio.EdgeBoth, func(gpio.Event) { calls.Add(1) }); err != nil {
				t.Error(err)
			}
			for j := range 100 {
				if _, err := inL.Read(ctx); err != nil {
					t.Error(err)
				}
				if err := outL.Write(ctx, (i+j)%2 == 0); err != nil {
					t.Error(err)
				}
				if _, err := outL.Read(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for j := range 200 {
		in.EdgesChan <- j%2 == 0
	}
	kcancel()
	wg.Wait()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoLoops(t)
	t.Logf("%d callbacks for 200 edges", calls.Load())
}

// On a machine without the bus (CI, a laptop), opening it fails with an
// error that names the bus and says what exists, instead of panicking or
// hanging.
func TestOpenMissingBusNamesIt(t *testing.T) {
	if _, err := OpenI2C("trellis-no-such-bus"); err == nil || !strings.Contains(err.Error(), `"trellis-no-such-bus"`) || !strings.Contains(err.Error(), "buses:") {
		t.Errorf("OpenI2C of a missing bus = %v; want an error naming it and the buses", err)
	}
	if _, err := OpenOneWire("trellis-no-such-bus"); err == nil || !strings.Contains(err.Error(), `"trellis-no-such-bus"`) || !strings.Contains(err.Error(), "buses:") {
		t.Errorf("OpenOneWire of a missing bus = %v; want an error naming it and the buses", err)
	}
}
