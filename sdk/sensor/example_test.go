package sensor_test

import (
	"errors"
	"strconv"

	"github.com/trellis-edge/trellis/sdk"
	"github.com/trellis-edge/trellis/sdk/sensor"
)

// An actor reports the room's temperature (the body of its init function).
// Grants: sensors: [room].
func Example() {
	sdk.Handle("Temperature", func([]byte) ([]byte, error) {
		ms, err := sensor.Read("room")
		if err != nil {
			return nil, err
		}
		t, ok := sensor.Find(ms, sensor.Temperature)
		if !ok {
			return nil, errors.New("room has no thermometer")
		}
		return strconv.AppendFloat(nil, t.Value, 'f', 1, 64), nil
	})
}
