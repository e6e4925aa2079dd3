package timer_test

import (
	"time"

	"github.com/trellis-edge/trellis/sdk"
	"github.com/trellis-edge/trellis/sdk/timer"
)

// An actor sets a periodic timer on itself when asked to, and handles its
// ticks (the body of its init function).
func Example() {
	timer.HandleTicks("Tick", func(t timer.Tick) error {
		sdk.Info("tick " + t.Name + " at " + t.Time.Format(time.RFC3339))
		return nil
	})
	sdk.Handle("Start", func([]byte) ([]byte, error) {
		return nil, timer.Set(timer.Spec{Name: "tick", Operation: "Tick", Every: time.Minute})
	})
}
