package mesh

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// fakeDevices records what the device operations passed to the host.
type fakeDevices struct {
	mu    sync.Mutex
	calls []string
	bad   error // a request the host should never have been given
}

func (f *fakeDevices) record(op string, valid error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op)
	if valid != nil && f.bad == nil {
		f.bad = valid
	}
}

func (f *fakeDevices) Devices(context.Context) DeviceState {
	f.record("get", nil)
	return DeviceState{}
}
func (f *fakeDevices) ConfigureDevices(_ context.Context, d Devices) error {
	f.record("configure", d.Validate())
	return nil
}
func (f *fakeDevices) SetGPIO(_ context.Context, r GPIOSet) error {
	var err error
	if r.Line == "" {
		err = errString("empty line")
	}
	f.record("gpio.set", err)
	return nil
}
func (f *fakeDevices) SetSensor(_ context.Context, r SensorSet) error {
	var err error
	if r.Sensor == "" || r.Kind == "" {
		err = errString("empty sensor or kind")
	}
	f.record("sensor.set", err)
	return nil
}

type errString string

func (e errString) Error() string { return string(e) }

func TestDevicesValidate(t *testing.T) {
	for _, tc := range []struct {
		d    Devices
		want string
	}{
		{Devices{GPIO: &GPIOConfig{Provider: "gpiod"}}, `gpio.provider "gpiod"`},
		{Devices{GPIO: &GPIOConfig{Provider: GPIOSim, Lines: []string{"A", "A"}}}, "listed twice"},
		{Devices{GPIO: &GPIOConfig{Provider: GPIOSim, Lines: []string{"has space"}}}, "gpio.lines[0]"},
		{Devices{Sensors: []SensorConfig{{Name: "a", Driver: "lm75"}}}, `driver "lm75"`},
		{Devices{Sensors: []SensorConfig{{Name: "a", Driver: SensorBME280}}}, "bus"},
		{Devices{Sensors: []SensorConfig{{Name: "a", Driver: SensorBME280, Bus: "1", Address: 0x40}}}, "0x76 or 0x77"},
		{Devices{Sensors: []SensorConfig{{Name: "a", Driver: SensorDS18B20, ID: "10-000000000000"}}}, "DS18B20 id"},
		{Devices{Sensors: []SensorConfig{{Name: "a", Driver: SensorSim}, {Name: "a", Driver: SensorSim}}}, "used twice"},
		{Devices{Sensors: []SensorConfig{{Name: "a", Driver: SensorSim, Channels: map[string]WaveConfig{"light": {Wave: "constant"}}}}}, "channels.light"},
		{Devices{Sensors: []SensorConfig{{Name: "a", Driver: SensorSim, Channels: map[string]WaveConfig{"temperature": {Wave: "square"}}}}}, `wave "square"`},
		{Devices{GPIO: &GPIOConfig{Provider: GPIOSim, Lines: []string{"RELAY"}}, Sensors: []SensorConfig{
			{Name: "room", Driver: SensorSim}, {Name: "tank", Driver: SensorDS18B20, ID: "28-00000a1b2c3d"}, {Name: "air", Driver: SensorBME280, Bus: "1"}}}, ""},
	} {
		err := tc.d.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.d, err, tc.want)
		}
	}
}

// FuzzDeviceEndpoints drives the device operations with arbitrary bodies:
// one reply each, and the host is only ever given a valid request.
func FuzzDeviceEndpoints(f *testing.F) {
	for i, body := range []string{
		``, `{}`, `{"gpio":{"provider":"sim","lines":["A"]}}`, `{"sensors":[{"name":"r","driver":"sim","channels":{"temperature":{"wave":"sine","period":"1m"}}}]}`,
		`{"line":"BUTTON","level":true}`, `{"sensor":"room","kind":"temperature","value":21.5}`, `{"sensor":"room","kind":"temperature","value":null}`,
		`{"gpio":{"provider":"sim","lines":["A"]},"x":1}`, `[]`,
	} {
		f.Add(uint8(i), []byte(body))
	}
	dh := &fakeDevices{}
	c := &Control{host: newFakeHost(testHostID, "fuzz"), log: slog.New(slog.DiscardHandler), cancel: func() {}, lattice: DefaultLattice, hostID: testHostID}
	eps := c.deviceEndpoints(dh)
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		r := &fakeRequest{data: body}
		c.serve(t.Context(), r, eps[int(op)%len(eps)].handle)
		if r.responses != 1 {
			t.Fatalf("%d responses", r.responses)
		}
		var reply Reply
		if err := json.Unmarshal(r.body, &reply); err != nil {
			t.Fatalf("reply %q: %v", r.body, err)
		}
		dh.mu.Lock()
		defer dh.mu.Unlock()
		if dh.bad != nil {
			t.Fatalf("the host was given an invalid request (%v) for body %q", dh.bad, body)
		}
	})
}
