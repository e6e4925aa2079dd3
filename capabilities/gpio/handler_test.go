package gpio_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/gpio"
	"github.com/trellis-edge/trellis/capabilities/gpio/gpiosim"
)

type invocation struct {
	actor, op string
	ev        gpio.Event
}

func TestHandler(t *testing.T) {
	sim, err := gpiosim.New([]string{"GPIO17", "GPIO27"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	got := make(chan invocation, 16)
	h := gpio.NewHandler(sim, func(_ context.Context, actor, op string, payload []byte) error {
		var ev gpio.Event
		if err := msgpack.Unmarshal(payload, &ev); err != nil {
			t.Errorf("edge payload: %v", err)
		}
		got <- invocation{actor, op, ev}
		return nil
	})
	defer h.Close()
	grants := capabilities.Grants{GPIO: []capabilities.GPIOGrant{{Line: "GPIO17", Direction: capabilities.DirOut}, {Line: "GPIO27", Direction: capabilities.DirIn}}}
	do := func(actor, op string, req any, g capabilities.Grants) ([]byte, error) {
		payload, err := msgpack.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		return h.Handle(context.Background(), capabilities.Call{Actor: actor, Contract: capabilities.GPIO, Operation: op, Payload: payload, Grants: g})
	}

	// Write a granted output; the simulated pin shows it.
	if _, err := do("thermo", gpio.OpWrite, gpio.WriteRequest{Line: "GPIO17", Level: gpio.High}, grants); err != nil {
		t.Fatal(err)
	}
	if l, _ := sim.Get("GPIO17"); l != gpio.High {
		t.Fatalf("GPIO17 is %v after the write", l)
	}
	// Writing an input-only line, or a line not granted, never touches the pin.
	if _, err := do("thermo", gpio.OpWrite, gpio.WriteRequest{Line: "GPIO27", Level: gpio.High}, grants); !errors.Is(err, capabilities.ErrDenied) {
		t.Fatalf("write to an input grant: %v", err)
	}
	if _, err := do("other", gpio.OpWrite, gpio.WriteRequest{Line: "GPIO17", Level: gpio.Low}, capabilities.Grants{}); !errors.Is(err, capabilities.ErrDenied) {
		t.Fatalf("write without a grant: %v", err)
	}
	if l, _ := sim.Get("GPIO17"); l != gpio.High {
		t.Fatal("a denied write changed the pin")
	}
	// Watch: an edge on the simulated input invokes the actor.
	if _, err := do("thermo", gpio.OpWatch, gpio.WatchRequest{Line: "GPIO27", Edge: gpio.EdgeRising, Operation: "OnButton"}, grants); err != nil {
		t.Fatal(err)
	}
	if err := sim.Set("GPIO27", gpio.High); err != nil {
		t.Fatal(err)
	}
	select {
	case inv := <-got:
		if inv.actor != "thermo" || inv.op != "OnButton" || inv.ev.Line != "GPIO27" || inv.ev.Level != gpio.High {
			t.Fatalf("edge delivered as %+v", inv)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the edge never reached the actor")
	}
	// After the actor's watches stop, edges no longer reach it.
	h.StopWatches("thermo")
	_ = sim.Set("GPIO27", gpio.Low)
	_ = sim.Set("GPIO27", gpio.High)
	select {
	case inv := <-got:
		t.Fatalf("an edge after StopWatches reached the actor: %+v", inv)
	case <-time.After(50 * time.Millisecond):
	}
	// Garbage and unknown operations.
	if _, err := h.Handle(context.Background(), capabilities.Call{Actor: "thermo", Operation: gpio.OpRead, Payload: []byte{0xc1}, Grants: grants}); !errors.Is(err, capabilities.ErrBadPayload) {
		t.Fatalf("garbage: %v", err)
	}
	trailing, _ := msgpack.Marshal(gpio.ReadRequest{Line: "GPIO17"})
	if _, err := h.Handle(context.Background(), capabilities.Call{Actor: "thermo", Operation: gpio.OpRead, Payload: append(trailing, 0), Grants: grants}); !errors.Is(err, capabilities.ErrBadPayload) {
		t.Fatalf("trailing bytes: %v", err)
	}
	if _, err := do("thermo", "Explode", gpio.ReadRequest{Line: "GPIO17"}, grants); !errors.Is(err, capabilities.ErrUnknownOperation) {
		t.Fatalf("unknown op: %v", err)
	}
}

func TestHandlerProviderSwap(t *testing.T) {
	a, _ := gpiosim.New([]string{"GPIO17"}, nil)
	b, _ := gpiosim.New([]string{"GPIO17"}, nil)
	defer a.Close()
	defer b.Close()
	h := gpio.NewHandler(a, nil)
	defer h.Close()
	grants := capabilities.Grants{GPIO: []capabilities.GPIOGrant{{Line: "GPIO17", Direction: capabilities.DirOut}}}
	write := func(l gpio.Level) error {
		payload, _ := msgpack.Marshal(gpio.WriteRequest{Line: "GPIO17", Level: l})
		_, err := h.Handle(context.Background(), capabilities.Call{Actor: "x", Operation: gpio.OpWrite, Payload: payload, Grants: grants})
		return err
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				if err := write(gpio.High); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	h.SetProvider(b)
	wg.Wait()
	if err := write(gpio.Low); err != nil {
		t.Fatal(err)
	}
	if l, _ := b.Get("GPIO17"); l != gpio.Low {
		t.Fatal("after the swap, writes do not reach the new provider")
	}
}

// A provider swap moves an actor's watches to the new provider's line of
// the same name, so the actor keeps getting edges without registering
// again; a line the new provider lacks is reported as lost.
func TestHandlerProviderSwapMovesWatches(t *testing.T) {
	// Each provider stamps its edges with its own clock, so a delivery says
	// which provider it came from.
	stamp := func(sec int64) *gpiosim.Options {
		return &gpiosim.Options{Now: func() time.Time { return time.Unix(sec, 0) }}
	}
	a, _ := gpiosim.New([]string{"BUTTON"}, stamp(1))
	b, _ := gpiosim.New([]string{"BUTTON"}, stamp(2))
	c, _ := gpiosim.New([]string{"OTHER"}, stamp(3))
	for _, p := range []*gpiosim.Provider{a, b, c} {
		defer p.Close()
	}
	got := make(chan string, 16)
	h := gpio.NewHandler(a, func(_ context.Context, actor, op string, payload []byte) error {
		var ev gpio.Event
		if err := msgpack.Unmarshal(payload, &ev); err != nil {
			t.Errorf("edge payload: %v", err)
		}
		got <- fmt.Sprintf("%s/%s@%d", actor, op, ev.Time.Unix())
		return nil
	})
	defer h.Close()
	grants := capabilities.Grants{GPIO: []capabilities.GPIOGrant{{Line: "BUTTON", Direction: capabilities.DirIn}}}
	payload, _ := msgpack.Marshal(gpio.WatchRequest{Line: "BUTTON", Edge: gpio.EdgeBoth, Operation: "OnButton"})
	if _, err := h.Handle(context.Background(), capabilities.Call{Actor: "panel", Operation: gpio.OpWatch, Payload: payload, Grants: grants}); err != nil {
		t.Fatal(err)
	}
	if lost := h.SetProvider(b); lost != nil {
		t.Fatalf("swap to a provider with the line lost watches: %v", lost)
	}
	if err := a.Set("BUTTON", gpio.High); err != nil { // the old provider: nobody listens
		t.Fatal(err)
	}
	if err := b.Set("BUTTON", gpio.High); err != nil {
		t.Fatal(err)
	}
	select {
	case inv := <-got:
		if inv != "panel/OnButton@2" {
			t.Fatalf("edge delivered as %s, want panel/OnButton@2 (from the new provider)", inv)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an edge on the new provider never reached the actor")
	}
	select {
	case inv := <-got:
		t.Fatalf("a second delivery (%s): the old provider's watch is still live", inv)
	default:
	}
	lost := h.SetProvider(c)
	if len(lost["panel"]) != 1 {
		t.Fatalf("swap to a provider without the line: lost = %v, want panel's one watch", lost)
	}
}

// Narrowed grants end the watches they no longer cover (Bind); Unbind ends
// the rest.
func TestHandlerBindEndsWatchesOutsideGrants(t *testing.T) {
	sim, _ := gpiosim.New([]string{"A", "B"}, nil)
	defer sim.Close()
	h := gpio.NewHandler(sim, func(context.Context, string, string, []byte) error { return nil })
	defer h.Close()
	both := capabilities.Grants{GPIO: []capabilities.GPIOGrant{{Line: "A", Direction: capabilities.DirIn}, {Line: "B", Direction: capabilities.DirIn}}}
	for _, line := range []string{"A", "B"} {
		payload, _ := msgpack.Marshal(gpio.WatchRequest{Line: line, Edge: gpio.EdgeBoth, Operation: "On"})
		if _, err := h.Handle(context.Background(), capabilities.Call{Actor: "x", Operation: gpio.OpWatch, Payload: payload, Grants: both}); err != nil {
			t.Fatal(err)
		}
	}
	watches := func(line string) int {
		st, _ := sim.State(line)
		return st.Watches
	}
	if err := h.Bind("x", capabilities.Grants{GPIO: both.GPIO[:1]}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for watches("B") != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if watches("A") != 1 || watches("B") != 0 {
		t.Fatalf("after narrowing to A: watches A=%d B=%d, want 1 and 0", watches("A"), watches("B"))
	}
	h.Unbind("x")
	for watches("A") != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if watches("A") != 0 {
		t.Fatal("Unbind left a watch")
	}
}
