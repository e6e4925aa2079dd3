package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/trellis-edge/trellis/mesh"
)

// deviceFlags are the flags every device command shares: the connection,
// the host, and the output format.
type deviceFlags struct {
	conn    connFlags
	hostSel string
	output  string
}

func (f *deviceFlags) add(cmd *cobra.Command, output bool) {
	f.conn.add(cmd)
	cmd.Flags().StringVar(&f.hostSel, "host", "", "the host (id, id prefix or name); may be left out when the lattice has one host")
	if output {
		cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	}
}

// request sends a device control request to the chosen host and decodes
// the response into resp (if not nil).
func (f *deviceFlags) request(ctx context.Context, op string, req, resp any) error {
	if f.output != "" && f.output != "table" && f.output != "json" {
		return withCode(exitUsage, fmt.Errorf("-o %q: want table or json", f.output))
	}
	nc, err := f.conn.connect("trellis")
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, f.conn.timeout)
	defer cancel()
	id, err := pickHost(ctx, nc, f.conn.lattice, f.hostSel)
	if err != nil {
		return err
	}
	if err := mesh.ControlRequest(ctx, nc, mesh.HostCtlSubject(f.conn.lattice, id, op), req, resp); err != nil {
		return withCode(exitError, err)
	}
	return nil
}

// pickHost resolves --host, or takes the only host of the lattice.
func pickHost(ctx context.Context, nc *nats.Conn, lattice, sel string) (string, error) {
	if sel != "" {
		return resolveHost(ctx, nc, lattice, sel)
	}
	invs, err := mesh.Ping(ctx, nc, lattice, 300*time.Millisecond)
	if err != nil {
		return "", withCode(exitError, err)
	}
	switch len(invs) {
	case 0:
		return "", withCode(exitError, fmt.Errorf("no host answered on lattice %s", lattice))
	case 1:
		return invs[0].Host.ID, nil
	}
	var names []string
	for _, inv := range invs {
		names = append(names, inv.Host.Name)
	}
	slices.Sort(names)
	return "", withCode(exitUsage, fmt.Errorf("the lattice has %d hosts (%s): choose one with --host", len(invs), strings.Join(names, ", ")))
}

func newGPIOCmd(io *streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gpio get|set|watch",
		Short: "Look at and drive a host's GPIO lines (simulated lines can be set)",
		Long: `The gpio commands show a host's GPIO lines and, when the host's provider is the
simulated one (devices: {gpio: {provider: sim}}), drive its input lines from outside,
as a button or a sensor wired to the line would. Lines that actors drive (outputs)
can be looked at, not set.`,
	}
	var f deviceFlags
	state := func(cmd *cobra.Command) (mesh.DeviceState, error) {
		var st mesh.DeviceState
		err := f.request(cmd.Context(), mesh.CtlDeviceGet, nil, &st)
		return st, err
	}
	get := &cobra.Command{
		Use:     "get [LINE...]",
		Short:   "Show lines: level, direction, PWM and watches",
		Example: "  trellis gpio get\n  trellis gpio get RELAY -o json",
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := state(cmd)
			if err != nil {
				return err
			}
			lines, err := selectLines(st.GPIO.Lines, args)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSON(io.stdout, lines)
			}
			tw := tabwriter.NewWriter(io.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "LINE\tLEVEL\tDIRECTION\tPWM\tWATCHES\t(provider %s)\n", st.GPIO.Provider)
			for _, l := range lines {
				pwm := "-"
				if l.PWM {
					pwm = fmt.Sprintf("%.0f%% @ %gHz", l.Duty*100, l.Freq)
				}
				level := levelWord(l.Level)
				if l.Error != "" {
					level = "error: " + l.Error
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t\n", l.Name, level, direction(l.Output), pwm, l.Watches)
			}
			return tw.Flush()
		},
	}
	set := &cobra.Command{
		Use:     "set LINE high|low",
		Short:   "Drive a simulated input line (an edge for actors watching it)",
		Example: "  trellis gpio set BUTTON high\n  trellis gpio set BUTTON 0",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			level, err := parseLevelArg(args[1])
			if err != nil {
				return err
			}
			if err := f.request(cmd.Context(), mesh.CtlDeviceGPIOSet, mesh.GPIOSet{Line: args[0], Level: level}, nil); err != nil {
				return err
			}
			fmt.Fprintf(io.stdout, "%s %s\n", args[0], levelWord(level))
			return nil
		},
	}
	var interval time.Duration
	watch := &cobra.Command{
		Use:   "watch [LINE...]",
		Short: "Print each change of level until interrupted",
		Long: `Watch asks the host for its lines every --interval and prints a line for each change
of level (with -o json, one JSON object per line), until Ctrl-C. It sees what actors
write as well as what is set from outside; changes faster than the interval are missed.`,
		Example: "  trellis gpio watch RELAY",
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval < 10*time.Millisecond {
				return withCode(exitUsage, fmt.Errorf("--interval %s: want at least 10ms", interval))
			}
			last := map[string]bool{}
			first := true
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				st, err := state(cmd)
				if err != nil {
					return err
				}
				lines, err := selectLines(st.GPIO.Lines, args)
				if err != nil {
					return err
				}
				now := time.Now()
				for _, l := range lines {
					if prev, seen := last[l.Name]; seen && prev == l.Level && !first {
						continue
					}
					last[l.Name] = l.Level
					if f.output == "json" {
						_ = writeJSONLine(io.stdout, map[string]any{"time": now.Format(time.RFC3339Nano), "line": l.Name, "level": l.Level, "output": l.Output})
					} else {
						fmt.Fprintf(io.stdout, "%s  %-12s %s\n", now.Format("15:04:05.000"), l.Name, levelWord(l.Level))
					}
				}
				first = false
				select {
				case <-cmd.Context().Done():
					return nil
				case <-tick.C:
				}
			}
		},
	}
	watch.Flags().DurationVar(&interval, "interval", 200*time.Millisecond, "how often to look")
	for _, c := range []*cobra.Command{get, set, watch} {
		f.add(c, c != set)
	}
	cmd.AddCommand(get, set, watch)
	return cmd
}

func newSensorCmd(io *streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sensor get|set|clear",
		Short: "List a host's sensors; override a simulated sensor's value",
	}
	var f deviceFlags
	get := &cobra.Command{
		Use: "get", Short: "List the host's sensors and their drivers", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var st mesh.DeviceState
			if err := f.request(cmd.Context(), mesh.CtlDeviceGet, nil, &st); err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSON(io.stdout, st.Sensors)
			}
			tw := tabwriter.NewWriter(io.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SENSOR\tDRIVER")
			for _, s := range st.Sensors {
				fmt.Fprintf(tw, "%s\t%s\n", s.Name, s.Driver)
			}
			return tw.Flush()
		},
	}
	set := &cobra.Command{
		Use:     "set SENSOR KIND VALUE",
		Short:   "Override a simulated sensor's channel (temperature °C, humidity %RH, pressure Pa)",
		Example: "  trellis sensor set room temperature 28.5",
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := strconv.ParseFloat(args[2], 64)
			if err != nil {
				return withCode(exitUsage, fmt.Errorf("VALUE %q: want a number", args[2]))
			}
			if err := f.request(cmd.Context(), mesh.CtlDeviceSensorSet, mesh.SensorSet{Sensor: args[0], Kind: args[1], Value: &v}, nil); err != nil {
				return err
			}
			fmt.Fprintf(io.stdout, "%s %s = %g\n", args[0], args[1], v)
			return nil
		},
	}
	clear := &cobra.Command{
		Use: "clear SENSOR KIND", Short: "Return a simulated sensor's channel to its waveform", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.request(cmd.Context(), mesh.CtlDeviceSensorSet, mesh.SensorSet{Sensor: args[0], Kind: args[1]}, nil); err != nil {
				return err
			}
			fmt.Fprintf(io.stdout, "%s %s follows its waveform\n", args[0], args[1])
			return nil
		},
	}
	for _, c := range []*cobra.Command{get, set, clear} {
		f.add(c, c == get)
	}
	cmd.AddCommand(get, set, clear)
	return cmd
}

func newDevicesCmd(io *streams) *cobra.Command {
	var f deviceFlags
	var file string
	cmd := &cobra.Command{
		Use:   "devices configure -f FILE",
		Short: "Swap a host's GPIO provider or sensors while its actors run",
		Long: `devices configure sends the devices section of an agent config (YAML, the same keys:
gpio: {provider, lines}, sensors: [...]) to a host. The parts the file sets replace the
host's; actors keep running, and their GPIO watches move to the new provider. It lasts
until the agent restarts or reloads its config: put it in the config file to keep it.`,
		Example: `  trellis devices configure -f devices.yaml --host pi-kitchen`,
	}
	configure := &cobra.Command{
		Use: "configure -f FILE", Short: cmd.Short, Long: cmd.Long, Example: cmd.Example, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return withCode(exitUsage, errors.New("-f FILE is required"))
			}
			b, err := os.ReadFile(file)
			if err != nil {
				return withCode(exitUsage, err)
			}
			var d mesh.Devices
			dec := yaml.NewDecoder(strings.NewReader(string(b)))
			dec.KnownFields(true)
			if err := dec.Decode(&d); err != nil {
				return withCode(exitUsage, fmt.Errorf("%s: %w", file, err))
			}
			if err := d.Validate(); err != nil {
				return withCode(exitUsage, fmt.Errorf("%s: %w", file, err))
			}
			var st mesh.DeviceState
			if err := f.request(cmd.Context(), mesh.CtlDeviceConfigure, d, &st); err != nil {
				return err
			}
			fmt.Fprintf(io.stdout, "configured: gpio %s (%d lines), %d sensors\n", st.GPIO.Provider, len(st.GPIO.Lines), len(st.Sensors))
			return nil
		},
	}
	f.add(configure, false)
	configure.Flags().StringVarP(&file, "file", "f", "", "YAML `FILE` with gpio and/or sensors")
	cmd.AddCommand(configure)
	return cmd
}

func selectLines(all []mesh.GPIOLine, names []string) ([]mesh.GPIOLine, error) {
	if len(names) == 0 {
		return all, nil
	}
	var out []mesh.GPIOLine
	for _, n := range names {
		i := slices.IndexFunc(all, func(l mesh.GPIOLine) bool { return l.Name == n })
		if i < 0 {
			var have []string
			for _, l := range all {
				have = append(have, l.Name)
			}
			return nil, withCode(exitError, fmt.Errorf("no line %q on this host (lines: %s)", n, strings.Join(have, ", ")))
		}
		out = append(out, all[i])
	}
	return out, nil
}

func parseLevelArg(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "high", "1", "on", "true":
		return true, nil
	case "low", "0", "off", "false":
		return false, nil
	}
	return false, withCode(exitUsage, fmt.Errorf("level %q: want high or low (1 or 0)", s))
}

func levelWord(high bool) string {
	if high {
		return "high"
	}
	return "low"
}

func direction(output bool) string {
	if output {
		return "out"
	}
	return "in"
}

// writeJSONLine writes v as one line of JSON (a stream of events).
func writeJSONLine(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }
