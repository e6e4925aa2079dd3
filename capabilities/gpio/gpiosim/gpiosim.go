// Package gpiosim is a simulated trellis:gpio provider: named lines kept in
// memory. Actors use them through gpio.Line like real pins; the outside
// world (the control API, `trellis gpio set`, `trellis dev`, tests) drives
// them with Set and looks at them with Get and State. It touches no hardware
// and no global state; each Provider is independent.
//
// Any package may import it; it imports only the gpio contract.
package gpiosim

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/trellis-edge/trellis/capabilities/gpio"
)

// maxPending bounds the edges queued for one watch whose callback has
// fallen behind; later edges are dropped and counted, as hardware drops
// edges it has no room for.
const maxPending = 1024

// Options configure a Provider. The zero value (or nil) is the default.
type Options struct {
	// Now stamps events; nil means time.Now. It is called with the
	// provider's lock held, so it must not call the provider.
	Now func() time.Time
	// NoPWM lists lines that have no PWM; every other line has it.
	NoPWM []string
}

// Provider is a set of simulated lines. It is safe for concurrent use. Each
// watch is served by a goroutine of its own, which ends with the watch's
// context or with Close.
type Provider struct {
	now   func() time.Time
	names []string      // sorted; immutable
	done  chan struct{} // closed by Close
	wg    sync.WaitGroup

	mu     sync.Mutex // guards everything below, the lines' state and the watches' queues
	closed bool
	lines  map[string]*line
}

var _ gpio.Provider = (*Provider)(nil)

// line is one simulated line; its mutable fields are guarded by Provider.mu.
type line struct {
	name   string
	hasPWM bool

	level   gpio.Level
	output  bool // driven by Write or PWM; Set is refused
	pwm     bool // generating PWM at duty, freq
	duty    gpio.Duty
	freq    gpio.Hertz
	watches []*watch
	dropped uint64
}

// watch is one registered callback and its queue of undelivered edges.
type watch struct {
	stop  <-chan struct{} // the watch's ctx.Done()
	edge  gpio.Edge
	fn    func(gpio.Event)
	wake  chan struct{} // capacity 1: "the queue is not empty"
	queue []gpio.Event  // guarded by Provider.mu
	spare []gpio.Event  // the other buffer, reused between deliveries
}

// LineState is a snapshot of a line for the control API and tests.
type LineState struct {
	Name    string
	Level   gpio.Level // the level set, or written when Output
	Output  bool       // driven by the device (Write or PWM)
	HasPWM  bool
	PWM     bool // generating PWM at Duty and Freq
	Duty    gpio.Duty
	Freq    gpio.Hertz
	Watches int    // live watches (their context is not done)
	Dropped uint64 // edges dropped because a watch fell behind
}

// New returns a provider with the named lines, each an input at low. Names
// must be valid line names (gpio.ValidLineName) and distinct.
func New(lines []string, opts *Options) (*Provider, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	p := &Provider{
		now:   o.Now,
		names: slices.Sorted(slices.Values(lines)),
		done:  make(chan struct{}),
		lines: make(map[string]*line, len(lines)),
	}
	if p.now == nil {
		p.now = time.Now
	}
	for _, name := range lines {
		if reason := gpio.ValidLineName(name); reason != "" {
			return nil, fmt.Errorf("gpiosim: line %q: %s", name, reason)
		}
		if _, dup := p.lines[name]; dup {
			return nil, fmt.Errorf("gpiosim: line %q given twice", name)
		}
		p.lines[name] = &line{name: name, hasPWM: true}
	}
	for _, name := range o.NoPWM {
		l, ok := p.lines[name]
		if !ok {
			return nil, fmt.Errorf("gpiosim: NoPWM: %w", p.unknown(name))
		}
		l.hasPWM = false
	}
	return p, nil
}

// Lines returns the line names, sorted.
func (p *Provider) Lines() []string { return slices.Clone(p.names) }

// Line returns the named line.
func (p *Provider) Line(name string) (gpio.Line, error) {
	l, ok := p.lines[name] // the map is never written after New
	if !ok {
		return nil, p.unknown(name)
	}
	if p.isClosed() {
		return nil, fmt.Errorf("gpiosim: line %s: %w", name, gpio.ErrUnavailable)
	}
	return simLine{p: p, l: l}, nil
}

// Set drives an input line from outside, as a button or a sensor would.
// A change of level is an edge: each watch of that kind gets an Event
// stamped with Options.Now. Setting the level a line has is no edge.
// An output line returns gpio.ErrDirection.
func (p *Provider) Set(name string, level gpio.Level) error {
	l, ok := p.lines[name]
	if !ok {
		return p.unknown(name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("gpiosim: set %s: %w", name, gpio.ErrUnavailable)
	}
	if l.output {
		return fmt.Errorf("gpiosim: set %s: %w: it is an output driven by the device", name, gpio.ErrDirection)
	}
	if l.level == level {
		return nil
	}
	l.level = level
	ev := gpio.Event{Line: name, Level: level, Time: p.now()}
	for _, w := range l.watches {
		if !w.edge.Includes(level) || !w.live() {
			continue
		}
		if len(w.queue) >= maxPending {
			l.dropped++
			continue
		}
		w.queue = append(w.queue, ev)
		select {
		case w.wake <- struct{}{}:
		default: // already awake
		}
	}
	return nil
}

// Get returns a line's level: the level set from outside, or the level the
// device wrote.
func (p *Provider) Get(name string) (gpio.Level, error) {
	s, err := p.State(name)
	return s.Level, err
}

// State returns a snapshot of a line.
func (p *Provider) State(name string) (LineState, error) {
	l, ok := p.lines[name]
	if !ok {
		return LineState{}, p.unknown(name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return LineState{}, fmt.Errorf("gpiosim: state %s: %w", name, gpio.ErrUnavailable)
	}
	return LineState{
		Name:    l.name,
		Level:   l.level,
		Output:  l.output,
		HasPWM:  l.hasPWM,
		PWM:     l.pwm,
		Duty:    l.duty,
		Freq:    l.freq,
		Watches: l.liveWatches(),
		Dropped: l.dropped,
	}, nil
}

// Close ends every watch, waits for the goroutines that deliver them, and
// makes every later operation return gpio.ErrUnavailable. It must not be
// called from a watch callback. Closing twice is harmless.
func (p *Provider) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.done)
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

func (p *Provider) unknown(name string) error {
	return &gpio.UnknownLineError{Name: name, Lines: slices.Clone(p.names)}
}

// liveWatches counts the watches whose context is not done.
func (l *line) liveWatches() int {
	n := 0
	for _, w := range l.watches {
		if w.live() {
			n++
		}
	}
	return n
}

// deliver runs one watch: it takes queued edges and calls fn with each, in
// order, until the watch's context is done or the provider is closed.
func (p *Provider) deliver(ctx context.Context, l *line, w *watch) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		l.watches = slices.DeleteFunc(l.watches, func(x *watch) bool { return x == w })
		p.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.done:
			return
		case <-w.wake:
		}
		p.mu.Lock()
		evs := w.queue
		w.queue, w.spare = w.spare[:0], nil
		p.mu.Unlock()
		for _, ev := range evs {
			if ctx.Err() != nil || p.isClosed() {
				return
			}
			w.fn(ev)
		}
		clear(evs)
		p.mu.Lock()
		w.spare = evs[:0]
		p.mu.Unlock()
	}
}

// live reports whether the watch's context is not done.
func (w *watch) live() bool {
	select {
	case <-w.stop:
		return false
	default:
		return true
	}
}

func (p *Provider) isClosed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// simLine is the gpio.Line of one simulated line.
type simLine struct {
	p *Provider
	l *line
}

// lock checks ctx and takes the provider's lock; op names the operation in
// errors.
func (s simLine) lock(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("gpiosim: %s %s: %w", op, s.l.name, err)
	}
	s.p.mu.Lock()
	if s.p.closed {
		s.p.mu.Unlock()
		return fmt.Errorf("gpiosim: %s %s: %w", op, s.l.name, gpio.ErrUnavailable)
	}
	return nil
}

func (s simLine) Read(ctx context.Context) (gpio.Level, error) {
	if err := s.lock(ctx, "read"); err != nil {
		return gpio.Low, err
	}
	defer s.p.mu.Unlock()
	if s.l.pwm {
		return gpio.Low, fmt.Errorf("gpiosim: read %s: %w: it is generating PWM", s.l.name, gpio.ErrDirection)
	}
	return s.l.level, nil
}

func (s simLine) Write(ctx context.Context, level gpio.Level) error {
	if err := s.lock(ctx, "write"); err != nil {
		return err
	}
	defer s.p.mu.Unlock()
	if n := s.l.liveWatches(); n > 0 {
		return fmt.Errorf("gpiosim: write %s: %w: it is an input with %d watches", s.l.name, gpio.ErrDirection, n)
	}
	s.l.output, s.l.pwm = true, false
	s.l.level = level
	return nil
}

func (s simLine) Watch(ctx context.Context, edge gpio.Edge, fn func(gpio.Event)) error {
	if !edge.Valid() {
		return fmt.Errorf("gpiosim: watch %s: invalid edge %v", s.l.name, edge)
	}
	if fn == nil {
		return fmt.Errorf("gpiosim: watch %s: nil callback", s.l.name)
	}
	if err := s.lock(ctx, "watch"); err != nil {
		return err
	}
	defer s.p.mu.Unlock()
	s.l.output, s.l.pwm = false, false // an input from now on, as periph's In does
	w := &watch{stop: ctx.Done(), edge: edge, fn: fn, wake: make(chan struct{}, 1)}
	s.l.watches = append(s.l.watches, w)
	s.p.wg.Add(1) // under the lock and before Close: Close's Wait sees it
	go s.p.deliver(ctx, s.l, w)
	return nil
}

func (s simLine) PWM(ctx context.Context, duty gpio.Duty, freq gpio.Hertz) error {
	if !duty.Valid() {
		return fmt.Errorf("gpiosim: pwm %s: duty %v: want 0 to 1", s.l.name, float64(duty))
	}
	if !freq.Valid() {
		return fmt.Errorf("gpiosim: pwm %s: frequency %v Hz: want above 0, at most %v", s.l.name, float64(freq), float64(gpio.MaxFreq))
	}
	if err := s.lock(ctx, "pwm"); err != nil {
		return err
	}
	defer s.p.mu.Unlock()
	if !s.l.hasPWM {
		return fmt.Errorf("gpiosim: pwm %s: %w: the line has no PWM", s.l.name, gpio.ErrUnsupported)
	}
	if n := s.l.liveWatches(); n > 0 {
		return fmt.Errorf("gpiosim: pwm %s: %w: it is an input with %d watches", s.l.name, gpio.ErrDirection, n)
	}
	s.l.output, s.l.pwm = true, true
	s.l.duty, s.l.freq = duty, freq
	return nil
}
