package mesh

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Devices is a host's device configuration: which GPIO provider serves
// trellis:gpio and which sensors trellis:sensor reads. The agent config's
// `devices:` section (YAML) and the control API's device.configure request
// (JSON) have this shape.
type Devices struct {
	GPIO    *GPIOConfig    `json:"gpio,omitempty" yaml:"gpio"`
	Sensors []SensorConfig `json:"sensors,omitempty" yaml:"sensors"`
}

// GPIO providers.
const (
	GPIONone   = "none"   // no GPIO: every granted call answers unavailable
	GPIOSim    = "sim"    // simulated lines, driven through the control API
	GPIOPeriph = "periph" // the device's GPIO chips, through periph.io
)

// GPIOConfig chooses the GPIO provider.
type GPIOConfig struct {
	// Provider is none, sim or periph.
	Provider string `json:"provider" yaml:"provider"`
	// Lines are the lines the provider serves: for sim the lines it
	// simulates, for periph pin names or aliases (GPIO17, P1_11); empty
	// for periph means every pin periph found.
	Lines []string `json:"lines,omitempty" yaml:"lines"`
}

// Sensor drivers.
const (
	SensorSim     = "sim"
	SensorBME280  = "bme280"
	SensorDS18B20 = "ds18b20"
)

// SensorConfig is one named sensor.
type SensorConfig struct {
	Name   string `json:"name" yaml:"name"`
	Driver string `json:"driver" yaml:"driver"` // sim, bme280 or ds18b20
	// Bus is the I²C bus (bme280: "1" for /dev/i2c-1) or the 1-Wire bus
	// name (ds18b20; empty: the first one periph found).
	Bus string `json:"bus,omitempty" yaml:"bus"`
	// Address is the I²C address (bme280: 0x76 or 0x77; default 0x76).
	Address uint16 `json:"address,omitempty" yaml:"address"`
	// ID is a 1-Wire device id (ds18b20: 28-00000a1b2c3d).
	ID string `json:"id,omitempty" yaml:"id"`
	// Channels of a simulated sensor, by kind (temperature, humidity,
	// pressure); a sim sensor with none has temperature 21 °C.
	Channels map[string]WaveConfig `json:"channels,omitempty" yaml:"channels"`
}

// WaveConfig is the waveform of a simulated sensor channel.
type WaveConfig struct {
	Wave      string   `json:"wave" yaml:"wave"` // constant, sine or ramp
	Value     float64  `json:"value,omitempty" yaml:"value"`
	Offset    float64  `json:"offset,omitempty" yaml:"offset"`
	Amplitude float64  `json:"amplitude,omitempty" yaml:"amplitude"`
	From      float64  `json:"from,omitempty" yaml:"from"`
	To        float64  `json:"to,omitempty" yaml:"to"`
	Period    Duration `json:"period,omitempty" yaml:"period"`
	Repeat    bool     `json:"repeat,omitempty" yaml:"repeat"`
}

// Validate checks a device configuration; errors name the field and value.
func (d Devices) Validate() error {
	if d.GPIO != nil && !slices.Contains([]string{"", GPIONone, GPIOSim, GPIOPeriph}, d.GPIO.Provider) {
		return fmt.Errorf("devices: gpio.provider %q: want none, sim or periph", d.GPIO.Provider)
	}
	if d.GPIO != nil {
		for i, l := range d.GPIO.Lines {
			if l == "" || len(l) > 64 || containsSpace(l) {
				return fmt.Errorf("devices: gpio.lines[%d] %q: want a line name such as GPIO17", i, l)
			}
			if j := slices.Index(d.GPIO.Lines, l); j < i {
				return fmt.Errorf("devices: gpio.lines[%d] %q: listed twice (first at gpio.lines[%d])", i, l, j)
			}
		}
	}
	seen := map[string]int{}
	for i, s := range d.Sensors {
		at := fmt.Sprintf("devices: sensors[%d] %q", i, s.Name)
		if s.Name == "" || len(s.Name) > 128 || containsSpace(s.Name) {
			return fmt.Errorf("%s: name: want a name without spaces", at)
		}
		if j, dup := seen[s.Name]; dup {
			return fmt.Errorf("%s: name used twice (first at sensors[%d])", at, j)
		}
		seen[s.Name] = i
		switch s.Driver {
		case SensorSim:
			for kind, w := range s.Channels {
				if !slices.Contains([]string{"temperature", "humidity", "pressure"}, kind) {
					return fmt.Errorf("%s: channels.%s: want temperature, humidity or pressure", at, kind)
				}
				if !slices.Contains([]string{"constant", "sine", "ramp"}, w.Wave) {
					return fmt.Errorf("%s: channels.%s.wave %q: want constant, sine or ramp", at, kind, w.Wave)
				}
				for _, v := range []float64{w.Value, w.Offset, w.Amplitude, w.From, w.To} {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						return fmt.Errorf("%s: channels.%s: values must be finite", at, kind)
					}
				}
				if w.Period < 0 {
					return fmt.Errorf("%s: channels.%s.period %s: must not be negative", at, kind, w.Period)
				}
			}
		case SensorBME280:
			if s.Bus == "" {
				return fmt.Errorf("%s: bus: want the I²C bus, such as \"1\"", at)
			}
			if s.Address != 0 && s.Address != 0x76 && s.Address != 0x77 {
				return fmt.Errorf("%s: address %#x: a BME280 answers at 0x76 or 0x77", at, s.Address)
			}
		case SensorDS18B20:
			if len(s.ID) != 15 || s.ID[:3] != "28-" {
				return fmt.Errorf("%s: id %q: want a DS18B20 id such as 28-00000a1b2c3d", at, s.ID)
			}
		default:
			return fmt.Errorf("%s: driver %q: want sim, bme280 or ds18b20", at, s.Driver)
		}
	}
	return nil
}

func containsSpace(s string) bool { return strings.ContainsAny(s, " \t\n\r/") }

// DeviceState is what a host's devices are now: the device.get answer.
type DeviceState struct {
	GPIO    GPIOState     `json:"gpio"`
	Sensors []SensorState `json:"sensors"`
}

// GPIOState is the GPIO provider and its lines.
type GPIOState struct {
	Provider string     `json:"provider"`
	Lines    []GPIOLine `json:"lines"`
	Dropped  uint64     `json:"dropped_edges"` // edges dropped because an actor fell behind
}

// GPIOLine is one line now.
type GPIOLine struct {
	Name    string  `json:"name"`
	Level   bool    `json:"level"`
	Output  bool    `json:"output"`
	PWM     bool    `json:"pwm,omitempty"`
	Duty    float64 `json:"duty,omitempty"`
	Freq    float64 `json:"freq,omitempty"`
	Watches int     `json:"watches,omitempty"`
	Error   string  `json:"error,omitempty"` // the line could not be read
}

// SensorState is one configured sensor.
type SensorState struct {
	Name   string `json:"name"`
	Driver string `json:"driver"`
}

// GPIOSet drives a simulated input line (device.gpio.set).
type GPIOSet struct {
	Line  string `json:"line"`
	Level bool   `json:"level"`
}

// SensorSet overrides a simulated sensor's channel (device.sensor.set);
// a nil Value returns it to its waveform.
type SensorSet struct {
	Sensor string   `json:"sensor"`
	Kind   string   `json:"kind"`
	Value  *float64 `json:"value"`
}

// Device control operations.
const (
	CtlDeviceGet       = "device.get"
	CtlDeviceConfigure = "device.configure"
	CtlDeviceGPIOSet   = "device.gpio.set"
	CtlDeviceSensorSet = "device.sensor.set"
)

// DeviceHost is what the device operations need from the agent; a Host
// that also implements it serves them.
type DeviceHost interface {
	Devices(ctx context.Context) DeviceState
	// ConfigureDevices replaces the parts that d sets (GPIO provider,
	// sensors) without restarting actors.
	ConfigureDevices(ctx context.Context, d Devices) error
	SetGPIO(ctx context.Context, req GPIOSet) error
	SetSensor(ctx context.Context, req SensorSet) error
}

// deviceEndpoints returns the device operations' endpoints for a host
// that implements DeviceHost.
func (c *Control) deviceEndpoints(dh DeviceHost) []endpoint {
	sub := func(op string) string { return HostCtlSubject(c.lattice, c.hostID, op) }
	return []endpoint{
		{"device-get", sub(CtlDeviceGet), func(ctx context.Context, data []byte) (Reply, error) {
			if err := decodeEmptyRequest(data); err != nil {
				return Reply{}, &badRequest{err}
			}
			return Reply{Response: dh.Devices(ctx)}, nil
		}, nil},
		{"device-configure", sub(CtlDeviceConfigure), func(ctx context.Context, data []byte) (Reply, error) {
			var d Devices
			if err := decodeStrict(data, &d); err != nil {
				return Reply{}, &badRequest{err}
			}
			if err := d.Validate(); err != nil {
				return Reply{}, &badRequest{err}
			}
			if err := dh.ConfigureDevices(ctx, d); err != nil {
				return Reply{}, err
			}
			return Reply{Message: "devices configured", Response: dh.Devices(ctx)}, nil
		}, nil},
		{"device-gpio-set", sub(CtlDeviceGPIOSet), func(ctx context.Context, data []byte) (Reply, error) {
			var req GPIOSet
			if err := decodeStrict(data, &req); err != nil {
				return Reply{}, &badRequest{err}
			}
			if req.Line == "" {
				return Reply{}, &badRequest{fmt.Errorf("line: required")}
			}
			if err := dh.SetGPIO(ctx, req); err != nil {
				return Reply{}, err
			}
			return Reply{Message: fmt.Sprintf("line %s set %s", req.Line, levelName(req.Level))}, nil
		}, nil},
		{"device-sensor-set", sub(CtlDeviceSensorSet), func(ctx context.Context, data []byte) (Reply, error) {
			var req SensorSet
			if err := decodeStrict(data, &req); err != nil {
				return Reply{}, &badRequest{err}
			}
			if req.Sensor == "" || req.Kind == "" {
				return Reply{}, &badRequest{fmt.Errorf("sensor and kind: required")}
			}
			if req.Value != nil && (math.IsNaN(*req.Value) || math.IsInf(*req.Value, 0)) {
				return Reply{}, &badRequest{fmt.Errorf("value: must be finite")}
			}
			if err := dh.SetSensor(ctx, req); err != nil {
				return Reply{}, err
			}
			return Reply{Message: fmt.Sprintf("sensor %s %s set", req.Sensor, req.Kind)}, nil
		}, nil},
	}
}

func levelName(high bool) string {
	if high {
		return "high"
	}
	return "low"
}

// KnownLines returns the GPIO lines grants may name: the simulated lines, or
// the periph lines listed; nil when any line may exist (periph with no list,
// or no GPIO configured, where a grant fails at its first call instead).
func (d Devices) KnownLines() []string {
	if d.GPIO == nil || d.GPIO.Provider == GPIONone || d.GPIO.Provider == "" || len(d.GPIO.Lines) == 0 && d.GPIO.Provider == GPIOPeriph {
		return nil
	}
	return d.GPIO.Lines
}
