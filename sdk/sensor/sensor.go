// Package sensor is the guest side of trellis:sensor: reading the sensors
// configured on the device (BME280, DS18B20, simulated ones), by the name
// the device gives them. The actor needs a grant naming each sensor it
// reads, such as `sensors: [room]`; a read of any other sensor fails with
// an error that says "denied".
//
// One Read returns every measurement the sensor makes at once: a BME280
// gives temperature, humidity and pressure, a DS18B20 temperature only.
//
//	ms, err := sensor.Read("room")
//	if err != nil {
//		return nil, err
//	}
//	t, ok := sensor.Find(ms, sensor.Temperature)
//	if !ok {
//		return nil, errors.New("room has no thermometer")
//	}
//	sdk.Info("room at " + strconv.FormatFloat(t.Value, 'f', 1, 64) + " " + t.Unit)
//
// Errors the host returns are *sdk.HostError; an answer that does not
// decode is an error naming the key at fault.
package sensor

import (
	"time"

	"github.com/trellis-edge/trellis/sdk/internal/msgpack"
	"github.com/trellis-edge/trellis/sdk/internal/wire"
)

// Namespace is the contract's namespace.
const Namespace = "trellis:sensor"

// Kinds of measurement, with the unit of each.
const (
	Temperature = "temperature" // degrees Celsius, "°C"
	Humidity    = "humidity"    // relative humidity, "%RH"
	Pressure    = "pressure"    // pascals, "Pa"
)

// Measurement is one value a sensor measured.
type Measurement struct {
	Sensor string    // the sensor's configured name
	Kind   string    // Temperature, Humidity, Pressure, or a kind a newer host adds
	Value  float64   // in Unit
	Unit   string    // "°C", "%RH", "Pa"
	Time   time.Time // when it was measured; zero when the host does not know
}

// Read reads the named sensor once and returns its measurements. The read
// runs under the call's deadline on the host.
func Read(name string) ([]Measurement, error) {
	b := msgpack.AppendMapHeader(nil, 1)
	b = msgpack.AppendString(msgpack.AppendString(b, "sensor"), name)
	resp, err := wire.Call(Namespace, "Read", b)
	if err != nil {
		return nil, err
	}
	return decodeReadResponse(resp)
}

const readResponse = "sdk/sensor: Read response"

func decodeReadResponse(resp []byte) ([]Measurement, error) {
	var ms []Measurement
	err := wire.DecodeMap(readResponse, resp, func(d *msgpack.Decoder, k string) error {
		if k != "measurements" {
			return d.Skip()
		}
		n, err := d.ArrayLen()
		if err != nil {
			return err
		}
		ms = make([]Measurement, 0, n) // n is bounded by the response's size
		for range n {
			m, err := decodeMeasurement(d)
			if err != nil {
				return err
			}
			ms = append(ms, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ms, nil
}

func decodeMeasurement(d *msgpack.Decoder) (Measurement, error) {
	var m Measurement
	err := d.Map(func(k string) (err error) {
		switch k {
		case "sensor":
			m.Sensor, err = d.String()
		case "kind":
			m.Kind, err = d.String()
		case "value":
			m.Value, err = d.Float()
		case "unit":
			m.Unit, err = d.String()
		case "time":
			var ns int64
			if ns, err = d.Int(); err == nil && ns != 0 {
				m.Time = time.Unix(0, ns)
			}
		default:
			err = d.Skip()
		}
		return err
	})
	return m, err
}

// Find returns the first measurement of kind in ms.
func Find(ms []Measurement, kind string) (Measurement, bool) {
	for _, m := range ms {
		if m.Kind == kind {
			return m, true
		}
	}
	return Measurement{}, false
}
