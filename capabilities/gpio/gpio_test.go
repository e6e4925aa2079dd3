package gpio_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/gpio"
)

func TestParseLevel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want gpio.Level
		ok   bool
	}{
		{"high", gpio.High, true},
		{"HIGH", gpio.High, true},
		{"1", gpio.High, true},
		{"low", gpio.Low, true},
		{"0", gpio.Low, true},
		{"", gpio.Low, false},
		{"2", gpio.Low, false},
		{"on", gpio.Low, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := gpio.ParseLevel(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseLevel(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
			if tc.ok {
				if back, _ := gpio.ParseLevel(got.String()); back != got {
					t.Errorf("ParseLevel(%q.String()) = %v", got, back)
				}
			}
		})
	}
}

func TestEdge(t *testing.T) {
	for _, tc := range []struct {
		edge          gpio.Edge
		name          string
		valid         bool
		rising, fallg bool
	}{
		{gpio.EdgeRising, "rising", true, true, false},
		{gpio.EdgeFalling, "falling", true, false, true},
		{gpio.EdgeBoth, "both", true, true, true},
		{0, "Edge(0)", false, false, false},
		{4, "Edge(4)", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.edge.String(); got != tc.name {
				t.Errorf("String() = %q, want %q", got, tc.name)
			}
			if got := tc.edge.Valid(); got != tc.valid {
				t.Errorf("Valid() = %v, want %v", got, tc.valid)
			}
			if got := tc.edge.Includes(gpio.High); got != tc.rising {
				t.Errorf("Includes(High) = %v, want %v", got, tc.rising)
			}
			if got := tc.edge.Includes(gpio.Low); got != tc.fallg {
				t.Errorf("Includes(Low) = %v, want %v", got, tc.fallg)
			}
			e, err := gpio.ParseEdge(tc.name)
			if tc.valid && (err != nil || e != tc.edge) {
				t.Errorf("ParseEdge(%q) = %v, %v", tc.name, e, err)
			}
			if !tc.valid && err == nil {
				t.Errorf("ParseEdge(%q) = %v, want an error", tc.name, e)
			}
		})
	}
}

func TestDutyAndHertzValid(t *testing.T) {
	for _, tc := range []struct {
		d    gpio.Duty
		want bool
	}{{0, true}, {0.5, true}, {1, true}, {-0.01, false}, {1.01, false}, {gpio.Duty(math.NaN()), false}} {
		if got := tc.d.Valid(); got != tc.want {
			t.Errorf("Duty(%v).Valid() = %v, want %v", tc.d, got, tc.want)
		}
	}
	for _, tc := range []struct {
		f    gpio.Hertz
		want bool
	}{
		{1000, true}, {0.5, true}, {gpio.MaxFreq, true}, {0, false}, {-1, false},
		{gpio.MaxFreq * 2, false}, {gpio.Hertz(math.Inf(1)), false}, {gpio.Hertz(math.NaN()), false},
	} {
		if got := tc.f.Valid(); got != tc.want {
			t.Errorf("Hertz(%v).Valid() = %v, want %v", tc.f, got, tc.want)
		}
	}
}

func TestUnknownLineError(t *testing.T) {
	many := make([]string, 20)
	for i := range many {
		many[i] = fmt.Sprintf("GPIO%d", i)
	}
	for _, tc := range []struct {
		name  string
		lines []string
		want  []string // substrings of the message
	}{
		{"none", nil, []string{`"GPIO99"`, "no lines"}},
		{"few", []string{"GPIO17", "GPIO27"}, []string{`"GPIO99"`, "GPIO17, GPIO27"}},
		{"many", many, []string{`"GPIO99"`, "GPIO0, GPIO1", "GPIO15, and 4 more"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error = &gpio.UnknownLineError{Name: "GPIO99", Lines: tc.lines}
			if !errors.Is(err, gpio.ErrUnknownLine) {
				t.Fatalf("errors.Is(%v, ErrUnknownLine) = false", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not contain %q", err, w)
				}
			}
		})
	}
	if !errors.Is(gpio.ErrUnavailable, capabilities.ErrUnavailable) {
		t.Error("ErrUnavailable is not capabilities.ErrUnavailable")
	}
}
