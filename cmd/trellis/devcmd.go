package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-edge/trellis/agent"
)

// devActors are the example actors `trellis dev` runs, relative to the
// repository root (where `make run` starts it).
var devActors = []struct{ name, path, op, payload string }{
	{"echo", "examples/actors/echo/echo.wasm", "echo", "hello"},
	{"hello", "examples/actors/hello-as/hello.wasm", "hello", "world"},
}

func newDevCmd(io *streams, logLevel *string) *cobra.Command {
	var data, listen string
	var extra []string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a hub, an agent and the example actors in one process",
		Long: `Dev starts a development hub and one agent joined to it as a leaf node, all on
127.0.0.1, with the example actors, and prints how to call them. Ctrl-C stops everything.
The device bus listens on --listen (port 0 picks a free port; the real address is printed);
the hub uses free ports.`,
		Example: `  trellis dev
  trellis dev --listen 127.0.0.1:0 --data /tmp/trellis-dev`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(io.stderr, *logLevel)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			hub, err := startHub(ctx, filepath.Join(data, "hub"), "127.0.0.1:0", "127.0.0.1:0", log.With("subsystem", "hub"))
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
			}
			var running []string
			for _, a := range devActors {
				if _, err := os.Stat(a.path); err == nil {
					cfg.Actors = append(cfg.Actors, agent.ActorConfig{Name: a.name, Module: a.path})
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
			a, err := agent.New(cfg, agent.Options{
				Version: version,
				Logger:  log,
				Ready: func(url, hostID string) {
					fmt.Fprintf(io.stdout, "Trellis dev is running (Ctrl-C to stop)\n")
					fmt.Fprintf(io.stdout, "  device bus  %s   (host %s)\n", url, shortID(hostID))
					fmt.Fprintf(io.stdout, "  hub         %s, leaf nodes %s\n", hub.ClientURL(), hub.LeafURL())
					fmt.Fprintf(io.stdout, "  data        %s\n\nTry:\n", data)
					for _, d := range devActors {
						for _, r := range running {
							if r == d.name {
								fmt.Fprintf(io.stdout, "  trellis call --server %s %s %s %s\n", url, d.name, d.op, d.payload)
							}
						}
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
	cmd.Flags().StringArrayVar(&extra, "actor", nil, "also run actor `NAME=PATH.wasm` (repeatable)")
	return cmd
}
