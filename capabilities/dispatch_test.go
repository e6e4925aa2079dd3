package capabilities

import (
	"context"
	"errors"
	"testing"
)

type okHandler struct{}

func (okHandler) Handle(context.Context, Call) ([]byte, error) { return []byte("ok"), nil }

// A signed actor's claims restrict it on top of its grants; compatibility
// names count for their native contract; log and numbergen are free.
func TestDispatchClaims(t *testing.T) {
	d := NewDispatcher(DispatcherOptions{})
	for _, ns := range []string{KV, "wasmcloud:keyvalue", Sensor, Numbergen} {
		d.Register(ns, okHandler{})
	}
	if err := d.SetGrants("a", Grants{KV: true, Sensors: []string{"room"}}); err != nil {
		t.Fatal(err)
	}
	call := func(ns string) error {
		_, err := d.Dispatch(context.Background(), Call{Actor: "a", Contract: ns, Operation: "X"})
		return err
	}
	d.SetClaims("a", []string{"wasmcloud:keyvalue"})
	for ns, want := range map[string]bool{KV: true, "wasmcloud:keyvalue": true, Sensor: false, Numbergen: true} {
		if err := call(ns); (err == nil) != want || err != nil && !errors.Is(err, ErrDenied) {
			t.Errorf("%s with claims [wasmcloud:keyvalue]: %v, want allowed=%v", ns, err, want)
		}
	}
	d.SetClaims("a", []string{}) // signed, no caps: only the free contracts
	if err := call(KV); !errors.Is(err, ErrDenied) {
		t.Errorf("kv with empty claims: %v", err)
	}
	d.SetClaims("a", nil) // unsigned: the grants alone decide
	if err := call(Sensor); err != nil {
		t.Errorf("sensor, unsigned: %v", err)
	}
	if got := d.Stats().Denied; got != 2 {
		t.Errorf("denied %d calls, want 2", got)
	}
}
