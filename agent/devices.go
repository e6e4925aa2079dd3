package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/onewire"

	"github.com/trellis-edge/trellis/capabilities/gpio"
	"github.com/trellis-edge/trellis/capabilities/gpio/gpiosim"
	"github.com/trellis-edge/trellis/capabilities/periphhost"
	"github.com/trellis-edge/trellis/capabilities/sensor"
	"github.com/trellis-edge/trellis/capabilities/sensor/bme280"
	"github.com/trellis-edge/trellis/capabilities/sensor/ds18b20"
	"github.com/trellis-edge/trellis/capabilities/sensor/sensorsim"
	"github.com/trellis-edge/trellis/mesh"
)

// devices are the providers behind trellis:gpio and trellis:sensor. They
// are built from the config's devices section and replaced, without
// restarting actors, by the control API's device.configure and by a config
// reload: the handlers stay, their providers change.
type devices struct {
	gpio    *gpio.Handler
	sensors *sensor.Handler

	mu         sync.Mutex
	cfg        mesh.Devices
	gpioName   string            // provider name: none, sim or periph
	gpioClose  io.Closer         // the provider in use, closed when replaced
	sim        *gpiosim.Provider // when gpioName is sim
	sensorSims map[string]*sensorsim.Sensor
	readers    map[string]string // sensor name → driver
	buses      []io.Closer       // buses the configured sensors use
}

// gpioProvider is a GPIO provider the agent can close.
type gpioProvider interface {
	gpio.Provider
	io.Closer
}

// configure applies d: the parts it sets (d.GPIO non-nil, d.Sensors
// non-nil) replace the current ones; a part that fails to build leaves the
// current one in place.
func (dv *devices) configure(ctx context.Context, d mesh.Devices, lost func(actor string, err error)) error {
	if err := d.Validate(); err != nil {
		return err
	}
	dv.mu.Lock()
	defer dv.mu.Unlock()
	var errs []error
	if d.GPIO != nil {
		if err := dv.setGPIO(*d.GPIO, lost); err != nil {
			errs = append(errs, err)
		} else {
			dv.cfg.GPIO = d.GPIO
		}
	}
	if d.Sensors != nil {
		if err := dv.setSensors(ctx, d.Sensors); err != nil {
			errs = append(errs, err)
		} else {
			dv.cfg.Sensors = d.Sensors
		}
	}
	return errors.Join(errs...)
}

func (dv *devices) setGPIO(c mesh.GPIOConfig, lost func(actor string, err error)) error {
	var (
		p   gpioProvider
		sim *gpiosim.Provider
		err error
	)
	switch c.Provider {
	case "", mesh.GPIONone:
		c.Provider = mesh.GPIONone
	case mesh.GPIOSim:
		sim, err = gpiosim.New(c.Lines, nil)
		p = sim
	case mesh.GPIOPeriph:
		p, err = periphhost.Open(c.Lines, nil)
	}
	if err != nil {
		return fmt.Errorf("devices: gpio provider %s: %w", c.Provider, err)
	}
	var gp gpio.Provider
	if p != nil {
		gp = p
	}
	for actor, errs := range dv.gpio.SetProvider(gp) {
		for _, e := range errs {
			lost(actor, e)
		}
	}
	if dv.gpioClose != nil {
		_ = dv.gpioClose.Close()
	}
	dv.gpioName, dv.sim, dv.gpioClose = c.Provider, sim, nil
	if p != nil {
		dv.gpioClose = p
	}
	return nil
}

// setSensors builds every sensor of cs, then swaps them all in: one that
// fails leaves the current set in place.
func (dv *devices) setSensors(ctx context.Context, cs []mesh.SensorConfig) error {
	readers := map[string]sensor.Reader{}
	sims := map[string]*sensorsim.Sensor{}
	drivers := map[string]string{}
	var buses []io.Closer
	closeAll := func() {
		for _, b := range buses {
			_ = b.Close()
		}
	}
	i2cBuses := map[string]i2c.BusCloser{}
	for _, c := range cs {
		r, bus, err := buildSensor(ctx, c, i2cBuses)
		if err != nil {
			closeAll()
			return fmt.Errorf("devices: sensor %s (%s): %w", c.Name, c.Driver, err)
		}
		if bus != nil {
			buses = append(buses, bus)
		}
		if s, ok := r.(*sensorsim.Sensor); ok {
			sims[c.Name] = s
		}
		readers[c.Name] = r
		drivers[c.Name] = c.Driver
	}
	for _, name := range dv.sensors.Names() {
		if _, keep := readers[name]; !keep {
			dv.sensors.Set(name, nil)
		}
	}
	for name, r := range readers {
		dv.sensors.Set(name, r)
	}
	for _, b := range dv.buses {
		_ = b.Close()
	}
	dv.buses, dv.sensorSims, dv.readers = buses, sims, drivers
	return nil
}

// buildSensor returns the reader of one configured sensor and the bus it
// opened, if any (an I²C bus shared by several sensors is opened once).
func buildSensor(ctx context.Context, c mesh.SensorConfig, i2cBuses map[string]i2c.BusCloser) (sensor.Reader, io.Closer, error) {
	switch c.Driver {
	case mesh.SensorSim:
		var chans []sensorsim.Channel
		kinds := []string{"temperature", "humidity", "pressure"}
		for _, k := range kinds {
			w, ok := c.Channels[k]
			if !ok {
				continue
			}
			chans = append(chans, sensorsim.Channel{Kind: sensor.Kind(k), Wave: waveOf(w)})
		}
		if len(chans) == 0 {
			chans = []sensorsim.Channel{{Kind: sensor.Temperature, Wave: sensorsim.Constant(21)}}
		}
		s, err := sensorsim.New(c.Name, chans, sensorsim.Opts{})
		return s, nil, err
	case mesh.SensorBME280:
		var opened io.Closer
		bus, ok := i2cBuses[c.Bus]
		if !ok {
			b, err := periphhost.OpenI2C(c.Bus)
			if err != nil {
				return nil, nil, err
			}
			bus, opened = b, b
			i2cBuses[c.Bus] = b
		}
		dev, err := bme280.New(ctx, bus, bme280.Opts{Addr: c.Address, Name: c.Name})
		if err != nil {
			if opened != nil {
				_ = opened.Close()
				delete(i2cBuses, c.Bus)
			}
			return nil, nil, err
		}
		return dev, opened, nil
	case mesh.SensorDS18B20:
		bus, err := periphhost.OpenOneWire(c.Bus)
		if err != nil {
			return nil, nil, err
		}
		addr, err := oneWireAddress(c.ID)
		if err != nil {
			_ = bus.Close()
			return nil, nil, err
		}
		dev, err := ds18b20.New(bus, addr, ds18b20.Opts{Name: c.Name})
		if err != nil {
			_ = bus.Close()
			return nil, nil, err
		}
		return dev, bus, nil
	}
	return nil, nil, fmt.Errorf("driver %q: want sim, bme280 or ds18b20", c.Driver)
}

func waveOf(w mesh.WaveConfig) sensorsim.Waveform {
	switch w.Wave {
	case "sine":
		return sensorsim.Sine{Offset: w.Offset, Amplitude: w.Amplitude, Period: time.Duration(w.Period)}
	case "ramp":
		return sensorsim.Ramp{From: w.From, To: w.To, Period: time.Duration(w.Period), Repeat: w.Repeat}
	}
	return sensorsim.Constant(w.Value)
}

// state reports the devices for the control API.
func (dv *devices) state(ctx context.Context) mesh.DeviceState {
	dv.mu.Lock()
	defer dv.mu.Unlock()
	st := mesh.DeviceState{GPIO: mesh.GPIOState{Provider: dv.gpioName, Lines: []mesh.GPIOLine{}, Dropped: dv.gpio.Dropped()}, Sensors: []mesh.SensorState{}}
	if st.GPIO.Provider == "" {
		st.GPIO.Provider = mesh.GPIONone
	}
	if dv.sim != nil {
		for _, name := range dv.sim.Lines() {
			l := mesh.GPIOLine{Name: name}
			if s, err := dv.sim.State(name); err != nil {
				l.Error = err.Error()
			} else {
				l.Level, l.Output, l.PWM, l.Duty, l.Freq, l.Watches = bool(s.Level), s.Output, s.PWM, float64(s.Duty), float64(s.Freq), s.Watches
			}
			st.GPIO.Lines = append(st.GPIO.Lines, l)
		}
	} else if p := dv.gpio.Provider(); p != nil && dv.cfg.GPIO != nil {
		for _, name := range dv.cfg.GPIO.Lines {
			l := mesh.GPIOLine{Name: name}
			line, err := p.Line(name)
			if err == nil {
				var lv gpio.Level
				lv, err = line.Read(ctx)
				l.Level = bool(lv)
			}
			if err != nil {
				l.Error = err.Error()
			}
			st.GPIO.Lines = append(st.GPIO.Lines, l)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(dv.readers)) {
		st.Sensors = append(st.Sensors, mesh.SensorState{Name: name, Driver: dv.readers[name]})
	}
	return st
}

// setLine drives a simulated input line.
func (dv *devices) setLine(req mesh.GPIOSet) error {
	dv.mu.Lock()
	sim, name := dv.sim, dv.gpioName
	dv.mu.Unlock()
	if sim == nil {
		return fmt.Errorf("gpio provider %s: only simulated lines can be set from outside", orNone(name))
	}
	return sim.Set(req.Line, gpio.Level(req.Level))
}

// setSensor overrides or releases a simulated sensor's channel.
func (dv *devices) setSensor(req mesh.SensorSet) error {
	dv.mu.Lock()
	s, ok := dv.sensorSims[req.Sensor]
	driver, known := dv.readers[req.Sensor]
	dv.mu.Unlock()
	switch {
	case !known:
		return fmt.Errorf("sensor %q is not configured on this device", req.Sensor)
	case !ok:
		return fmt.Errorf("sensor %q (%s): only simulated sensors can be set from outside", req.Sensor, driver)
	case req.Value == nil:
		return s.Clear(sensor.Kind(req.Kind))
	}
	return s.Set(sensor.Kind(req.Kind), *req.Value)
}

// close releases the providers and buses.
func (dv *devices) close() {
	dv.gpio.Close()
	dv.mu.Lock()
	defer dv.mu.Unlock()
	if dv.gpioClose != nil {
		_ = dv.gpioClose.Close()
	}
	for _, b := range dv.buses {
		_ = b.Close()
	}
}

func orNone(s string) string {
	if s == "" {
		return mesh.GPIONone
	}
	return s
}

// oneWireAddress parses a Linux w1 id (family-serial, 28-00000a1b2c3d) into
// periph's 64-bit ROM code: family in the low byte, then the 48-bit serial;
// the CRC byte is computed.
func oneWireAddress(id string) (onewire.Address, error) {
	var family, serial uint64
	if _, err := fmt.Sscanf(id, "%2x-%12x", &family, &serial); err != nil || len(id) != 15 {
		return 0, fmt.Errorf("1-wire id %q: want family-serial in hex, such as 28-00000a1b2c3d", id)
	}
	rom := family | serial<<8
	var b [7]byte
	for i := range b {
		b[i] = byte(rom >> (8 * i))
	}
	return onewire.Address(rom | uint64(onewire.CalcCRC(b[:]))<<56), nil
}

// EventDevicesFailed is published when a part of the devices config cannot
// be applied (a sensor that does not answer, a GPIO chip that is missing):
// the agent serves on without it.
const EventDevicesFailed = "dev.trellis.devices.failed"

// configureDevices applies d at boot or on a reload. A device that fails
// is reported and the agent serves on: one unplugged sensor must not take
// the actors down.
func (a *Agent) configureDevices(ctx context.Context, d mesh.Devices) {
	if err := a.applyDevices(ctx, d); err != nil {
		a.log.Error("devices", "err", err)
		_ = a.events.Publish(ctx, EventDevicesFailed, map[string]string{"error": err.Error()})
	}
}

func (a *Agent) applyDevices(ctx context.Context, d mesh.Devices) error {
	return a.dev.configure(ctx, d, func(actor string, err error) {
		a.log.Warn("gpio provider swap: an actor's watch was lost", "actor", actor, "err", err)
	})
}

var _ mesh.DeviceHost = (*host)(nil)

// Devices implements mesh.DeviceHost.
func (h *host) Devices(ctx context.Context) mesh.DeviceState { return h.dev.state(ctx) }

// ConfigureDevices implements mesh.DeviceHost: the GPIO provider or the
// sensors are replaced while actors run.
func (h *host) ConfigureDevices(ctx context.Context, d mesh.Devices) error {
	a := h.agent()
	if err := a.applyDevices(ctx, d); err != nil {
		return err
	}
	a.log.Info("devices configured", "gpio", h.dev.state(ctx).GPIO.Provider, "sensors", len(h.dev.sensors.Names()))
	return nil
}

// SetGPIO implements mesh.DeviceHost.
func (h *host) SetGPIO(_ context.Context, req mesh.GPIOSet) error { return h.dev.setLine(req) }

// SetSensor implements mesh.DeviceHost.
func (h *host) SetSensor(_ context.Context, req mesh.SensorSet) error { return h.dev.setSensor(req) }
