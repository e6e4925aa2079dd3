package messaging_test

import (
	"time"

	"github.com/trellis-edge/trellis/sdk"
	"github.com/trellis-edge/trellis/sdk/messaging"
)

// An actor answers pings on a subscription bound in its grants, and asks
// another service for the time (the body of its init function).
func Example() {
	messaging.HandleMessage("Ping", func(m messaging.Message) ([]byte, error) {
		return append([]byte("pong: "), m.Body...), nil
	})
	sdk.Handle("Clock", func([]byte) ([]byte, error) {
		reply, err := messaging.Request("clock.now", nil, time.Second)
		if err != nil {
			return nil, err
		}
		return reply.Body, nil
	})
}
