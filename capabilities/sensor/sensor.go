// Package sensor is the trellis:sensor contract: what a measurement is, the
// one-method Reader that every sensor device implements, and the msgpack
// payloads of the contract's operations.
//
// Drivers live below it (bme280, ds18b20) and are written against periph's
// conn packages only; sensorsim is the simulated provider used by tests and
// `trellis dev`. The package imports capabilities and nothing above it.
// Guest code does not import it (the sdk imports nothing of the host): a
// guest encodes and decodes the payloads documented at OpRead itself.
//
// # Units
//
// A Measurement carries a float64 in the unit of its Kind, and the unit's
// symbol beside it so that a reader never has to guess:
//
//	Kind         Unit   meaning
//	temperature  °C     degrees Celsius
//	humidity     %RH    relative humidity, 0 to 100
//	pressure     Pa     pascals (not hPa: 101325 at sea level)
//
// Go code that wants typed units gets them from the drivers (periph's
// physic.Temperature, physic.Pressure, physic.RelativeHumidity) and turns
// them into measurements with TemperatureOf, PressureOf and HumidityOf.
package sensor

import (
	"context"
	"time"

	"periph.io/x/conn/v3/physic"
)

// Kind is what a measurement measures. The contract names three; a Kind
// outside them is passed through untouched, with no unit.
type Kind string

// Kinds of the trellis:sensor contract.
const (
	Temperature Kind = "temperature"
	Humidity    Kind = "humidity"
	Pressure    Kind = "pressure"
)

// Unit symbols, one per Kind.
const (
	UnitCelsius   = "°C"
	UnitPercentRH = "%RH"
	UnitPascal    = "Pa"
)

// Unit returns the symbol of the unit a value of kind k is expressed in, or
// "" for a kind the contract does not name.
func (k Kind) Unit() string {
	switch k {
	case Temperature:
		return UnitCelsius
	case Humidity:
		return UnitPercentRH
	case Pressure:
		return UnitPascal
	}
	return ""
}

// Measurement is one value read from one sensor at one time.
//
// On the wire (msgpack, see ReadResponse) it is a map with exactly the keys
// sensor, kind, value, unit and time; time is an integer of Unix
// nanoseconds, 0 when unknown, because guest msgpack libraries rarely
// decode msgpack's timestamp extension.
type Measurement struct {
	Sensor string    `json:"sensor"` // the configured name of the device
	Kind   Kind      `json:"kind"`
	Value  float64   `json:"value"` // in Unit
	Unit   string    `json:"unit"`  // Kind.Unit(), repeated for readers of raw payloads
	Time   time.Time `json:"time"`  // when the value was read, not when it was asked for
}

// Reader is one sensor device. Read takes one reading of everything the
// device measures (a BME280 gives three measurements, a DS18B20 one).
//
// Read honours ctx: it checks it before touching the bus and between
// transactions, and waits for a conversion no longer than ctx allows. A
// Reader is safe for concurrent use; concurrent reads are serialised.
type Reader interface {
	Read(ctx context.Context) ([]Measurement, error)
}

// TemperatureOf returns t as a temperature measurement in °C.
func TemperatureOf(sensor string, at time.Time, t physic.Temperature) Measurement {
	return Measurement{Sensor: sensor, Kind: Temperature, Value: t.Celsius(), Unit: UnitCelsius, Time: at}
}

// PressureOf returns p as a pressure measurement in Pa.
func PressureOf(sensor string, at time.Time, p physic.Pressure) Measurement {
	return Measurement{Sensor: sensor, Kind: Pressure, Value: float64(p) / float64(physic.Pascal), Unit: UnitPascal, Time: at}
}

// HumidityOf returns h as a relative humidity measurement in %RH.
func HumidityOf(sensor string, at time.Time, h physic.RelativeHumidity) Measurement {
	return Measurement{Sensor: sensor, Kind: Humidity, Value: float64(h) / float64(physic.PercentRH), Unit: UnitPercentRH, Time: at}
}
