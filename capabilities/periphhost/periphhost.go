// Package periphhost is the only package that imports periph.io/x/host and
// calls host.Init(). It loads periph's host drivers, reports which loaded,
// were skipped or failed, and serves the trellis:gpio contract from the
// pins those drivers registered.
//
// periph keeps process-global registries (driverreg, gpioreg) filled by its
// packages' init functions; they stay behind this package. Only the agent's
// composition root imports it, to build the real GPIO provider on a device.
package periphhost

import (
	"fmt"
	"slices"
	"strings"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/host/v3"
)

// DriverStatus is a driver that did not load, and why.
type DriverStatus struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Report is what periph's host drivers did at Init: the drivers that loaded,
// the ones skipped because their hardware is absent (every one of them on a
// machine that is not a single-board computer), and the ones that failed.
type Report struct {
	Loaded  []string       `json:"loaded"`
	Skipped []DriverStatus `json:"skipped"`
	Failed  []DriverStatus `json:"failed"`
}

// String lists the drivers, one group per line, like periph's own tools.
func (r Report) String() string {
	var b strings.Builder
	b.WriteString("loaded: ")
	b.WriteString(strings.Join(r.Loaded, ", "))
	for _, g := range []struct {
		name string
		ds   []DriverStatus
	}{{"skipped", r.Skipped}, {"failed", r.Failed}} {
		b.WriteString("\n")
		b.WriteString(g.name)
		b.WriteString(":")
		for _, d := range g.ds {
			b.WriteString("\n  ")
			b.WriteString(d.Name)
			b.WriteString(": ")
			b.WriteString(d.Reason)
		}
	}
	return b.String()
}

// Init loads periph's host drivers, once per process (later calls return
// the first result), and reports what they did. A machine without GPIO
// hardware is not an error: every driver is skipped and no pin exists.
func Init() (Report, error) {
	state, err := host.Init()
	if err != nil {
		return Report{}, fmt.Errorf("periphhost: init: %w", err)
	}
	return reportOf(state), nil
}

func reportOf(s *driverreg.State) Report {
	r := Report{Loaded: make([]string, 0, len(s.Loaded))}
	for _, d := range s.Loaded {
		r.Loaded = append(r.Loaded, d.String())
	}
	status := func(fs []driverreg.DriverFailure) []DriverStatus {
		out := make([]DriverStatus, 0, len(fs))
		for _, f := range fs {
			reason := "<nil>"
			if f.Err != nil {
				reason = f.Err.Error()
			}
			out = append(out, DriverStatus{Name: f.D.String(), Reason: reason})
		}
		return out
	}
	r.Skipped, r.Failed = status(s.Skipped), status(s.Failed)
	slices.Sort(r.Loaded)
	return r
}
