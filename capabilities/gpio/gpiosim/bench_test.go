package gpiosim_test

import (
	"testing"

	"github.com/trellis-edge/trellis/capabilities/gpio"
	"github.com/trellis-edge/trellis/capabilities/gpio/gpiosim"
)

// BenchmarkEdgeToCallback measures one edge end to end: Set on an input
// line until the watch's callback has run (ns/op is that latency, including
// the hand-off to the provider's delivery goroutine).
func BenchmarkEdgeToCallback(b *testing.B) {
	p, err := gpiosim.New([]string{"GPIO17"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	l, err := p.Line("GPIO17")
	if err != nil {
		b.Fatal(err)
	}
	called := make(chan struct{}, 1)
	if err := l.Watch(b.Context(), gpio.EdgeBoth, func(gpio.Event) { called <- struct{}{} }); err != nil {
		b.Fatal(err)
	}
	level := gpio.Low
	b.ReportAllocs()
	for b.Loop() {
		level = !level
		if err := p.Set("GPIO17", level); err != nil {
			b.Fatal(err)
		}
		<-called
	}
}
