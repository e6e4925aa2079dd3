//go:build !wasip1

package telemetry_test

import (
	"errors"
	"testing"

	"github.com/trellis-edge/trellis/sdk/internal/calltest"
	"github.com/trellis-edge/trellis/sdk/telemetry"
)

func TestPublish(t *testing.T) {
	calltest.Run(t, telemetry.Namespace, []calltest.Case{
		{
			Name:    "publish",
			Call:    func() (any, error) { return nil, telemetry.Publish("temperature", []byte("{}")) },
			Op:      "Publish",
			Payload: "82a5746f706963ab74656d7065726174757265a4626f6479c4027b7d", // {topic: str, body: bin}
		},
		{
			Name:      "denied",
			Call:      func() (any, error) { return nil, telemetry.Publish("temperature", []byte("{}")) },
			AnswerErr: errors.New(`denied: actor a may not publish telemetry topic "temperature"`),
			Op:        "Publish",
			Payload:   "82a5746f706963ab74656d7065726174757265a4626f6479c4027b7d",
			WantErr:   "sdk: host call trellis:telemetry/Publish: denied",
		},
	})
}
