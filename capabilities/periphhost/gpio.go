package periphhost

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/physic"

	"github.com/trellis-edge/trellis/capabilities/gpio"
)

// DefaultPoll is how long one wait for an edge lasts when Options.Poll is
// zero. A watch notices that its context ended, and Close that it was
// called, within about this long.
const DefaultPoll = 100 * time.Millisecond

// Options configure a GPIO provider. The zero value (or nil) is the default.
type Options struct {
	// Now stamps events; nil means time.Now.
	Now func() time.Time
	// Poll bounds each wait for an edge (periph's WaitForEdge timeout);
	// zero means DefaultPoll. It never delays an edge, only the end of a
	// watch.
	Poll time.Duration
}

// Provider serves trellis:gpio from periph's pins (gpioreg). It is safe for
// concurrent use. A watched line has one goroutine that waits for its edges
// and calls the watches' callbacks; it ends when the last watch does, or at
// Close.
type Provider struct {
	report Report
	now    func() time.Time
	poll   time.Duration
	names  []string            // sorted; immutable
	lines  map[string]*pinLine // immutable after Open
	done   chan struct{}       // closed by Close
	wg     sync.WaitGroup      // the watch loops

	mu       sync.Mutex // orders starting a loop (wg.Add) before Close's Wait
	isClosed bool
}

var _ gpio.Provider = (*Provider)(nil)

// direction is how the provider last used a pin.
type direction uint8

const (
	dirUnset direction = iota // not touched yet: Read configures it as an input first
	dirIn
	dirOut
	dirPWM
)

// pinLine is one line and the state of the pin behind it.
type pinLine struct {
	name string
	pin  pgpio.PinIO

	// mu guards what follows and serialises every call on pin except the
	// watch loop's WaitForEdge and the Read that follows it: periph's pins
	// are not safe to reconfigure concurrently.
	mu       sync.Mutex
	dir      direction
	out      gpio.Level    // the level last written, read back while dirOut
	edge     gpio.Edge     // edges the pin detects while the loop runs (0: none)
	watches  []*watch      // served by the loop
	pending  []chan error  // Watches waiting for the loop to add their edge
	loopDone chan struct{} // non-nil while the loop runs; closed when it ends
}

type watch struct {
	stop <-chan struct{} // the watch's ctx.Done()
	edge gpio.Edge
	fn   func(gpio.Event)
}

func (w *watch) live() bool {
	select {
	case <-w.stop:
		return false
	default:
		return true
	}
}

// Open initialises periph's host drivers (Init) and returns a provider of
// the named lines: names or aliases as gpioreg knows them, such as "GPIO17"
// or "P1_11". No names means every pin the drivers registered whose name
// is a valid line name (gpio.ValidLineName). A name gpioreg does not know
// is a *gpio.UnknownLineError listing the pins it does.
func Open(lines []string, opts *Options) (*Provider, error) {
	report, err := Init()
	if err != nil {
		return nil, err
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Poll < time.Millisecond {
		o.Poll = time.Millisecond // periph's character device driver takes 0 to mean forever
	}
	p := &Provider{report: report, now: o.Now, poll: o.Poll, lines: map[string]*pinLine{}, done: make(chan struct{})}
	if len(lines) == 0 {
		for _, pin := range gpioreg.All() {
			// Kernel line names are free text; one a grant cannot name is
			// left out rather than failing the rest.
			if gpio.ValidLineName(pin.Name()) == "" {
				lines = append(lines, pin.Name())
			}
		}
	}
	for _, name := range lines {
		if reason := gpio.ValidLineName(name); reason != "" {
			return nil, fmt.Errorf("periphhost: line %q: %s", name, reason)
		}
		if _, dup := p.lines[name]; dup {
			return nil, fmt.Errorf("periphhost: line %q given twice", name)
		}
		pin := gpioreg.ByName(name)
		if pin == nil {
			return nil, &gpio.UnknownLineError{Name: name, Lines: registered()}
		}
		p.lines[name] = &pinLine{name: name, pin: pin}
		p.names = append(p.names, name)
	}
	slices.Sort(p.names)
	return p, nil
}

// registered lists gpioreg's pins and aliases, sorted.
func registered() []string {
	var names []string
	for _, pin := range gpioreg.All() {
		names = append(names, pin.Name())
	}
	for _, pin := range gpioreg.Aliases() {
		names = append(names, pin.Name())
	}
	slices.Sort(names)
	return names
}

// Report returns what Init reported.
func (p *Provider) Report() Report { return p.report }

// Lines returns the line names, sorted.
func (p *Provider) Lines() []string { return slices.Clone(p.names) }

// Line returns the named line.
func (p *Provider) Line(name string) (gpio.Line, error) {
	l, ok := p.lines[name]
	if !ok {
		return nil, &gpio.UnknownLineError{Name: name, Lines: slices.Clone(p.names)}
	}
	if p.closed() {
		return nil, fmt.Errorf("periphhost: line %s: %w", name, gpio.ErrUnavailable)
	}
	return handle{p: p, l: l}, nil
}

// Close ends every watch and waits for the watch loops (about Options.Poll)
// to stop edge detection and return. Pins keep the levels written. It must
// not be called from a watch callback. Closing twice is harmless.
func (p *Provider) Close() error {
	p.mu.Lock()
	if !p.isClosed {
		p.isClosed = true
		close(p.done)
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// startLoop starts the watch loop of l, unless the provider is closed.
func (p *Provider) startLoop(l *pinLine) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.isClosed {
		return false
	}
	l.loopDone = make(chan struct{})
	p.wg.Add(1)
	go p.loop(l, l.loopDone)
	return true
}

func (p *Provider) closed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// handle is the gpio.Line of one pin.
type handle struct {
	p *Provider
	l *pinLine
}

// lock checks ctx and the provider and takes the line's lock.
func (h handle) lock(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("periphhost: %s %s: %w", op, h.l.name, err)
	}
	h.l.mu.Lock()
	if h.p.closed() {
		h.l.mu.Unlock()
		return fmt.Errorf("periphhost: %s %s: %w", op, h.l.name, gpio.ErrUnavailable)
	}
	return nil
}

// lockOutput is lock for an operation that makes the pin an output: it
// refuses a line with live watches and waits for a loop whose watches have
// all ended, so that no WaitForEdge is under way while the pin changes.
func (h handle) lockOutput(ctx context.Context, op string) error {
	for {
		if err := h.lock(ctx, op); err != nil {
			return err
		}
		l := h.l
		if n := liveWatches(l.watches); n > 0 {
			l.mu.Unlock()
			return fmt.Errorf("periphhost: %s %s: %w: it is an input with %d watches", op, l.name, gpio.ErrDirection, n)
		}
		if l.loopDone == nil {
			return nil
		}
		done := l.loopDone
		l.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("periphhost: %s %s: %w", op, l.name, ctx.Err())
		}
	}
}

func liveWatches(ws []*watch) int {
	n := 0
	for _, w := range ws {
		if w.live() {
			n++
		}
	}
	return n
}

// Read returns the pin's level. A pin never used is made an input first,
// with its pull resistor as it is (periph's character-device driver would
// otherwise switch it to an input with pull-up). An output reads back the
// level written, without touching the pin, since reading would make it an
// input there.
func (h handle) Read(ctx context.Context) (gpio.Level, error) {
	if err := h.lock(ctx, "read"); err != nil {
		return gpio.Low, err
	}
	defer h.l.mu.Unlock()
	l := h.l
	switch l.dir {
	case dirOut:
		return l.out, nil
	case dirPWM:
		return gpio.Low, fmt.Errorf("periphhost: read %s: %w: it is generating PWM", l.name, gpio.ErrDirection)
	case dirUnset:
		if err := l.pin.In(pgpio.PullNoChange, pgpio.NoEdge); err != nil {
			return gpio.Low, fmt.Errorf("periphhost: read %s: %v", l.name, err)
		}
		l.dir = dirIn
	}
	return gpio.Level(l.pin.Read()), nil
}

// Write drives the pin (periph's Out).
func (h handle) Write(ctx context.Context, level gpio.Level) error {
	if err := h.lockOutput(ctx, "write"); err != nil {
		return err
	}
	defer h.l.mu.Unlock()
	l := h.l
	if err := l.pin.Out(pgpio.Level(level)); err != nil {
		return fmt.Errorf("periphhost: write %s: %v", l.name, err)
	}
	l.dir, l.out = dirOut, level
	return nil
}

// PWM drives the pin with periph's PWM. periph reports no capability
// before trying, so any refusal from the pin's driver is ErrUnsupported
// (the character-device driver has no PWM at all; bcm283x needs root).
func (h handle) PWM(ctx context.Context, duty gpio.Duty, freq gpio.Hertz) error {
	if !duty.Valid() {
		return fmt.Errorf("periphhost: pwm %s: duty %v: want 0 to 1", h.l.name, float64(duty))
	}
	if !freq.Valid() {
		return fmt.Errorf("periphhost: pwm %s: frequency %v Hz: want above 0, at most %v", h.l.name, float64(freq), float64(gpio.MaxFreq))
	}
	d := pgpio.Duty(math.Round(float64(duty) * float64(pgpio.DutyMax)))
	f := physic.Frequency(math.Round(float64(freq) * float64(physic.Hertz)))
	if f < 1 {
		// periph's DMA PWM divides by the frequency in micro-hertz.
		return fmt.Errorf("periphhost: pwm %s: %w: frequency %v Hz is below 1 µHz", h.l.name, gpio.ErrUnsupported, float64(freq))
	}
	if err := h.lockOutput(ctx, "pwm"); err != nil {
		return err
	}
	defer h.l.mu.Unlock()
	l := h.l
	if err := l.pin.PWM(d, f); err != nil {
		return fmt.Errorf("periphhost: pwm %s: %w: %v", l.name, gpio.ErrUnsupported, err)
	}
	l.dir = dirPWM
	return nil
}

// Watch makes the pin an input that detects edge (periph's In) and serves
// fn from the line's loop. A pin already watched for other edges is
// widened to detect both; the loop does it between two waits, and Watch
// waits for that.
func (h handle) Watch(ctx context.Context, edge gpio.Edge, fn func(gpio.Event)) error {
	if !edge.Valid() {
		return fmt.Errorf("periphhost: watch %s: invalid edge %v", h.l.name, edge)
	}
	if fn == nil {
		return fmt.Errorf("periphhost: watch %s: nil callback", h.l.name)
	}
	if err := h.lock(ctx, "watch"); err != nil {
		return err
	}
	l := h.l
	w := &watch{stop: ctx.Done(), edge: edge, fn: fn}
	if l.loopDone == nil {
		if err := l.pin.In(pgpio.PullNoChange, toPeriph(edge)); err != nil {
			l.mu.Unlock()
			return fmt.Errorf("periphhost: watch %s: %v", l.name, err)
		}
		l.dir, l.edge = dirIn, edge
		l.watches = append(l.watches, w)
		if !h.p.startLoop(l) {
			_ = l.pin.In(pgpio.PullNoChange, pgpio.NoEdge)
			l.watches, l.edge = nil, 0
			l.mu.Unlock()
			return fmt.Errorf("periphhost: watch %s: %w", l.name, gpio.ErrUnavailable)
		}
		l.mu.Unlock()
		return nil
	}
	l.watches = append(l.watches, w)
	if l.edge&edge == edge {
		l.mu.Unlock()
		return nil
	}
	ack := make(chan error, 1)
	l.pending = append(l.pending, ack)
	l.mu.Unlock()
	select {
	case err := <-ack:
		if err != nil {
			l.mu.Lock()
			l.watches = slices.DeleteFunc(l.watches, func(x *watch) bool { return x == w })
			l.mu.Unlock()
			return fmt.Errorf("periphhost: watch %s: %w", l.name, err)
		}
		return nil
	case <-ctx.Done(): // w is dead now: the loop drops it
		return fmt.Errorf("periphhost: watch %s: %w", l.name, ctx.Err())
	}
}

func toPeriph(e gpio.Edge) pgpio.Edge {
	switch e {
	case gpio.EdgeRising:
		return pgpio.RisingEdge
	case gpio.EdgeFalling:
		return pgpio.FallingEdge
	case gpio.EdgeBoth:
		return pgpio.BothEdges
	}
	return pgpio.NoEdge
}

// loop waits for edges on one pin and calls the live watches' callbacks,
// in order, one at a time. Between two waits it drops the watches whose
// context ended, widens the pin's edge detection for new watches, and ends
// (turning edge detection off) when no watch is left or at Close.
func (p *Provider) loop(l *pinLine, done chan struct{}) {
	defer p.wg.Done()
	defer close(done)
	var batch []*watch
	for {
		l.mu.Lock()
		l.watches = slices.DeleteFunc(l.watches, func(w *watch) bool { return !w.live() })
		if len(l.watches) == 0 || p.closed() {
			if l.dir == dirIn {
				_ = l.pin.In(pgpio.PullNoChange, pgpio.NoEdge) // best effort: stop the interrupts
			}
			for _, ack := range l.pending {
				ack <- gpio.ErrUnavailable
			}
			l.watches, l.pending, l.edge, l.loopDone = nil, nil, 0, nil
			l.mu.Unlock()
			return
		}
		if len(l.pending) > 0 {
			want := l.edge
			for _, w := range l.watches {
				want |= w.edge
			}
			var err error
			if want != l.edge {
				if err = l.pin.In(pgpio.PullNoChange, toPeriph(want)); err == nil {
					l.edge = want
				}
			}
			for _, ack := range l.pending {
				ack <- err
			}
			l.pending = nil
		}
		edge := l.edge
		l.mu.Unlock()

		if !l.pin.WaitForEdge(p.poll) {
			continue
		}
		// periph does not say which edge it saw. Detecting one kind, it is
		// that kind; detecting both, the level now tells (a pulse shorter
		// than this read is seen as two edges to the same level).
		var level gpio.Level
		switch edge {
		case gpio.EdgeRising:
			level = gpio.High
		case gpio.EdgeFalling:
			level = gpio.Low
		default:
			level = gpio.Level(l.pin.Read())
		}
		ev := gpio.Event{Line: l.name, Level: level, Time: p.now()}
		// The watches registered by the time the edge was seen, including
		// any added during the wait.
		l.mu.Lock()
		batch = append(batch[:0], l.watches...)
		l.mu.Unlock()
		for i, w := range batch {
			if w.edge.Includes(level) && w.live() && !p.closed() {
				w.fn(ev)
			}
			batch[i] = nil
		}
	}
}
