package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-edge/trellis/agent"
	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/mesh"
)

// devActors are the example actors `trellis dev` runs, relative to the
// repository root (where `make run` starts it). Those with an op are shown
// with a `trellis call`; the others are tried over HTTP, NATS and the
// simulated devices.
var devActors = []struct {
	name, path, op, payload string
	grants                  func(ingress string) capabilities.Grants
}{
	{"echo", "examples/actors/echo/echo.wasm", "echo", "hello", nil},
	{"hello", "examples/actors/hello-as/hello.wasm", "hello", "world", nil},
	{"kvcounter", "examples/actors/kvcounter/kvcounter.wasm", "", "", func(ingress string) capabilities.Grants {
		return capabilities.Grants{KV: true, HTTP: []capabilities.HTTPGrant{{Listen: ingress, PathPrefix: "/api/counter/"}}}
	}},
	{"thermostat", "examples/actors/thermostat/thermostat.wasm", "", "", func(ingress string) capabilities.Grants {
		return capabilities.Grants{
			Sensors:       []string{"room"},
			GPIO:          []capabilities.GPIOGrant{{Line: "RELAY", Direction: capabilities.DirOut}},
			KV:            true,
			Subscribe:     []string{"thermostat.setpoint"},
			Subscriptions: []capabilities.Subscription{{Subject: "thermostat.setpoint", Operation: "SetSetpoint"}},
			Telemetry:     []string{"temperature"},
			HTTP:          []capabilities.HTTPGrant{{Listen: ingress, PathPrefix: "/thermostat/"}},
			Schedule:      []capabilities.ScheduleEntry{{Name: "tick", Every: capabilities.Duration(5 * time.Second), Operation: "Tick"}},
		}
	}},
}

// devDevices are the simulated devices of `trellis dev`: a relay and a
// button, and a room whose temperature drifts around 20 °C.
var devDevices = mesh.Devices{
	GPIO: &mesh.GPIOConfig{Provider: mesh.GPIOSim, Lines: []string{"RELAY", "BUTTON"}},
	Sensors: []mesh.SensorConfig{{Name: "room", Driver: mesh.SensorSim, Channels: map[string]mesh.WaveConfig{
		"temperature": {Wave: "sine", Offset: 20, Amplitude: 2, Period: mesh.Duration(10 * time.Minute)},
		"humidity":    {Wave: "constant", Value: 45},
	}}},
}

func newDevCmd(io *streams, logLevel *string) *cobra.Command {
	var data, listen, ingress string
	var extra []string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a hub, an agent and the example actors in one process",
		Long: `Dev starts a development hub and one agent joined to it as a leaf node, all on
127.0.0.1, with the example actors on simulated devices, and prints what to try. Ctrl-C
stops everything. The device bus listens on --listen (port 0 picks a free port; the real
address is printed); the hub uses free ports.

The actors: echo and hello (call them), kvcounter (GET /api/counter/NAME on --http) and
thermostat (reads the simulated sensor "room" every 5 s, switches the simulated line
RELAY, takes its setpoint from thermostat.setpoint messages or PUT /thermostat/setpoint,
publishes telemetry). Drive the devices with trellis gpio and trellis sensor.`,
		Example: `  trellis dev
  trellis dev --listen 127.0.0.1:0 --http 127.0.0.1:0 --data /tmp/trellis-dev`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(io.stderr, *logLevel)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			hub, err := startHub(ctx, filepath.Join(data, "hub"), "127.0.0.1:0", "127.0.0.1:0", nil, log.With("subsystem", "hub"))
			if err != nil {
				return withCode(exitError, err)
			}
			defer func() {
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				hub.Shutdown(sctx)
			}()
			cfg := agent.Config{
				DataDir:  filepath.Join(data, "agent"),
				Listen:   listen,
				Hubs:     []string{hub.LeafURL()},
				Name:     "dev",
				Labels:   map[string]string{"env": "dev"},
				HTTPAddr: "127.0.0.1:0",
				Devices:  devDevices,
			}
			var running []string
			for _, a := range devActors {
				if _, err := os.Stat(a.path); err == nil {
					ac := agent.ActorConfig{Name: a.name, Module: a.path}
					if a.grants != nil {
						ac.Grants = a.grants(ingress)
					}
					cfg.Actors = append(cfg.Actors, ac)
					running = append(running, a.name)
				} else {
					log.Warn("example actor not found; run trellis dev from the repository root", "actor", a.name, "path", a.path)
				}
			}
			for _, spec := range extra {
				f := agentFlags{actors: []string{spec}}
				c, err := f.resolve(cmd)
				if err != nil {
					return err
				}
				cfg.Actors = append(cfg.Actors, c.Actors...)
			}
			var a *agent.Agent
			a, err = agent.New(cfg, agent.Options{
				Version: version,
				Logger:  log,
				Ready: func(url, hostID string) {
					fmt.Fprintf(io.stdout, "Trellis dev is running (Ctrl-C to stop)\n")
					fmt.Fprintf(io.stdout, "  device bus  %s   (host %s)\n", url, shortID(hostID))
					fmt.Fprintf(io.stdout, "  hub         %s, leaf nodes %s\n", hub.ClientURL(), hub.LeafURL())
					fmt.Fprintf(io.stdout, "  data        %s\n\nTry:\n", data)
					for _, d := range devActors {
						if d.op != "" && slices.Contains(running, d.name) {
							fmt.Fprintf(io.stdout, "  trellis call --server %s %s %s %s\n", url, d.name, d.op, d.payload)
						}
					}
					routes := map[string]string{}
					for _, r := range a.HTTPRoutes() {
						routes[r.Actor] = "http://" + r.Addr
					}
					if base, ok := routes["kvcounter"]; ok {
						fmt.Fprintf(io.stdout, "  curl %s/api/counter/demo              # counts, kept in the store\n", base)
					}
					if base, ok := routes["thermostat"]; ok {
						fmt.Fprintf(io.stdout, "  curl %s/thermostat/                   # temperature, setpoint, relay\n", base)
						fmt.Fprintf(io.stdout, "  curl -X PUT -d 23 %s/thermostat/setpoint\n", base)
						fmt.Fprintf(io.stdout, "  nats pub --server %s thermostat.setpoint 18\n", url)
						fmt.Fprintf(io.stdout, "  trellis sensor set room temperature 15 --server %s   # the relay switches on\n", url)
						fmt.Fprintf(io.stdout, "  trellis gpio watch RELAY --server %s\n", url)
						fmt.Fprintf(io.stdout, "  nats sub --server %s 'trellis.*.tm.>'     # telemetry\n", url)
					}
					fmt.Fprintf(io.stdout, "  trellis get hosts --server %s\n  trellis get actors --server %s\n", url, url)
					fmt.Fprintf(io.stdout, "  nats micro ls --server %s\n", url)
				},
			})
			if err != nil {
				return withCode(exitUsage, err)
			}
			if err := a.Run(ctx); err != nil {
				return withCode(exitError, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "./.trellis", "data `DIR` for the hub and the agent")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:4222", "device bus address (port 0 picks a free port)")
	cmd.Flags().StringVar(&ingress, "http", "127.0.0.1:8080", "address of the example actors' HTTP routes (port 0: a free port per route)")
	cmd.Flags().StringArrayVar(&extra, "actor", nil, "also run actor `NAME=PATH.wasm` (repeatable)")
	return cmd
}
