// Package bme280 drives a Bosch BME280 temperature, humidity and pressure
// sensor on an I²C bus, in forced mode: each read triggers one measurement,
// waits for it, reads it and compensates it with the datasheet's integer
// formulas (BME280 datasheet, section 4.2.3: 32-bit temperature and
// humidity, 64-bit pressure; appendix 8.1 has the float versions the tests
// check them against). Between reads the sensor sleeps, drawing well
// under a microamp.
//
// It is written against periph.io/x/conn/v3/i2c only; the agent opens the
// bus (through capabilities/periphhost) and hands it in. Tests play the
// register traffic back with i2ctest.Playback.
package bme280

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"

	"github.com/trellis-edge/trellis/capabilities/sensor"
)

// I²C addresses of a BME280: its SDO pin selects one.
const (
	AddrLow  uint16 = 0x76 // SDO to GND; the default
	AddrHigh uint16 = 0x77 // SDO to VDDIO
)

// ChipID is what a BME280 answers in its id register.
const ChipID = 0x60

// Registers (datasheet section 5.3).
const (
	regCalib00  = 0x88 // 0x88..0xA1: dig_T1..dig_P9, 0xA0 unused, dig_H1
	regChipID   = 0xD0
	regCalib26  = 0xE1 // 0xE1..0xE7: dig_H2..dig_H6
	regCtrlHum  = 0xF2
	regStatus   = 0xF3
	regCtrlMeas = 0xF4
	regConfig   = 0xF5
	regData     = 0xF7 // 0xF7..0xFE: press msb, lsb, xlsb, temp msb, lsb, xlsb, hum msb, lsb

	statusMeasuring = 0x08 // a conversion is running
	statusImUpdate  = 0x01 // the NVM calibration is being copied to registers

	modeSleep  = 0x00
	modeForced = 0x01

	// The value a skipped (or never run) measurement leaves in the data
	// registers.
	skippedTP = 0x80000
	skippedH  = 0x8000
)

// Oversampling is how many samples the sensor averages for one channel.
// The zero value is 1×.
type Oversampling uint8

// Oversampling settings.
const (
	X1 Oversampling = iota
	X2
	X4
	X8
	X16
)

// bits is the osrs_x field value (datasheet tables 20, 23, 24).
func (o Oversampling) bits() byte { return byte(o) + 1 }

// samples is the number of samples averaged.
func (o Oversampling) samples() int { return 1 << o }

// Filter is the IIR filter coefficient (datasheet section 3.4.4). The zero
// value is off. In forced mode the filter's state carries over from one
// read to the next.
type Filter uint8

// Filter settings.
const (
	FilterOff Filter = iota
	Filter2
	Filter4
	Filter8
	Filter16
)

// Opts configures a Dev. The zero value is a sensor at 0x76 with 1×
// oversampling and no filter: the datasheet's "weather monitoring" setting.
type Opts struct {
	Addr uint16 // AddrLow (the default when zero) or AddrHigh
	// Name is the Sensor of the measurements Read returns; default
	// "bme280@0x76" with the address.
	Name        string
	Temperature Oversampling
	Pressure    Oversampling
	Humidity    Oversampling
	Filter      Filter

	// Now stamps measurements; nil means time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends, whichever is first, and returns
	// ctx's error in the second case; nil means a timer. Tests inject one
	// that returns at once.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Errors a caller can branch on. All errors wrap one of these, a bus
// error, or ctx's error.
var (
	// ErrWrongChip is a device that answers at the address with another
	// chip id (a BMP280 answers 0x58 and has no humidity sensor).
	ErrWrongChip = errors.New("wrong chip id")
	// ErrCalibration is calibration data that cannot be right.
	ErrCalibration = errors.New("bad calibration data")
	// ErrNotReady is a sensor still busy after twice the datasheet's
	// longest time.
	ErrNotReady = errors.New("sensor not ready")
	// ErrSkipped is a measurement the sensor did not make: its data
	// registers hold their reset value (it was reset or lost power).
	ErrSkipped = errors.New("measurement skipped")
)

// pollsAfterWait bounds the status polls after the datasheet's maximum
// measurement time has passed: together they wait at most twice as long.
const pollsAfterWait = 8

// Dev is one BME280. It is safe for concurrent use; reads are serialised.
type Dev struct {
	dev   i2c.Dev
	name  string
	cal   calibration
	hum   byte          // ctrl_hum
	meas  byte          // ctrl_meas without the mode bits
	conf  byte          // config
	wait  time.Duration // the datasheet's maximum measurement time
	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	mu sync.Mutex // one forced measurement at a time
}

// New checks that a BME280 answers on bus, reads its calibration and puts
// it to sleep with the configured oversampling and filter. Its transactions:
//
//	0xD0 → chip id, must be 0x60
//	0xF3 → status, polled until im_update (bit 0) is clear
//	0x88 → 26 bytes of calibration, 0xE1 → 7 bytes of calibration
//	write 0xF4 ← ctrl_meas in sleep mode, 0xF5 ← config
//
// Config is written in sleep mode because the sensor may ignore it in
// normal mode.
func New(ctx context.Context, bus i2c.Bus, opts Opts) (*Dev, error) {
	addr := opts.Addr
	if addr == 0 {
		addr = AddrLow
	}
	if addr != AddrLow && addr != AddrHigh {
		return nil, fmt.Errorf("bme280: address %#x: want %#x or %#x", addr, AddrLow, AddrHigh)
	}
	for _, o := range []Oversampling{opts.Temperature, opts.Pressure, opts.Humidity} {
		if o > X16 {
			return nil, fmt.Errorf("bme280: oversampling %d: want X1 to X16", o)
		}
	}
	if opts.Filter > Filter16 {
		return nil, fmt.Errorf("bme280: filter %d: want FilterOff to Filter16", opts.Filter)
	}
	d := &Dev{
		dev:   i2c.Dev{Bus: bus, Addr: addr},
		name:  opts.Name,
		hum:   opts.Humidity.bits(),
		meas:  opts.Temperature.bits()<<5 | opts.Pressure.bits()<<2,
		conf:  byte(opts.Filter) << 2,
		wait:  measureTime(opts.Temperature, opts.Pressure, opts.Humidity),
		now:   opts.Now,
		sleep: opts.Sleep,
	}
	if d.name == "" {
		d.name = fmt.Sprintf("bme280@%#x", addr)
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.sleep == nil {
		d.sleep = sleep
	}

	var id [1]byte
	if err := d.tx(ctx, []byte{regChipID}, id[:]); err != nil {
		return nil, fmt.Errorf("bme280: read chip id: %w", err)
	}
	if id[0] != ChipID {
		return nil, fmt.Errorf("bme280: check chip id: %w: 0x%02x at %s, want 0x%02x%s", ErrWrongChip, id[0], d.dev.String(), ChipID, chipHint(id[0]))
	}
	if err := d.poll(ctx, statusImUpdate, time.Millisecond, pollsAfterWait); err != nil {
		return nil, fmt.Errorf("bme280: wait for calibration copy: %w", err)
	}
	var tp [26]byte
	var h [7]byte
	if err := d.tx(ctx, []byte{regCalib00}, tp[:]); err != nil {
		return nil, fmt.Errorf("bme280: read calibration: %w", err)
	}
	if err := d.tx(ctx, []byte{regCalib26}, h[:]); err != nil {
		return nil, fmt.Errorf("bme280: read calibration: %w", err)
	}
	d.cal = parseCalibration(&tp, &h)
	if err := d.cal.check(); err != nil {
		return nil, fmt.Errorf("bme280: read calibration: %w", err)
	}
	if err := d.tx(ctx, []byte{regCtrlMeas, d.meas | modeSleep, regConfig, d.conf}, nil); err != nil {
		return nil, fmt.Errorf("bme280: configure: %w", err)
	}
	return d, nil
}

// String names the device and where it is.
func (d *Dev) String() string { return "bme280 " + d.name + " on " + d.dev.String() }

// Sense takes one forced measurement and returns it in periph's units.
// Its transactions:
//
//	write 0xF2 ← ctrl_hum, 0xF5 ← config, 0xF4 ← ctrl_meas in forced mode
//	(wait the datasheet's maximum measurement time)
//	0xF3 → status, polled until measuring (bit 3) is clear
//	0xF7 → 8 bytes: pressure, temperature, humidity
//
// The whole configuration is written before every measurement, not once:
// a sensor that browned out between reads has lost it, and ctrl_hum only
// takes effect with the ctrl_meas write that follows it. Between forced
// measurements the sensor sleeps, so the config write is not ignored.
func (d *Dev) Sense(ctx context.Context) (physic.Env, error) {
	r, err := d.measure(ctx)
	if err != nil {
		return physic.Env{}, err
	}
	return r.env(), nil
}

// Read implements sensor.Reader: temperature (°C), humidity (%RH) and
// pressure (Pa) from one forced measurement.
func (d *Dev) Read(ctx context.Context) ([]sensor.Measurement, error) {
	r, err := d.measure(ctx)
	if err != nil {
		return nil, err
	}
	at := d.now()
	return []sensor.Measurement{
		{Sensor: d.name, Kind: sensor.Temperature, Value: r.celsius(), Unit: sensor.UnitCelsius, Time: at},
		{Sensor: d.name, Kind: sensor.Humidity, Value: r.percentRH(), Unit: sensor.UnitPercentRH, Time: at},
		{Sensor: d.name, Kind: sensor.Pressure, Value: r.pascals(), Unit: sensor.UnitPascal, Time: at},
	}, nil
}

func (d *Dev) measure(ctx context.Context) (reading, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.tx(ctx, []byte{regCtrlHum, d.hum, regConfig, d.conf, regCtrlMeas, d.meas | modeForced}, nil); err != nil {
		return reading{}, fmt.Errorf("bme280: start measurement: %w", err)
	}
	// The measuring bit is not set at once after the write; reading it
	// straight away can see a sensor that has not started yet.
	if err := d.sleep(ctx, d.wait); err != nil {
		return reading{}, fmt.Errorf("bme280: wait for measurement: %w", err)
	}
	if err := d.poll(ctx, statusMeasuring, max(d.wait/pollsAfterWait, time.Millisecond), pollsAfterWait); err != nil {
		return reading{}, fmt.Errorf("bme280: wait for measurement: %w", err)
	}
	var data [8]byte
	if err := d.tx(ctx, []byte{regData}, data[:]); err != nil {
		return reading{}, fmt.Errorf("bme280: read measurement: %w", err)
	}
	r, err := d.cal.compensate(&data)
	if err != nil {
		return reading{}, fmt.Errorf("bme280: read measurement: %w", err)
	}
	return r, nil
}

// poll reads the status register until the bits in mask are clear, at most
// 1+polls times, sleeping interval between reads.
func (d *Dev) poll(ctx context.Context, mask byte, interval time.Duration, polls int) error {
	var status [1]byte
	for i := 0; ; i++ {
		if err := d.tx(ctx, []byte{regStatus}, status[:]); err != nil {
			return err
		}
		if status[0]&mask == 0 {
			return nil
		}
		if i == polls {
			return fmt.Errorf("%w: status 0x%02x after %d reads", ErrNotReady, status[0], i+1)
		}
		if err := d.sleep(ctx, interval); err != nil {
			return err
		}
	}
}

// tx is one bus transaction, not started once ctx has ended.
func (d *Dev) tx(ctx context.Context, w, r []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.dev.Tx(w, r)
}

// measureTime is the datasheet's maximum measurement time (appendix 9.1):
// 1.25 ms + 2.3 ms per temperature sample + 2.3 ms per pressure sample
// + 0.575 ms + 2.3 ms per humidity sample + 0.575 ms.
func measureTime(t, p, h Oversampling) time.Duration {
	us := 1250 + 2300*t.samples() + 2300*p.samples() + 575 + 2300*h.samples() + 575
	return time.Duration(us) * time.Microsecond
}

func chipHint(id byte) string {
	switch id {
	case 0x56, 0x57, 0x58:
		return " (a BMP280: pressure and temperature only)"
	case 0x61:
		return " (a BME680)"
	case 0x00, 0xFF:
		return " (no device answering?)"
	}
	return ""
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
