// Package sensorsim is the simulated trellis:sensor provider, used by tests
// and by `trellis dev`: a Sensor whose channels follow waveforms of an
// injected clock (constant, sine, ramp), and whose values a test or the
// control API can override ("raise the temperature to 40 °C") and release.
//
// Nothing here sleeps or starts a goroutine: a value is computed from the
// clock when it is read, so a test moves time by moving its clock.
package sensorsim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/trellis-edge/trellis/capabilities/sensor"
)

// Waveform is a value as a function of the time since the sensor was
// created. elapsed is never negative.
type Waveform interface {
	At(elapsed time.Duration) float64
}

// Constant is a waveform that never changes.
type Constant float64

// At implements Waveform.
func (c Constant) At(time.Duration) float64 { return float64(c) }

// Sine oscillates around Offset by ±Amplitude, starting at Offset and
// rising. A Period of zero or less holds it at Offset.
type Sine struct {
	Offset    float64
	Amplitude float64
	Period    time.Duration
}

// At implements Waveform.
func (s Sine) At(elapsed time.Duration) float64 {
	if s.Period <= 0 {
		return s.Offset
	}
	// The remainder keeps the phase exact however long the sensor runs.
	phase := float64(elapsed%s.Period) / float64(s.Period)
	return s.Offset + s.Amplitude*math.Sin(2*math.Pi*phase)
}

// Ramp goes linearly from From to To over Period, then holds To; with
// Repeat it starts again from From (a sawtooth). A Period of zero or less
// is at To at once.
type Ramp struct {
	From, To float64
	Period   time.Duration
	Repeat   bool
}

// At implements Waveform.
func (r Ramp) At(elapsed time.Duration) float64 {
	if r.Period <= 0 {
		return r.To
	}
	if r.Repeat {
		elapsed %= r.Period
	} else if elapsed >= r.Period {
		return r.To
	}
	return r.From + (r.To-r.From)*(float64(elapsed)/float64(r.Period))
}

// Channel is one kind of measurement of a simulated sensor.
type Channel struct {
	Kind sensor.Kind
	Wave Waveform
}

// Opts configures a Sensor. The zero value is valid.
type Opts struct {
	// Now is the clock the waveforms follow and measurements are stamped
	// with; nil means time.Now. Waveforms start at its reading in New.
	Now func() time.Time
}

// ErrNoChannel is an override or waveform for a kind the sensor does not
// measure.
var ErrNoChannel = errors.New("sensorsim: no such channel")

// Sensor is a simulated sensor device. It implements sensor.Reader and is
// safe for concurrent use.
type Sensor struct {
	name  string
	now   func() time.Time
	start time.Time

	mu       sync.Mutex
	channels []channel
	err      error
}

type channel struct {
	kind     sensor.Kind
	wave     Waveform
	override *float64
}

// New returns a sensor called name with the given channels, measured in
// that order.
func New(name string, channels []Channel, opts Opts) (*Sensor, error) {
	if name == "" {
		return nil, errors.New("sensorsim: no name")
	}
	if len(channels) == 0 {
		return nil, fmt.Errorf("sensorsim: %s: no channels", name)
	}
	s := &Sensor{name: name, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	seen := make(map[sensor.Kind]bool)
	for _, c := range channels {
		switch {
		case c.Kind == "":
			return nil, fmt.Errorf("sensorsim: %s: channel with no kind", name)
		case c.Wave == nil:
			return nil, fmt.Errorf("sensorsim: %s: %s: no waveform", name, c.Kind)
		case seen[c.Kind]:
			return nil, fmt.Errorf("sensorsim: %s: %s twice", name, c.Kind)
		}
		seen[c.Kind] = true
		s.channels = append(s.channels, channel{kind: c.Kind, wave: c.Wave})
	}
	s.start = s.now()
	return s, nil
}

// Name returns the sensor's name, the Sensor of its measurements.
func (s *Sensor) Name() string { return s.name }

// Read implements sensor.Reader: one measurement per channel, each the
// channel's override if it has one, else its waveform at the clock's time.
func (s *Sensor) Read(ctx context.Context) ([]sensor.Measurement, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sensorsim: %s: %w", s.name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, fmt.Errorf("sensorsim: %s: %w", s.name, s.err)
	}
	at := s.now()
	elapsed := max(at.Sub(s.start), 0)
	ms := make([]sensor.Measurement, len(s.channels))
	for i, c := range s.channels {
		var v float64
		if c.override != nil {
			v = *c.override
		} else {
			v = c.wave.At(elapsed)
		}
		ms[i] = sensor.Measurement{Sensor: s.name, Kind: c.kind, Value: v, Unit: c.kind.Unit(), Time: at}
	}
	return ms, nil
}

// Set overrides the value of kind until Clear: every read returns v.
func (s *Sensor) Set(kind sensor.Kind, v float64) error {
	return s.update(kind, func(c *channel) { c.override = &v })
}

// Clear removes the override of kind: reads follow its waveform again.
func (s *Sensor) Clear(kind sensor.Kind) error {
	return s.update(kind, func(c *channel) { c.override = nil })
}

// SetWave replaces the waveform of kind. The new waveform runs on the same
// clock, from the sensor's creation; an override stays in force.
func (s *Sensor) SetWave(kind sensor.Kind, w Waveform) error {
	if w == nil {
		return fmt.Errorf("sensorsim: %s: %s: no waveform", s.name, kind)
	}
	return s.update(kind, func(c *channel) { c.wave = w })
}

// Fail makes every read fail with err, as a sensor that stopped answering
// would; Fail(nil) makes it answer again.
func (s *Sensor) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *Sensor) update(kind sensor.Kind, f func(*channel)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.channels {
		if s.channels[i].kind == kind {
			f(&s.channels[i])
			return nil
		}
	}
	return fmt.Errorf("%w: %s has no %s", ErrNoChannel, s.name, kind)
}
