package periphhost

import (
	"fmt"
	"strings"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/onewire/onewirereg"
)

// OpenI2C initialises periph's host drivers and opens the I²C bus name
// ("1" for /dev/i2c-1; "" for the first bus). A bus periph does not know
// is an error listing the buses it does.
func OpenI2C(name string) (i2c.BusCloser, error) {
	if _, err := Init(); err != nil {
		return nil, err
	}
	bus, err := i2creg.Open(name)
	if err != nil {
		var names []string
		for _, r := range i2creg.All() {
			names = append(names, r.Name)
		}
		return nil, fmt.Errorf("periphhost: i2c bus %q: %w (buses: %s)", name, err, listOrNone(names))
	}
	return bus, nil
}

// OpenOneWire initialises periph's host drivers and opens the 1-Wire bus
// name ("" for the first bus; on Linux the w1 netlink masters). A bus
// periph does not know is an error listing the buses it does.
func OpenOneWire(name string) (onewire.BusCloser, error) {
	if _, err := Init(); err != nil {
		return nil, err
	}
	bus, err := onewirereg.Open(name)
	if err != nil {
		var names []string
		for _, r := range onewirereg.All() {
			names = append(names, r.Name)
		}
		return nil, fmt.Errorf("periphhost: 1-wire bus %q: %w (buses: %s)", name, err, listOrNone(names))
	}
	return bus, nil
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none found"
	}
	return strings.Join(names, ", ")
}
