package gpio_test

import (
	"github.com/trellis-edge/trellis/sdk"
	"github.com/trellis-edge/trellis/sdk/gpio"
)

// An actor lights a LED while a button is pressed (the body of its init
// function). Grants: gpio: [{line: BUTTON, direction: in}, {line: LED,
// direction: out}].
func Example() {
	gpio.HandleEdges("Button", func(e gpio.Event) error {
		return gpio.Write("LED", e.Level)
	})
	sdk.Handle("Start", func([]byte) ([]byte, error) {
		return nil, gpio.Watch("BUTTON", gpio.Both, "Button")
	})
}
