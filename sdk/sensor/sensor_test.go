//go:build !wasip1

package sensor_test

import (
	"errors"
	"testing"
	"time"

	vm "github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/sdk/internal/calltest"
	"github.com/trellis-edge/trellis/sdk/sdktest"
	"github.com/trellis-edge/trellis/sdk/sensor"
)

type m = map[string]any

func TestRead(t *testing.T) {
	at := time.Unix(1700000000, 5)
	calltest.Run(t, sensor.Namespace, []calltest.Case{
		{
			Name: "bme280",
			Call: func() (any, error) { return sensor.Read("room") },
			Answer: marshal(m{"measurements": []m{
				{"sensor": "room", "kind": "temperature", "value": 21.5, "unit": "°C", "time": at.UnixNano()},
				{"sensor": "room", "kind": "humidity", "value": 40, "unit": "%RH", "time": 0, "extra": m{"a": []int{1}}},
			}}),
			Op:      "Read",
			Payload: "81a673656e736f72a4726f6f6d", // {sensor: str "room"}
			Want: []sensor.Measurement{
				{Sensor: "room", Kind: sensor.Temperature, Value: 21.5, Unit: "°C", Time: at},
				{Sensor: "room", Kind: sensor.Humidity, Value: 40, Unit: "%RH"},
			},
		},
		{
			Name:    "no measurements",
			Call:    func() (any, error) { return sensor.Read("room") },
			Answer:  marshal(m{"measurements": nil}),
			Op:      "Read",
			Payload: "81a673656e736f72a4726f6f6d",
			Want:    []sensor.Measurement{},
		},
		{
			Name:    "value of the wrong type",
			Call:    func() (any, error) { return sensor.Read("room") },
			Answer:  marshal(m{"measurements": []m{{"value": "hot"}}}),
			Op:      "Read",
			Payload: "81a673656e736f72a4726f6f6d",
			WantErr: `sdk/sensor: Read response: key "measurements": key "value": msgpack: want float, got str`,
		},
		{
			Name:      "denied",
			Call:      func() (any, error) { return sensor.Read("room") },
			AnswerErr: errors.New(`denied: actor a may not read sensor "room"`),
			Op:        "Read",
			Payload:   "81a673656e736f72a4726f6f6d",
			WantErr:   `sdk: host call trellis:sensor/Read: denied: actor a may not read sensor "room"`,
		},
	})
}

func TestFind(t *testing.T) {
	ms := []sensor.Measurement{{Kind: sensor.Humidity, Value: 1}, {Kind: sensor.Temperature, Value: 2}, {Kind: sensor.Temperature, Value: 3}}
	if got, ok := sensor.Find(ms, sensor.Temperature); !ok || got.Value != 2 {
		t.Errorf("Find temperature = %v, %v; want the first one", got, ok)
	}
	if _, ok := sensor.Find(ms, sensor.Pressure); ok {
		t.Error("Find pressure found one")
	}
}

// FuzzRead answers Read with arbitrary bytes: the SDK must return an error
// or measurements, never panic.
func FuzzRead(f *testing.F) {
	f.Add(marshal(m{"measurements": []m{{"sensor": "room", "kind": "temperature", "value": 21.5, "unit": "°C", "time": 1}}}))
	f.Add(calltest.Hex("81ac6d6561737572656d656e7473dd7fffffff"))
	f.Add(calltest.Hex("81ac6d6561737572656d656e74739181a576616c7565ca7fc00000"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h := sdktest.New(t)
		h.Serve(sensor.Namespace, func(string, []byte) ([]byte, error) { return b, nil })
		sensor.Read("room")
	})
}

// marshal encodes v as the host does, with its msgpack library.
func marshal(v any) []byte {
	b, err := vm.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
