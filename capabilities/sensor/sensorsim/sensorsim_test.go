package sensorsim_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/trellis-edge/trellis/capabilities/sensor"
	"github.com/trellis-edge/trellis/capabilities/sensor/sensorsim"
)

// clock is a manual clock: time moves only when a test moves it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestWaveforms(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wave    sensorsim.Waveform
		elapsed time.Duration
		want    float64
	}{
		{"constant", sensorsim.Constant(21.5), 0, 21.5},
		{"constant later", sensorsim.Constant(21.5), 1000 * time.Hour, 21.5},

		{"sine at 0", sensorsim.Sine{Offset: 20, Amplitude: 5, Period: time.Hour}, 0, 20},
		{"sine at 1/4", sensorsim.Sine{Offset: 20, Amplitude: 5, Period: time.Hour}, 15 * time.Minute, 25},
		{"sine at 1/2", sensorsim.Sine{Offset: 20, Amplitude: 5, Period: time.Hour}, 30 * time.Minute, 20},
		{"sine at 3/4", sensorsim.Sine{Offset: 20, Amplitude: 5, Period: time.Hour}, 45 * time.Minute, 15},
		{"sine a year on", sensorsim.Sine{Offset: 20, Amplitude: 5, Period: time.Hour}, 365*24*time.Hour + 15*time.Minute, 25},
		{"sine without period", sensorsim.Sine{Offset: 20, Amplitude: 5}, time.Minute, 20},

		{"ramp start", sensorsim.Ramp{From: 10, To: 30, Period: 10 * time.Minute}, 0, 10},
		{"ramp middle", sensorsim.Ramp{From: 10, To: 30, Period: 10 * time.Minute}, 5 * time.Minute, 20},
		{"ramp holds", sensorsim.Ramp{From: 10, To: 30, Period: 10 * time.Minute}, time.Hour, 30},
		{"ramp down", sensorsim.Ramp{From: 30, To: 10, Period: 10 * time.Minute}, 2 * time.Minute, 26},
		{"sawtooth", sensorsim.Ramp{From: 10, To: 30, Period: 10 * time.Minute, Repeat: true}, 12*time.Minute + 30*time.Second, 15},
		{"ramp without period", sensorsim.Ramp{From: 10, To: 30}, 0, 30},
	} {
		if got := tc.wave.At(tc.elapsed); !near(got, tc.want) {
			t.Errorf("%s: At(%v) = %v, want %v", tc.name, tc.elapsed, got, tc.want)
		}
	}
}

func TestRead(t *testing.T) {
	clk := newClock()
	s, err := sensorsim.New("greenhouse", []sensorsim.Channel{
		{Kind: sensor.Temperature, Wave: sensorsim.Sine{Offset: 20, Amplitude: 5, Period: 24 * time.Hour}},
		{Kind: sensor.Humidity, Wave: sensorsim.Constant(55)},
		{Kind: sensor.Pressure, Wave: sensorsim.Ramp{From: 101000, To: 100000, Period: time.Hour}},
	}, sensorsim.Opts{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(6 * time.Hour)
	got, err := s.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	at := clk.Now()
	want := []sensor.Measurement{
		{Sensor: "greenhouse", Kind: sensor.Temperature, Value: 25, Unit: "°C", Time: at},
		{Sensor: "greenhouse", Kind: sensor.Humidity, Value: 55, Unit: "%RH", Time: at},
		{Sensor: "greenhouse", Kind: sensor.Pressure, Value: 100000, Unit: "Pa", Time: at},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if !near(got[i].Value, want[i].Value) {
			t.Errorf("%s = %v, want %v", want[i].Kind, got[i].Value, want[i].Value)
		}
		got[i].Value = want[i].Value
		if got[i] != want[i] {
			t.Errorf("measurement %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if s.Name() != "greenhouse" {
		t.Errorf("Name() = %q", s.Name())
	}
}

func TestOverride(t *testing.T) {
	clk := newClock()
	s, err := sensorsim.New("tank", []sensorsim.Channel{
		{Kind: sensor.Temperature, Wave: sensorsim.Ramp{From: 10, To: 20, Period: 10 * time.Minute}},
	}, sensorsim.Opts{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	value := func() float64 {
		t.Helper()
		ms, err := s.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return ms[0].Value
	}

	if err := s.Set(sensor.Temperature, 40); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Minute)
	if v := value(); v != 40 {
		t.Fatalf("overridden value %v, want 40", v)
	}
	// The waveform kept running underneath.
	if err := s.Clear(sensor.Temperature); err != nil {
		t.Fatal(err)
	}
	if v := value(); !near(v, 15) {
		t.Fatalf("value after Clear %v, want 15", v)
	}
	if err := s.SetWave(sensor.Temperature, sensorsim.Constant(-3)); err != nil {
		t.Fatal(err)
	}
	if v := value(); v != -3 {
		t.Fatalf("value after SetWave %v, want -3", v)
	}

	for name, err := range map[string]error{
		"Set":     s.Set(sensor.Humidity, 1),
		"Clear":   s.Clear(sensor.Humidity),
		"SetWave": s.SetWave(sensor.Humidity, sensorsim.Constant(1)),
	} {
		if !errors.Is(err, sensorsim.ErrNoChannel) {
			t.Errorf("%s on a missing channel: %v, want ErrNoChannel", name, err)
		}
	}
	if err := s.SetWave(sensor.Temperature, nil); err == nil {
		t.Error("SetWave(nil): no error")
	}
}

func TestFail(t *testing.T) {
	s, err := sensorsim.New("s", []sensorsim.Channel{{Kind: sensor.Temperature, Wave: sensorsim.Constant(1)}}, sensorsim.Opts{})
	if err != nil {
		t.Fatal(err)
	}
	errGone := errors.New("no response")
	s.Fail(errGone)
	if ms, err := s.Read(t.Context()); !errors.Is(err, errGone) || ms != nil {
		t.Fatalf("Read = %v, %v; want nil, %v", ms, err, errGone)
	}
	s.Fail(nil)
	if _, err := s.Read(t.Context()); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read on a canceled context: %v", err)
	}
}

func TestClockBackwards(t *testing.T) {
	clk := newClock()
	s, err := sensorsim.New("s", []sensorsim.Channel{
		{Kind: sensor.Temperature, Wave: sensorsim.Ramp{From: 10, To: 20, Period: time.Minute}},
	}, sensorsim.Opts{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(-time.Hour) // the wall clock was set back
	ms, err := s.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].Value != 10 {
		t.Fatalf("value %v before the start, want the start value 10", ms[0].Value)
	}
}

func TestNewErrors(t *testing.T) {
	c := sensorsim.Channel{Kind: sensor.Temperature, Wave: sensorsim.Constant(1)}
	for _, tc := range []struct {
		name     string
		sensor   string
		channels []sensorsim.Channel
	}{
		{"no name", "", []sensorsim.Channel{c}},
		{"no channels", "s", nil},
		{"no kind", "s", []sensorsim.Channel{{Wave: sensorsim.Constant(1)}}},
		{"no wave", "s", []sensorsim.Channel{{Kind: sensor.Humidity}}},
		{"duplicate kind", "s", []sensorsim.Channel{c, c}},
	} {
		if _, err := sensorsim.New(tc.sensor, tc.channels, sensorsim.Opts{}); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	clk := newClock()
	s, err := sensorsim.New("s", []sensorsim.Channel{
		{Kind: sensor.Temperature, Wave: sensorsim.Sine{Offset: 20, Amplitude: 1, Period: time.Minute}},
	}, sensorsim.Opts{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 100 {
				if _, err := s.Read(t.Context()); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			for j := range 100 {
				_ = s.Set(sensor.Temperature, float64(i*j))
				_ = s.Clear(sensor.Temperature)
				clk.Advance(time.Second)
			}
		})
	}
	wg.Wait()
}

var _ sensor.Reader = (*sensorsim.Sensor)(nil)
