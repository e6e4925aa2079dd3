package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/trellis-edge/trellis/agent"
	"github.com/trellis-edge/trellis/agent/actor"
	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/mesh"
)

func newCallCmd(io *streams) *cobra.Command {
	var (
		conn      connFlags
		fromStdin bool
		hostSel   string
	)
	cmd := &cobra.Command{
		Use:   "call ACTOR OPERATION [PAYLOAD]",
		Short: "Call an actor anywhere on the lattice",
		Long: `Call sends OPERATION with PAYLOAD (or standard input with --stdin) to ACTOR wherever
it runs on the lattice, and writes the response bytes to standard output. One host
answers; a local instance is preferred. --host pins the call to one host (id or name).

Exit codes: 0 success; 1 the actor returned an error, or no host runs it; 2 the actor
trapped, timed out or hit a limit, or every instance was busy; 64 usage error.`,
		Example: `  trellis call echo echo hello
  trellis call --server nats://hub:4222 kvcounter HttpServer.HandleRequest --stdin < req.msgpack
  trellis call --host pi-kitchen echo echo hi`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			payload, err := payloadArg(io, args, 2, fromStdin)
			if err != nil {
				return err
			}
			nc, err := conn.connect("trellis call")
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), conn.timeout)
			defer cancel()
			var resp []byte
			if hostSel != "" {
				id, err := resolveHost(ctx, nc, conn.lattice, hostSel)
				if err != nil {
					return err
				}
				resp, _, err = mesh.CallHost(ctx, nc, conn.lattice, id, args[0], args[1], payload)
				if err != nil {
					return callExit(err)
				}
			} else if resp, _, err = mesh.Call(ctx, nc, conn.lattice, args[0], args[1], payload); err != nil {
				return callExit(err)
			}
			_, err = io.stdout.Write(resp)
			return err
		},
	}
	conn.add(cmd)
	cmd.Flags().BoolVar(&fromStdin, "stdin", false, "read the payload from standard input")
	cmd.Flags().StringVar(&hostSel, "host", "", "call the actor on this host only (id or name)")
	return cmd
}

// callExit maps a call error to its exit code.
func callExit(err error) error {
	code := ""
	var re *mesh.RemoteError
	if errors.As(err, &re) {
		code = re.Code
	}
	switch actor.Code(code) {
	case actor.CodeTrap, actor.CodeTimeout, actor.CodeLimit, actor.CodeOverloaded, actor.CodeCanceled:
		return withCode(exitGuestFault, fmt.Errorf("%w [%s]", err, code))
	}
	return withCode(exitError, err)
}

// payloadArg returns the payload from args[i], standard input, or nothing.
func payloadArg(io *streams, args []string, i int, fromStdin bool) ([]byte, error) {
	switch {
	case fromStdin && len(args) > i:
		return nil, withCode(exitUsage, errors.New("give PAYLOAD or --stdin, not both"))
	case fromStdin:
		b, err := readAllLimited(io.stdin, actor.DefaultMaxPayload)
		if err != nil {
			return nil, withCode(exitError, fmt.Errorf("reading standard input: %w", err))
		}
		return b, nil
	case len(args) > i:
		return []byte(args[i]), nil
	}
	return nil, nil
}

// resolveHost turns a host id or name into an id, asking the lattice.
func resolveHost(ctx context.Context, nc *nats.Conn, lattice, sel string) (string, error) {
	if len(sel) == 56 && strings.HasPrefix(sel, "N") {
		return sel, nil
	}
	invs, err := mesh.Ping(ctx, nc, lattice, 500*time.Millisecond)
	if err != nil {
		return "", withCode(exitError, err)
	}
	var ids []string
	for _, inv := range invs {
		if inv.Host.Name == sel || strings.HasPrefix(inv.Host.ID, sel) {
			ids = append(ids, inv.Host.ID)
		}
	}
	switch len(ids) {
	case 0:
		return "", withCode(exitError, fmt.Errorf("no host named %q on lattice %s", sel, lattice))
	case 1:
		return ids[0], nil
	}
	return "", withCode(exitUsage, fmt.Errorf("host %q is ambiguous: %s", sel, strings.Join(ids, ", ")))
}

func newGetCmd(io *streams) *cobra.Command {
	var (
		conn   connFlags
		output string
		wait   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "get hosts|actors",
		Short: "List the hosts of the lattice, or the actors they run",
		Long: `Get asks every host of the lattice for its inventory and prints a table, or JSON with
-o json. Hosts that do not answer within --wait of the last answer are not listed.`,
		Example: `  trellis get hosts
  trellis get actors -o json`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"hosts", "actors"},
		RunE: func(cmd *cobra.Command, args []string) error {
			what := strings.TrimSuffix(args[0], "s")
			if what != "host" && what != "actor" {
				return withCode(exitUsage, fmt.Errorf("get %q: want hosts or actors", args[0]))
			}
			if output != "table" && output != "json" {
				return withCode(exitUsage, fmt.Errorf("-o %q: want table or json", output))
			}
			nc, err := conn.connect("trellis get")
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), conn.timeout)
			defer cancel()
			invs, err := mesh.Ping(ctx, nc, conn.lattice, wait)
			if err != nil {
				return withCode(exitError, err)
			}
			sort.Slice(invs, func(i, j int) bool { return invs[i].Host.Name < invs[j].Host.Name })
			if what == "host" {
				return printHosts(io.stdout, invs, output)
			}
			return printActors(io.stdout, invs, output)
		},
	}
	conn.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.Flags().DurationVar(&wait, "wait", 300*time.Millisecond, "how long to wait for more hosts after the last answer")
	return cmd
}

func printHosts(w io.Writer, invs []mesh.Inventory, output string) error {
	if output == "json" {
		hosts := make([]mesh.Inventory, len(invs))
		copy(hosts, invs)
		return writeJSON(w, hosts)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tARCH\tENGINE\tACTORS\tUPTIME\tRSS\tTELEMETRY\tLABELS")
	for _, inv := range invs {
		h := inv.Host
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", h.Name, shortID(h.ID), h.Arch, h.Engine, len(inv.Actors),
			time.Duration(h.Uptime), mib(h.Memory.RSS), telemetryString(h.Telemetry, inv.Timestamp), labelString(h.Labels))
	}
	return tw.Flush()
}

func printActors(w io.Writer, invs []mesh.Inventory, output string) error {
	type row struct {
		Host   string `json:"host"`
		HostID string `json:"host_id"`
		mesh.ActorInfo
	}
	var rows []row
	for _, inv := range invs {
		for _, a := range inv.Actors {
			rows = append(rows, row{Host: inv.Host.Name, HostID: inv.Host.ID, ActorInfo: a})
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	if output == "json" {
		if rows == nil {
			rows = []row{}
		}
		return writeJSON(w, rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTOR\tHOST\tSHA256\tREV\tINSTANCES\tMAX\tCALLS\tFAILURES")
	for _, r := range rows {
		digest := r.Digest
		if len(digest) > 12 {
			digest = digest[:12]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", r.Name, r.Host, digest, r.Revision, r.Instances, r.MaxInstances, r.Calls, r.Failures)
	}
	return tw.Flush()
}

// telemetryString summarises a host's telemetry backlog: "ok" when the hub
// has everything, else the backlog, its oldest message's age, how long
// forwarding has failed, and what the buffer policy dropped or refused.
func telemetryString(t *mesh.TelemetryStatus, at time.Time) string {
	if t == nil {
		return "-"
	}
	var parts []string
	if t.Backlog == 0 {
		parts = append(parts, "ok")
	} else {
		s := fmt.Sprintf("%d queued", t.Backlog)
		if !t.Oldest.IsZero() && !at.IsZero() {
			s += fmt.Sprintf(" (oldest %s)", at.Sub(t.Oldest).Truncate(time.Second))
		}
		parts = append(parts, s)
	}
	if t.Offline > 0 {
		parts = append(parts, "offline "+time.Duration(t.Offline).Truncate(time.Second).String())
	}
	if t.Dropped > 0 {
		parts = append(parts, fmt.Sprintf("%d dropped", t.Dropped))
	}
	if t.Rejected > 0 {
		parts = append(parts, fmt.Sprintf("%d rejected", t.Rejected))
	}
	return strings.Join(parts, ", ")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func mib(b uint64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
}

func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + l[k]
	}
	if len(keys) == 0 {
		return "-"
	}
	return strings.Join(keys, ",")
}

func newActorCmd(io *streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "actor start|stop|scale|update|keys|sign|inspect",
		Short: "Start, stop, scale or update an actor on one host; sign and inspect actor modules",
	}
	var conn connFlags
	var hostSel, limitsF, grantsF string
	var maxInst int
	control := func(cmd *cobra.Command, op string, req any) error {
		if hostSel == "" {
			return withCode(exitUsage, errors.New("--host is required: which host (id or name)?"))
		}
		nc, err := conn.connect("trellis actor")
		if err != nil {
			return err
		}
		defer nc.Close()
		ctx, cancel := context.WithTimeout(cmd.Context(), conn.timeout)
		defer cancel()
		id, err := resolveHost(ctx, nc, conn.lattice, hostSel)
		if err != nil {
			return err
		}
		if err := mesh.ControlRequest(ctx, nc, mesh.CtlSubject(conn.lattice, "host", id, "actor", op), req, nil); err != nil {
			return withCode(exitError, err)
		}
		fmt.Fprintf(io.stdout, "%s: %s ok on %s\n", op, reqName(req), shortID(id))
		return nil
	}
	moduleReq := func(args []string) (mesh.StartActor, error) {
		wasm, err := os.ReadFile(args[1])
		if err != nil {
			return mesh.StartActor{}, withCode(exitUsage, err)
		}
		var limits actor.Limits
		if limitsF != "" {
			b, err := os.ReadFile(limitsF)
			if err != nil {
				return mesh.StartActor{}, withCode(exitUsage, err)
			}
			if limits, err = actor.ParseLimits(b); err != nil {
				return mesh.StartActor{}, withCode(exitUsage, fmt.Errorf("%s: %w", limitsF, err))
			}
		}
		if maxInst > 0 {
			limits.MaxInstances = maxInst
		}
		var grants capabilities.Grants
		if grantsF != "" {
			b, err := os.ReadFile(grantsF)
			if err != nil {
				return mesh.StartActor{}, withCode(exitUsage, err)
			}
			dec := yaml.NewDecoder(bytes.NewReader(b))
			dec.KnownFields(true)
			if err := dec.Decode(&grants); err != nil && len(bytes.TrimSpace(b)) > 0 {
				return mesh.StartActor{}, withCode(exitUsage, fmt.Errorf("%s: %w", grantsF, err))
			}
			if err := grants.Validate(); err != nil {
				return mesh.StartActor{}, withCode(exitUsage, fmt.Errorf("%s: %w", grantsF, err))
			}
		}
		return mesh.StartActor{Name: args[0], Module: wasm, Limits: agent.WireLimits(limits), Grants: grants}, nil
	}
	start := &cobra.Command{
		Use: "start NAME MODULE.wasm", Short: "Start an actor on a host (it is restored there after a restart)",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := moduleReq(args)
			if err != nil {
				return err
			}
			return control(cmd, "start", req)
		},
	}
	update := &cobra.Command{
		Use: "update NAME MODULE.wasm", Short: "Replace an actor's module; if the new one fails to start, the old one keeps serving",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := moduleReq(args)
			if err != nil {
				return err
			}
			return control(cmd, "update", req)
		},
	}
	stop := &cobra.Command{
		Use: "stop NAME", Short: "Stop an actor on a host", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return control(cmd, "stop", mesh.StopActor{Name: args[0]})
		},
	}
	scale := &cobra.Command{
		Use: "scale NAME --max-instances N", Short: "Change how many calls an actor runs at once on a host", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if maxInst < 1 {
				return withCode(exitUsage, errors.New("--max-instances N is required (1 or more)"))
			}
			return control(cmd, "scale", mesh.ScaleActor{Name: args[0], MaxInstances: maxInst})
		},
	}
	for _, c := range []*cobra.Command{start, update, stop, scale} {
		conn.add(c)
		c.Flags().StringVar(&hostSel, "host", "", "the host (id, id prefix or name)")
	}
	for _, c := range []*cobra.Command{start, update} {
		c.Flags().StringVar(&limitsF, "limits", "", "read the actor's limits from a YAML `FILE`")
		c.Flags().StringVar(&grantsF, "grants", "", "read the actor's grants from a YAML `FILE` (the keys of docs/capabilities.md; none: deny everything)")
	}
	for _, c := range []*cobra.Command{start, update, scale} {
		c.Flags().IntVar(&maxInst, "max-instances", 0, "instances that may run calls at once")
	}
	cmd.AddCommand(start, update, stop, scale)
	cmd.AddCommand(newActorClaimsCmds(io)...)
	return cmd
}

func reqName(req any) string {
	switch r := req.(type) {
	case mesh.StartActor:
		return r.Name
	case mesh.StopActor:
		return r.Name
	case mesh.ScaleActor:
		return r.Name
	}
	return ""
}
