package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/trellis-edge/trellis/agent"
	"github.com/trellis-edge/trellis/mesh"
)

// agentFlags are the settings of `trellis agent` that flags can give; they
// override the --config file where set.
type agentFlags struct {
	config    string
	data      string
	listen    string
	hubs      []string
	hubCreds  string
	lattice   string
	name      string
	labels    []string
	actors    []string
	heartbeat time.Duration
	http      string
}

func (f *agentFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "YAML config `FILE` (flags override it; see docs/agent.md)")
	fl.StringVar(&f.data, "data", "", "data `DIR`: store, compilation cache, JetStream (default /var/lib/trellis)")
	fl.StringVar(&f.listen, "listen", "", "device bus address for local clients (default 127.0.0.1:4222; port 0 picks one)")
	fl.StringArrayVar(&f.hubs, "hub", nil, "hub leaf-node `URL` (nats-leaf://, tls://; repeatable)")
	fl.StringVar(&f.hubCreds, "hub-creds", "", "credentials `FILE` for the hub connection")
	fl.StringVar(&f.lattice, "lattice", "", "lattice id (default \"default\")")
	fl.StringVar(&f.name, "name", "", "host name (default: the machine's hostname)")
	fl.StringArrayVar(&f.labels, "label", nil, "host label `k=v` (repeatable)")
	fl.StringArrayVar(&f.actors, "actor", nil, "run actor `NAME=PATH.wasm` (repeatable; kept in the store)")
	fl.DurationVar(&f.heartbeat, "heartbeat", 0, "heartbeat interval (default 15s)")
	fl.StringVar(&f.http, "http", "", "address of /healthz and /metrics (default 127.0.0.1:9422; port 0 picks one; \"off\" disables)")
}

// resolve builds the agent config: the file, then the flags.
func (f *agentFlags) resolve(cmd *cobra.Command) (agent.Config, error) {
	var cfg agent.Config
	if f.config != "" {
		c, err := agent.LoadConfig(f.config)
		if err != nil {
			return cfg, withCode(exitUsage, err)
		}
		cfg = c
	}
	set := cmd.Flags().Changed
	if set("data") {
		cfg.DataDir = f.data
	}
	if set("listen") {
		cfg.Listen = f.listen
	}
	if set("hub") {
		cfg.Hubs = f.hubs
	}
	if set("hub-creds") {
		cfg.HubCredentials = f.hubCreds
	}
	if set("lattice") {
		cfg.Lattice = f.lattice
	}
	if set("name") {
		cfg.Name = f.name
	}
	if set("http") {
		cfg.HTTPAddr = f.http
	}
	if set("heartbeat") {
		cfg.HeartbeatInterval = f.heartbeat
	}
	for _, l := range f.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return cfg, withCode(exitUsage, fmt.Errorf("--label %q: want k=v", l))
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		cfg.Labels[k] = v
	}
	for _, a := range f.actors {
		n, p, ok := strings.Cut(a, "=")
		if !ok {
			return cfg, withCode(exitUsage, fmt.Errorf("--actor %q: want NAME=PATH.wasm", a))
		}
		cfg.Actors = append(cfg.Actors, agent.ActorConfig{Name: n, Module: p})
	}
	return cfg, nil
}

func newAgentCmd(io *streams, logLevel *string) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the device agent (what systemd runs)",
		Long: `Agent runs the Trellis device agent: an embedded NATS server (the device bus, and a
leaf node of every --hub), the actor runtime, actor RPC on the lattice, the control API
and heartbeat events. Actors that ran before a restart run again, from the store, with
no uplink. Settings come from --config and flags (flags win).

SIGHUP reloads the config file: the devices section (GPIO provider, sensors), the
actors it lists and the labels take effect while actors keep running; listen
addresses, hubs, the data dir and the lattice need a restart.`,
		Example: `  trellis agent --data /var/lib/trellis --hub nats-leaf://hub.example:7422 --label site=berlin
  trellis agent --config /etc/trellis/agent.yaml
  trellis agent --data ./data --listen 127.0.0.1:0 --actor echo=echo.wasm`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(io.stderr, *logLevel)
			if err != nil {
				return err
			}
			cfg, err := f.resolve(cmd)
			if err != nil {
				return err
			}
			a, err := agent.New(cfg, agent.Options{Version: version, Logger: log})
			if err != nil {
				return withCode(exitUsage, err)
			}
			// SIGHUP re-reads --config (and the flags) and applies what can
			// change while actors run: devices, actors, labels.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer func() { signal.Stop(hup); close(hup) }()
			go func() {
				for range hup {
					next, err := f.resolve(cmd)
					if err == nil {
						err = a.Reload(cmd.Context(), next)
					}
					if err != nil {
						log.Error("config reload failed; the running config stays", "err", err)
					}
				}
			}()
			if err := a.Run(cmd.Context()); err != nil {
				return withCode(exitError, err)
			}
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func newHubCmd(io *streams, logLevel *string) *cobra.Command {
	var data, listen, leafListen, devTLS string
	cmd := &cobra.Command{
		Use:   "hub",
		Short: "Run a development hub: NATS with JetStream (domain hub) and a leaf-node listener",
		Long: `Hub runs one embedded nats-server with JetStream (domain "hub") and a leaf-node
listener that agents join with --hub. It is for development and small sites; production
runs a NATS cluster from deploy/hub instead, which agents join the same way.

--dev-tls DIR makes the leaf listener TLS only, with a self-signed setup generated in DIR
(or reused): a CA, the hub's certificate, and a device certificate that every agent must
present. It prints the agent config that joins it. For trying an authenticated uplink on one
machine, not for production (the CA key sits beside the certificates).`,
		Example: `  trellis hub --data ./hub --listen 0.0.0.0:4222 --leaf-listen 0.0.0.0:7422
  trellis hub --dev-tls ./hub-tls`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(io.stderr, *logLevel)
			if err != nil {
				return err
			}
			var leafTLS *tls.Config
			var dt mesh.DevTLS
			if devTLS != "" {
				if dt, err = mesh.EnsureDevTLS(devTLS); err == nil {
					leafTLS, err = dt.HubConfig()
				}
				if err != nil {
					return withCode(exitError, err)
				}
			}
			srv, err := startHub(cmd.Context(), data, listen, leafListen, leafTLS, log)
			if err != nil {
				return withCode(exitError, err)
			}
			fmt.Fprintf(io.stdout, "hub: clients %s, leaf nodes %s\n", srv.ClientURL(), srv.LeafURL())
			if devTLS != "" {
				fmt.Fprintf(io.stdout, "agents join with this in their --config file:\n  hubs: [%s]\n  hub_tls: {ca: %s, cert: %s, key: %s}\n",
					srv.LeafURL(), dt.CA, dt.DeviceCert, dt.DeviceKey)
			}
			<-cmd.Context().Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "./trellis-hub", "data `DIR` for the hub's JetStream")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:4222", "client address (port 0 picks one)")
	cmd.Flags().StringVar(&leafListen, "leaf-listen", "127.0.0.1:7422", "leaf-node address agents join (port 0 picks one)")
	cmd.Flags().StringVar(&devTLS, "dev-tls", "", "TLS-only leaf listener with a self-signed setup kept in `DIR` (generated when missing)")
	return cmd
}

func startHub(ctx context.Context, data, listen, leafListen string, leafTLS *tls.Config, log *slog.Logger) (*mesh.Server, error) {
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	srv, err := mesh.StartServer(ctx, mesh.ServerOptions{
		Name:       "trellis-hub",
		Listen:     listen,
		LeafListen: leafListen,
		LeafTLS:    leafTLS,
		StoreDir:   filepath.Join(data, agent.JetStreamDir),
		Domain:     mesh.DefaultHubDomain,
		Logger:     log,
	})
	if err != nil {
		return nil, err
	}
	// The stream the devices' forwarders fill.
	if err := ensureHubTelemetry(ctx, srv); err != nil {
		srv.Shutdown(context.Background())
		return nil, err
	}
	return srv, nil
}

// ensureHubTelemetry creates or updates the hub's telemetry stream.
func ensureHubTelemetry(ctx context.Context, srv *mesh.Server) error {
	nc, err := srv.Connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	return mesh.EnsureHubTelemetry(ctx, js, mesh.HubTelemetryOptions{})
}
