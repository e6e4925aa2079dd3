// Package ds18b20 drives a Maxim (Dallas) DS18B20 temperature sensor on a
// 1-Wire bus: it addresses the sensor by its ROM code (Match ROM), starts a
// conversion with the bus held on strong pull-up, so that parasite-powered
// sensors work too, waits the datasheet's conversion time and reads the
// scratchpad, checking its CRC.
//
// It is written against periph.io/x/conn/v3/onewire only; the agent opens
// the bus (through capabilities/periphhost) and hands it in. Tests play
// the bus traffic back with onewiretest.Playback.
//
// Why a bounded wait and not polling: a DS18B20 reports the end of a
// conversion in read time slots that must follow Convert T in the same
// transaction, while onewire.Bus.Tx starts every transaction with a reset;
// and a parasite-powered sensor must have the strong pull-up, not read
// slots, for the whole conversion. So Read waits the datasheet's maximum
// conversion time for the sensor's resolution, as long as ctx allows.
package ds18b20

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/physic"

	"github.com/trellis-edge/trellis/capabilities/sensor"
)

// Family is the family code of a DS18B20, the low byte of its address.
const Family = 0x28

// Function commands (datasheet, "DS18B20 Function Commands").
const (
	cmdConvertT       = 0x44
	cmdReadScratchpad = 0xBE
)

// powerOnRaw is the temperature register at power-on: +85 °C.
const powerOnRaw = 0x0550

// Opts configures a Dev. The zero value is valid.
type Opts struct {
	// Name is the Sensor of the measurements Read returns; default
	// "ds18b20@" and the address in hex.
	Name string
	// Now stamps measurements; nil means time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends, whichever is first, and returns
	// ctx's error in the second case; nil means a timer. Tests inject one
	// that returns at once.
	Sleep func(ctx context.Context, d time.Duration) error
}

// busError is an error on the wire. It implements onewire.BusError, the
// periph convention for errors worth a retry.
type busError string

func (e busError) Error() string  { return string(e) }
func (e busError) BusError() bool { return true }

// Errors a caller can branch on. All errors wrap one of these, a bus
// error, or ctx's error.
var (
	// ErrAddress is an address that is not a DS18B20's: another family
	// code or a bad CRC.
	ErrAddress = errors.New("not a DS18B20 address")
	// ErrNoResponse is a scratchpad of all ones: nothing pulled the bus
	// low, so no device answered at the address.
	ErrNoResponse error = busError("no response")
	// ErrCRC is a scratchpad whose CRC does not match, twice in a row.
	ErrCRC error = busError("scratchpad crc mismatch")
	// ErrScratchpad is a scratchpad with a matching CRC that a DS18B20
	// cannot produce. The CRC of eight zero bytes is zero, so a bus held
	// low reads as a "valid" scratchpad of 0 °C; this catches it.
	ErrScratchpad error = busError("impossible scratchpad")
	// ErrPowerOnValue is the power-on value, 85 °C, read after two
	// conversions in a row: the sensor is resetting during conversion,
	// usually for want of power (parasite power without a strong pull-up).
	ErrPowerOnValue = errors.New("power-on value 85 °C after conversion")
)

// Dev is one DS18B20. It is safe for concurrent use; reads are serialised.
type Dev struct {
	dev   onewire.Dev
	name  string
	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	mu   sync.Mutex
	bits int // resolution seen in the last scratchpad; 12 until then
}

// New returns the DS18B20 at addr on bus. It checks the address (family
// code and CRC) but does not touch the bus.
func New(bus onewire.Bus, addr onewire.Address, opts Opts) (*Dev, error) {
	var rom [8]byte
	for i := range rom {
		rom[i] = byte(addr >> (8 * i))
	}
	if rom[0] != Family {
		return nil, fmt.Errorf("ds18b20: address %016x: %w: family code 0x%02x, want 0x%02x", uint64(addr), ErrAddress, rom[0], Family)
	}
	if !onewire.CheckCRC(rom[:]) {
		return nil, fmt.Errorf("ds18b20: address %016x: %w: crc 0x%02x, want 0x%02x", uint64(addr), ErrAddress, rom[7], onewire.CalcCRC(rom[:7]))
	}
	d := &Dev{
		dev:   onewire.Dev{Bus: bus, Addr: addr},
		name:  opts.Name,
		now:   opts.Now,
		sleep: opts.Sleep,
		bits:  12,
	}
	if d.name == "" {
		d.name = fmt.Sprintf("ds18b20@%016x", uint64(addr))
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.sleep == nil {
		d.sleep = sleep
	}
	return d, nil
}

// String names the device and where it is.
func (d *Dev) String() string { return "ds18b20 " + d.name + " on " + d.dev.String() }

// Sense converts and reads the temperature. Its transactions, each after a
// reset:
//
//	write 0x55 ROM 0x44, then strong pull-up   (Match ROM, Convert T)
//	(wait the conversion time: 93.75 ms at 9 bits … 750 ms at 12 bits)
//	write 0x55 ROM 0xBE, read 9 bytes          (Match ROM, Read Scratchpad)
//
// A scratchpad with a bad CRC is read once more. The power-on value 85 °C
// read straight after a conversion means the sensor reset during it; the
// conversion is retried once, and a second 85 °C is ErrPowerOnValue (a
// sensor that really sits at exactly 85.0000 °C reads as that error too).
func (d *Dev) Sense(ctx context.Context) (physic.Temperature, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("ds18b20: convert: %w", err)
		}
		if err := d.dev.TxPower([]byte{cmdConvertT}, nil); err != nil {
			return 0, fmt.Errorf("ds18b20: convert: %w", err)
		}
		if err := d.sleep(ctx, conversionTime(d.bits)); err != nil {
			return 0, fmt.Errorf("ds18b20: wait for conversion: %w", err)
		}
		raw, bits, err := d.readScratchpad(ctx)
		if err != nil {
			return 0, err
		}
		d.bits = bits
		if raw == powerOnRaw {
			if attempt == 0 {
				continue
			}
			return 0, fmt.Errorf("ds18b20: %s: %w", d.name, ErrPowerOnValue)
		}
		// 1/16 °C per step is 62.5 mK: in nano kelvin, exact.
		return physic.Temperature(raw)*62500*physic.MicroKelvin + physic.ZeroCelsius, nil
	}
}

// Read implements sensor.Reader: one temperature in °C.
func (d *Dev) Read(ctx context.Context) ([]sensor.Measurement, error) {
	t, err := d.Sense(ctx)
	if err != nil {
		return nil, err
	}
	return []sensor.Measurement{sensor.TemperatureOf(d.name, d.now(), t)}, nil
}

func (d *Dev) readScratchpad(ctx context.Context) (raw int16, bits int, err error) {
	var sp [9]byte
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return 0, 0, fmt.Errorf("ds18b20: read scratchpad: %w", err)
		}
		if err := d.dev.Tx([]byte{cmdReadScratchpad}, sp[:]); err != nil {
			return 0, 0, fmt.Errorf("ds18b20: read scratchpad: %w", err)
		}
		raw, bits, err = decodeScratchpad(&sp)
		if errors.Is(err, ErrCRC) && attempt == 0 {
			continue // a glitch on a long cable; the scratchpad is still there
		}
		if err != nil {
			return 0, 0, fmt.Errorf("ds18b20: read scratchpad of %s: %w", d.name, err)
		}
		return raw, bits, nil
	}
}

// decodeScratchpad checks a scratchpad and returns its temperature
// register in 1/16 °C, with the bits the resolution leaves undefined
// cleared, and the resolution in bits.
//
// Scratchpad (datasheet figure 7): 0 temperature LSB, 1 temperature MSB,
// 2 TH, 3 TL, 4 configuration (0 R1 R0 1 1 1 1 1), 5 reserved (0xFF),
// 6 reserved, 7 reserved (0x10), 8 CRC of bytes 0..7.
func decodeScratchpad(sp *[9]byte) (raw int16, bits int, err error) {
	if *sp == [9]byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF} {
		return 0, 0, ErrNoResponse
	}
	if !onewire.CheckCRC(sp[:]) {
		return 0, 0, fmt.Errorf("%w: % x", ErrCRC, sp[:])
	}
	if sp[4]&0x9F != 0x1F {
		return 0, 0, fmt.Errorf("%w: configuration register 0x%02x", ErrScratchpad, sp[4])
	}
	bits = 9 + int(sp[4]>>5&0x03)
	raw = int16(uint16(sp[1])<<8 | uint16(sp[0]))
	raw &^= 1<<(12-bits) - 1 // undefined at 9..11 bits (datasheet, "Configuration Register")
	// The sensor's range is -55 °C to +125 °C (0xFC90 to 0x07D0).
	if raw < -55*16 || raw > 125*16 {
		return 0, 0, fmt.Errorf("%w: temperature register 0x%04x out of range", ErrScratchpad, uint16(raw))
	}
	return raw, bits, nil
}

// conversionTime is the datasheet's maximum conversion time: 750 ms at 12
// bits, halving with each bit less.
func conversionTime(bits int) time.Duration {
	return 750 * time.Millisecond >> (12 - bits)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
