package sensorsim_test

import (
	"context"
	"fmt"
	"time"

	"github.com/trellis-edge/trellis/capabilities/sensor"
	"github.com/trellis-edge/trellis/capabilities/sensor/sensorsim"
)

func Example() {
	clk := newClock()
	greenhouse, err := sensorsim.New("greenhouse", []sensorsim.Channel{
		// A day's swing around 20 °C, warmest six hours in.
		{Kind: sensor.Temperature, Wave: sensorsim.Sine{Offset: 20, Amplitude: 4, Period: 24 * time.Hour}},
		{Kind: sensor.Humidity, Wave: sensorsim.Constant(60)},
	}, sensorsim.Opts{Now: clk.Now})
	if err != nil {
		panic(err)
	}
	show := func() {
		ms, _ := greenhouse.Read(context.Background())
		fmt.Printf("%s %.1f %s, %s %.1f %s\n", ms[0].Kind, ms[0].Value, ms[0].Unit, ms[1].Kind, ms[1].Value, ms[1].Unit)
	}

	clk.Advance(6 * time.Hour)
	show()

	// A test, or the control API, raises the temperature…
	_ = greenhouse.Set(sensor.Temperature, 40)
	show()

	// …and lets it follow its waveform again.
	_ = greenhouse.Clear(sensor.Temperature)
	clk.Advance(6 * time.Hour)
	show()

	// Output:
	// temperature 24.0 °C, humidity 60.0 %RH
	// temperature 40.0 °C, humidity 60.0 %RH
	// temperature 20.0 °C, humidity 60.0 %RH
}
