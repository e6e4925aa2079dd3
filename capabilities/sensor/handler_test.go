package sensor_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/sensor"
	"github.com/trellis-edge/trellis/capabilities/sensor/sensorsim"
)

// blocked is a sensor whose read never completes on its own.
type blocked struct{}

func (blocked) Read(ctx context.Context) ([]sensor.Measurement, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestHandler(t *testing.T) {
	now := time.Unix(1700000000, 0)
	room, err := sensorsim.New("room", []sensorsim.Channel{{Kind: sensor.Temperature, Wave: sensorsim.Constant(21.5)}}, sensorsim.Opts{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	h := sensor.NewHandler(map[string]sensor.Reader{"room": room, "stuck": blocked{}})
	read := func(ctx context.Context, name string, grants capabilities.Grants) (sensor.ReadResponse, error) {
		payload, err := sensor.EncodeReadRequest(sensor.ReadRequest{Sensor: name})
		if err != nil {
			t.Fatal(err)
		}
		out, err := h.Handle(ctx, capabilities.Call{Actor: "thermo", Contract: capabilities.Sensor, Operation: sensor.OpRead, Payload: payload, Grants: grants})
		if err != nil {
			return sensor.ReadResponse{}, err
		}
		return sensor.DecodeReadResponse(out)
	}
	granted := capabilities.Grants{Sensors: []string{"room", "stuck", "gone"}}
	resp, err := read(context.Background(), "room", granted)
	if err != nil || len(resp.Measurements) != 1 || resp.Measurements[0].Value != 21.5 {
		t.Fatalf("read: %+v, %v", resp, err)
	}
	if _, err := read(context.Background(), "room", capabilities.Grants{Sensors: []string{"other"}}); !errors.Is(err, capabilities.ErrDenied) {
		t.Fatalf("ungranted sensor: %v", err)
	}
	if _, err := read(context.Background(), "gone", granted); !errors.Is(err, capabilities.ErrUnavailable) {
		t.Fatalf("missing sensor: %v", err)
	}
	// A blocked read ends with the call's deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := read(ctx, "stuck", granted); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blocked read: %v", err)
	}
	// Swap the provider of "room" while the handler serves.
	room.Set(sensor.Temperature, 30)
	h.Set("room", room)
	if resp, err := read(context.Background(), "room", granted); err != nil || resp.Measurements[0].Value != 30 {
		t.Fatalf("after the swap: %+v, %v", resp, err)
	}
	if _, err := h.Handle(context.Background(), capabilities.Call{Operation: "Write", Grants: granted}); !errors.Is(err, capabilities.ErrUnknownOperation) {
		t.Fatalf("unknown op: %v", err)
	}
}
