package ds18b20

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/onewire/onewiretest"
	"periph.io/x/conn/v3/physic"

	"github.com/trellis-edge/trellis/capabilities/sensor"
)

// addr is the example DS18B20 address of periph's onewire documentation;
// its CRC byte 0x7a is right.
const addr onewire.Address = 0x7a00000131825228

var rom = []byte{0x28, 0x52, 0x82, 0x31, 0x01, 0x00, 0x00, 0x7a}

// Scratchpads as a Raspberry Pi's w1_therm driver prints them from real
// sensors: 23.125 °C, and the power-on value 85 °C.
var (
	spReal    = []byte{0x72, 0x01, 0x4b, 0x46, 0x7f, 0xff, 0x0e, 0x10, 0x57}
	spPowerOn = []byte{0x50, 0x05, 0x4b, 0x46, 0x7f, 0xff, 0x0c, 0x10, 0x1c}
)

// crc8 is the Dallas/Maxim CRC (x⁸ + x⁵ + x⁴ + 1, bit-reflected), computed
// bit by bit as in Maxim application note 27; the driver uses periph's
// table version.
func crc8(b []byte) byte {
	var c byte
	for _, x := range b {
		for range 8 {
			mix := (c ^ x) & 1
			c >>= 1
			if mix != 0 {
				c ^= 0x8C
			}
			x >>= 1
		}
	}
	return c
}

// scratchpad builds a scratchpad with temperature register raw and
// configuration register config, and its CRC.
func scratchpad(raw uint16, config byte) []byte {
	sp := []byte{byte(raw), byte(raw >> 8), 0x4b, 0x46, config, 0xff, 0x0c, 0x10}
	return append(sp, crc8(sp))
}

func convert() onewiretest.IO {
	return onewiretest.IO{W: append(append([]byte{0x55}, rom...), 0x44), Pull: onewire.StrongPullup}
}

func read(sp []byte) onewiretest.IO {
	return onewiretest.IO{W: append(append([]byte{0x55}, rom...), 0xBE), R: sp, Pull: onewire.WeakPullup}
}

func playback(ops ...onewiretest.IO) *onewiretest.Playback {
	return &onewiretest.Playback{Ops: ops, DontPanic: true}
}

func closed(t *testing.T, p *onewiretest.Playback) {
	t.Helper()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

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

func newDev(t *testing.T, bus onewire.Bus, s *fakeSleep, opts Opts) *Dev {
	t.Helper()
	opts.Sleep = s.sleep
	d, err := New(bus, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestChecksOfTheFixtures(t *testing.T) {
	// The fixtures' CRCs, checked with the test's own CRC.
	for _, b := range [][]byte{rom, spReal, spPowerOn, {0x02, 0x1c, 0xb8, 0x01, 0x00, 0x00, 0x00, 0xa2} /* AN27 */} {
		if crc8(b[:len(b)-1]) != b[len(b)-1] {
			t.Fatalf("% x: crc 0x%02x", b, crc8(b[:len(b)-1]))
		}
	}
}

func TestRead(t *testing.T) {
	bus := playback(convert(), read(spReal))
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	s := &fakeSleep{}
	d := newDev(t, bus, s, Opts{Name: "tank", Now: func() time.Time { return at }})
	got, err := d.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	closed(t, bus)
	want := sensor.Measurement{Sensor: "tank", Kind: sensor.Temperature, Value: 23.125, Unit: "°C", Time: at}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("got %+v, want [%+v]", got, want)
	}
	if s.waits != 1 {
		t.Errorf("%d waits, want 1", s.waits)
	}
	if !strings.Contains(d.String(), "tank") || !strings.Contains(d.String(), "playback(0x7a00000131825228)") {
		t.Errorf("String() = %q", d.String())
	}
}

func TestDatasheetTemperatures(t *testing.T) {
	// The datasheet's table 1, "Temperature/Data Relationship", 12 bits.
	// (+85 °C, 0x0550, is the power-on value: see TestPowerOnValue.)
	for _, tc := range []struct {
		raw  uint16
		want float64
	}{
		{0x07D0, 125}, {0x0191, 25.0625}, {0x00A2, 10.125}, {0x0008, 0.5}, {0x0000, 0},
		{0xFFF8, -0.5}, {0xFF5E, -10.125}, {0xFE6F, -25.0625}, {0xFC90, -55},
	} {
		bus := playback(convert(), read(scratchpad(tc.raw, 0x7F)))
		d := newDev(t, bus, &fakeSleep{}, Opts{})
		temp, err := d.Sense(t.Context())
		if err != nil {
			t.Fatalf("0x%04x: %v", tc.raw, err)
		}
		closed(t, bus)
		if want := physic.Temperature(tc.want*1e6)*physic.MicroKelvin + physic.ZeroCelsius; temp != want {
			t.Errorf("0x%04x: %v (%d nK), want %v °C", tc.raw, temp, temp, tc.want)
		}
		if got := temp.Celsius(); got != tc.want {
			t.Errorf("0x%04x: %v °C, want %v", tc.raw, got, tc.want)
		}
	}
}

func TestResolution(t *testing.T) {
	// At 9, 10 and 11 bits the lowest 3, 2 and 1 bits are undefined
	// (datasheet, "Configuration Register"); 0x0197 is 25.4375 °C.
	for _, tc := range []struct {
		config byte
		want   float64
	}{
		{0x1F, 25.0}, {0x3F, 25.25}, {0x5F, 25.375}, {0x7F, 25.4375},
	} {
		bus := playback(convert(), read(scratchpad(0x0197, tc.config)), convert(), read(scratchpad(0x0197, tc.config)))
		d := newDev(t, bus, &fakeSleep{}, Opts{})
		for range 2 { // the second read waits for the resolution the first one saw
			temp, err := d.Sense(t.Context())
			if err != nil {
				t.Fatalf("config 0x%02x: %v", tc.config, err)
			}
			if got := temp.Celsius(); got != tc.want {
				t.Errorf("config 0x%02x: %v °C, want %v", tc.config, got, tc.want)
			}
		}
		closed(t, bus)
	}
}

func TestPowerOnValue(t *testing.T) {
	t.Run("once, then a conversion", func(t *testing.T) {
		bus := playback(convert(), read(spPowerOn), convert(), read(spReal))
		s := &fakeSleep{}
		d := newDev(t, bus, s, Opts{})
		temp, err := d.Sense(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		closed(t, bus)
		if temp.Celsius() != 23.125 || s.waits != 2 {
			t.Fatalf("%v after %d waits, want 23.125 °C after 2", temp, s.waits)
		}
	})
	t.Run("twice", func(t *testing.T) {
		bus := playback(convert(), read(spPowerOn), convert(), read(spPowerOn))
		d := newDev(t, bus, &fakeSleep{}, Opts{})
		if _, err := d.Sense(t.Context()); !errors.Is(err, ErrPowerOnValue) {
			t.Fatalf("error %v, want ErrPowerOnValue", err)
		}
		closed(t, bus)
	})
}

func TestScratchpadErrors(t *testing.T) {
	bad := append([]byte(nil), spReal...)
	bad[8] ^= 0x01
	ones := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for _, tc := range []struct {
		name string
		ops  []onewiretest.IO
		is   error
	}{
		{"crc mismatch twice", []onewiretest.IO{convert(), read(bad), read(bad)}, ErrCRC},
		{"no device answers", []onewiretest.IO{convert(), read(ones)}, ErrNoResponse},
		{"bus held low: zeros, crc 0", []onewiretest.IO{convert(), read(make([]byte, 9))}, ErrScratchpad},
		{"bad configuration register", []onewiretest.IO{convert(), read(scratchpad(0x0191, 0xFF))}, ErrScratchpad},
		{"above 125 °C", []onewiretest.IO{convert(), read(scratchpad(0x07E0, 0x7F))}, ErrScratchpad},
		{"below -55 °C", []onewiretest.IO{convert(), read(scratchpad(0xFC80, 0x7F))}, ErrScratchpad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := playback(tc.ops...)
			d := newDev(t, bus, &fakeSleep{}, Opts{})
			ms, err := d.Read(t.Context())
			if !errors.Is(err, tc.is) || ms != nil {
				t.Fatalf("Read = %v, %v; want nil, %v", ms, err, tc.is)
			}
			var be onewire.BusError
			if !errors.As(err, &be) || !be.BusError() {
				t.Errorf("error %v is not a onewire.BusError", err)
			}
			if !strings.HasPrefix(err.Error(), "ds18b20: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			closed(t, bus)
		})
	}
}

func TestCRCMismatchOnceIsReadAgain(t *testing.T) {
	bad := append([]byte(nil), spReal...)
	bad[0] ^= 0x04 // a flipped bit on the wire
	bus := playback(convert(), read(bad), read(spReal))
	d := newDev(t, bus, &fakeSleep{}, Opts{})
	temp, err := d.Sense(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	closed(t, bus)
	if temp.Celsius() != 23.125 {
		t.Fatalf("%v, want 23.125 °C", temp)
	}
}

var errBus = errors.New("onewire: bus shorted")

// failingBus fails transaction number failAt (0-based) and plays the
// others back.
type failingBus struct {
	*onewiretest.Playback
	failAt, n int
}

func (b *failingBus) Tx(w, r []byte, pull onewire.Pullup) error {
	b.n++
	if b.n-1 == b.failAt {
		return errBus
	}
	return b.Playback.Tx(w, r, pull)
}

func TestBusErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ops    []onewiretest.IO
		failAt int
	}{
		{"on convert", nil, 0},
		{"on read", []onewiretest.IO{convert()}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := playback(tc.ops...)
			d := newDev(t, &failingBus{Playback: bus, failAt: tc.failAt}, &fakeSleep{}, Opts{})
			if _, err := d.Read(t.Context()); !errors.Is(err, errBus) {
				t.Fatalf("error %v, want %v", err, errBus)
			}
			closed(t, bus)
		})
	}
}

func TestCanceled(t *testing.T) {
	t.Run("before", func(t *testing.T) {
		bus := playback()
		d := newDev(t, bus, &fakeSleep{}, Opts{})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := d.Read(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		closed(t, bus) // no transaction
	})
	t.Run("during the conversion", func(t *testing.T) {
		bus := playback(convert())
		ctx, cancel := context.WithCancel(t.Context())
		d := newDev(t, bus, &fakeSleep{hook: cancel}, Opts{})
		if _, err := d.Read(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		closed(t, bus) // the conversion, and no scratchpad read
	})
}

func TestNewAddress(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr onewire.Address
		ok   bool
		text string
	}{
		{"DS18B20", addr, true, ""},
		{"DS18S20 family", 0x10 | addr&^0xFF, false, "family code 0x10"},
		{"bad crc", addr ^ 0x01<<56, false, "crc 0x7b, want 0x7a"},
		{"zero", 0, false, "family code 0x00"},
	} {
		d, err := New(playback(), tc.addr, Opts{})
		if tc.ok {
			if err != nil || d == nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrAddress) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: error %v, want ErrAddress and %q", tc.name, err, tc.text)
		}
	}
}

func TestDefaultName(t *testing.T) {
	bus := playback(convert(), read(spReal))
	d := newDev(t, bus, &fakeSleep{}, Opts{})
	ms, err := d.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].Sensor != "ds18b20@7a00000131825228" {
		t.Errorf("default name %q", ms[0].Sensor)
	}
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

func FuzzDecodeScratchpad(f *testing.F) {
	f.Add(spReal)
	f.Add(spPowerOn)
	f.Add(make([]byte, 9))
	f.Add(scratchpad(0xFC90, 0x1F))
	f.Fuzz(func(t *testing.T, b []byte) {
		var sp [9]byte
		copy(sp[:], b)
		raw, bits, err := decodeScratchpad(&sp)
		if err != nil {
			return
		}
		if bits < 9 || bits > 12 || raw < -55*16 || raw > 125*16 || raw&(1<<(12-bits)-1) != 0 {
			t.Fatalf("% x decoded to raw %d at %d bits", sp, raw, bits)
		}
		if crc8(sp[:8]) != sp[8] {
			t.Fatalf("% x accepted with a bad crc", sp)
		}
	})
}

var _ sensor.Reader = (*Dev)(nil)
