package bme280

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/trellis-edge/trellis/capabilities/sensor"
)

// The register traffic of a BME280 at 0x76 with the default options, from
// the datasheet's register map (section 5.4): osrs_t = osrs_p = osrs_h =
// 001 (1×), filter off.
var (
	opsNew = []i2ctest.IO{
		{Addr: 0x76, W: []byte{0xD0}, R: []byte{0x60}},                   // chip id
		{Addr: 0x76, W: []byte{0xF3}, R: []byte{0x00}},                   // status: NVM copied
		{Addr: 0x76, W: []byte{0x88}, R: realCalTP},                      // calibration 0x88..0xA1
		{Addr: 0x76, W: []byte{0xE1}, R: realCalH},                       // calibration 0xE1..0xE7
		{Addr: 0x76, W: []byte{0xF4, 0b001_001_00, 0xF5, 0b000_000_0_0}}, // ctrl_meas sleep, config
	}
	opTrigger = i2ctest.IO{Addr: 0x76, W: []byte{0xF2, 0b001, 0xF5, 0b000_000_0_0, 0xF4, 0b001_001_01}} // ctrl_hum, config, ctrl_meas forced
	opBusy    = i2ctest.IO{Addr: 0x76, W: []byte{0xF3}, R: []byte{0x08}}                                // measuring
	opIdle    = i2ctest.IO{Addr: 0x76, W: []byte{0xF3}, R: []byte{0x00}}
	opData    = i2ctest.IO{Addr: 0x76, W: []byte{0xF7}, R: realData}
)

func ops(parts ...any) []i2ctest.IO {
	var all []i2ctest.IO
	for _, p := range parts {
		switch p := p.(type) {
		case i2ctest.IO:
			all = append(all, p)
		case []i2ctest.IO:
			all = append(all, p...)
		}
	}
	return all
}

// fakeSleep returns at once, counting the waits; hook, if set, runs first.
type fakeSleep struct {
	mu    sync.Mutex
	waits int
	hook  func()
}

func (f *fakeSleep) sleep(ctx context.Context, _ time.Duration) error {
	f.mu.Lock()
	f.waits++
	hook := f.hook
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	return ctx.Err()
}

var errBus = errors.New("i2c: remote I/O error")

// failingBus fails transaction number failAt (0-based) and plays the
// others back.
type failingBus struct {
	*i2ctest.Playback
	failAt, n int
}

func (b *failingBus) Tx(addr uint16, w, r []byte) error {
	b.n++
	if b.n-1 == b.failAt {
		return errBus
	}
	return b.Playback.Tx(addr, w, r)
}

func playback(o ...any) *i2ctest.Playback {
	return &i2ctest.Playback{Ops: ops(o...), DontPanic: true}
}

func closed(t *testing.T, p *i2ctest.Playback) {
	t.Helper()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

func newDev(t *testing.T, bus *i2ctest.Playback, s *fakeSleep, opts Opts) *Dev {
	t.Helper()
	opts.Sleep = s.sleep
	d, err := New(t.Context(), bus, opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRead(t *testing.T) {
	bus := playback(opsNew, opTrigger, opBusy, opIdle, opData)
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	s := &fakeSleep{}
	d := newDev(t, bus, s, Opts{Name: "greenhouse", Now: func() time.Time { return at }})

	got, err := d.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	closed(t, bus)
	want := []sensor.Measurement{
		{Sensor: "greenhouse", Kind: sensor.Temperature, Value: 23.72, Unit: "°C", Time: at},
		{Sensor: "greenhouse", Kind: sensor.Humidity, Value: 66873.0 / 1024, Unit: "%RH", Time: at},
		{Sensor: "greenhouse", Kind: sensor.Pressure, Value: 100942.6953125, Unit: "Pa", Time: at},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("measurement %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// One wait for the conversion, one more after the busy status.
	if s.waits != 2 {
		t.Errorf("%d waits, want 2", s.waits)
	}
}

func TestSense(t *testing.T) {
	bus := playback(opsNew, opTrigger, opIdle, opData)
	d := newDev(t, bus, &fakeSleep{}, Opts{})
	e, err := d.Sense(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	closed(t, bus)
	if got := e.Temperature.Celsius(); got < 23.7199 || got > 23.7201 {
		t.Errorf("temperature %v °C, want 23.72", got)
	}
	if e.Pressure != 100942695312500 { // nPa
		t.Errorf("pressure %d nPa, want 100942695312500", e.Pressure)
	}
	if e.Humidity != 6530566 { // 0.00001 %RH: 66873/1024 %RH rounded
		t.Errorf("humidity %d, want 6530566", e.Humidity)
	}
	if s := d.String(); !strings.Contains(s, "bme280@0x76") || !strings.Contains(s, "playback") {
		t.Errorf("String() = %q", s)
	}
}

func TestOptsReachRegisters(t *testing.T) {
	// Datasheet tables 20, 23, 24, 27: osrs_t ×2 = 010, osrs_p ×16 = 101,
	// osrs_h ×8 = 100, filter 16 = 100.
	bus := playback(
		i2ctest.IO{Addr: 0x77, W: []byte{0xD0}, R: []byte{0x60}},
		i2ctest.IO{Addr: 0x77, W: []byte{0xF3}, R: []byte{0x00}},
		i2ctest.IO{Addr: 0x77, W: []byte{0x88}, R: realCalTP},
		i2ctest.IO{Addr: 0x77, W: []byte{0xE1}, R: realCalH},
		i2ctest.IO{Addr: 0x77, W: []byte{0xF4, 0b010_101_00, 0xF5, 0b000_100_0_0}},
		i2ctest.IO{Addr: 0x77, W: []byte{0xF2, 0b100, 0xF5, 0b000_100_0_0, 0xF4, 0b010_101_01}},
		i2ctest.IO{Addr: 0x77, W: []byte{0xF3}, R: []byte{0x00}},
		i2ctest.IO{Addr: 0x77, W: []byte{0xF7}, R: realData},
	)
	d := newDev(t, bus, &fakeSleep{}, Opts{Addr: AddrHigh, Temperature: X2, Pressure: X16, Humidity: X8, Filter: Filter16})
	ms, err := d.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	closed(t, bus)
	if ms[0].Sensor != "bme280@0x77" {
		t.Errorf("default name %q, want bme280@0x77", ms[0].Sensor)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bus    *i2ctest.Playback
		failAt int // -1: no injected bus error
		opts   Opts
		is     error  // want errors.Is(err, is), if set
		text   string // want the message to contain it, if set
	}{
		{name: "BMP280 answers", bus: playback(i2ctest.IO{Addr: 0x76, W: []byte{0xD0}, R: []byte{0x58}}), failAt: -1,
			is: ErrWrongChip, text: "0x58 at playback(118), want 0x60 (a BMP280"},
		{name: "nothing answers", bus: playback(i2ctest.IO{Addr: 0x76, W: []byte{0xD0}, R: []byte{0xFF}}), failAt: -1,
			is: ErrWrongChip, text: "no device"},
		{name: "bus error on chip id", bus: playback(), failAt: 0, is: errBus, text: "read chip id"},
		{name: "bus error on calibration", bus: playback(opsNew[:2]), failAt: 2, is: errBus, text: "read calibration"},
		{name: "bus error on configure", bus: playback(opsNew[:4]), failAt: 4, is: errBus, text: "configure"},
		{name: "calibration all zeros", bus: playback(opsNew[:2],
			i2ctest.IO{Addr: 0x76, W: []byte{0x88}, R: make([]byte, 26)},
			i2ctest.IO{Addr: 0x76, W: []byte{0xE1}, R: make([]byte, 7)}), failAt: -1, is: ErrCalibration},
		{name: "NVM copy never ends", bus: playback(opsNew[0],
			repeat(i2ctest.IO{Addr: 0x76, W: []byte{0xF3}, R: []byte{0x01}}, 1+pollsAfterWait)), failAt: -1, is: ErrNotReady},
		{name: "address", bus: playback(), failAt: -1, opts: Opts{Addr: 0x40}, text: "address 0x40"},
		{name: "oversampling", bus: playback(), failAt: -1, opts: Opts{Pressure: X16 + 1}, text: "oversampling"},
		{name: "filter", bus: playback(), failAt: -1, opts: Opts{Filter: Filter16 + 1}, text: "filter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Sleep = (&fakeSleep{}).sleep
			var err error
			if tc.failAt >= 0 {
				_, err = New(t.Context(), &failingBus{Playback: tc.bus, failAt: tc.failAt}, tc.opts)
			} else {
				_, err = New(t.Context(), tc.bus, tc.opts)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.text) || !strings.HasPrefix(err.Error(), "bme280: ") {
				t.Errorf("error %q, want bme280: …%s…", err, tc.text)
			}
			closed(t, tc.bus) // and nothing after the failure
		})
	}
}

func repeat(io i2ctest.IO, n int) []i2ctest.IO {
	s := make([]i2ctest.IO, n)
	for i := range s {
		s[i] = io
	}
	return s
}

func TestReadErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bus    *i2ctest.Playback // after opsNew
		failAt int               // counted from the first Read transaction; -1: none
		is     error
	}{
		{name: "bus error on trigger", bus: playback(opsNew), failAt: 0, is: errBus},
		{name: "bus error on status", bus: playback(opsNew, opTrigger), failAt: 1, is: errBus},
		{name: "bus error on data", bus: playback(opsNew, opTrigger, opIdle), failAt: 2, is: errBus},
		{name: "never finishes", bus: playback(opsNew, opTrigger, repeat(opBusy, 1+pollsAfterWait)), failAt: -1, is: ErrNotReady},
		{name: "skipped", bus: playback(opsNew, opTrigger, opIdle,
			i2ctest.IO{Addr: 0x76, W: []byte{0xF7}, R: []byte{0x80, 0, 0, 0x80, 0, 0, 0x80, 0}}), failAt: -1, is: ErrSkipped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fb := &failingBus{Playback: tc.bus, failAt: -1}
			d, err := New(t.Context(), fb, Opts{Sleep: (&fakeSleep{}).sleep})
			if err != nil {
				t.Fatal(err)
			}
			if tc.failAt >= 0 {
				fb.failAt = fb.n + tc.failAt
			}
			ms, err := d.Read(t.Context())
			if !errors.Is(err, tc.is) || ms != nil {
				t.Fatalf("Read = %v, %v; want nil, %v", ms, err, tc.is)
			}
			closed(t, tc.bus)
		})
	}
}

func TestReadCanceled(t *testing.T) {
	t.Run("before", func(t *testing.T) {
		bus := playback(opsNew)
		d := newDev(t, bus, &fakeSleep{}, Opts{})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := d.Read(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		closed(t, bus) // no transaction
	})
	t.Run("during the wait", func(t *testing.T) {
		bus := playback(opsNew, opTrigger)
		ctx, cancel := context.WithCancel(t.Context())
		d := newDev(t, bus, &fakeSleep{hook: cancel}, Opts{})
		if _, err := d.Read(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		closed(t, bus) // the trigger, and nothing after it
	})
	t.Run("deadline in New", func(t *testing.T) {
		bus := playback()
		ctx, cancel := context.WithDeadline(t.Context(), time.Unix(0, 0))
		defer cancel()
		if _, err := New(ctx, bus, Opts{}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want context.DeadlineExceeded", err)
		}
		closed(t, bus)
	})
}

func TestDefaultSleep(t *testing.T) {
	if err := sleep(t.Context(), 0); err != nil {
		t.Fatalf("sleep(0) = %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("sleep on a canceled context = %v, want context.Canceled", err)
	}
}

func TestConcurrentReads(t *testing.T) {
	const n = 8
	o := ops(opsNew)
	for range n {
		o = append(o, opTrigger, opIdle, opData)
	}
	bus := &i2ctest.Playback{Ops: o, DontPanic: true}
	d := newDev(t, bus, &fakeSleep{}, Opts{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := d.Read(t.Context())
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err) // an interleaved transaction breaks the playback order
		}
	}
	closed(t, bus)
}

var _ sensor.Reader = (*Dev)(nil)
