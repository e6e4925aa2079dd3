package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-edge/trellis/agent"
	"github.com/trellis-edge/trellis/store"
)

func newStoreCmd(io *streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Check the device's store, or put its last good copy back",
		Long: `Store works on the store file (trellis.db) under a data dir, with the agent stopped.
The agent verifies the file at each start and then keeps a last good copy of it
(trellis.db.last-good); a damaged file stops the agent with an error that names
the copy and the command that restores it. See docs/data-dir.md.`,
	}
	cmd.AddCommand(newStoreCheckCmd(io), newStoreRecoverCmd(io))
	return cmd
}

func newStoreCheckCmd(io *streams) *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the store page by page and print its schema version, sizes and counts",
		Long: `Check opens the store under --data read-only, walks every page and every bucket,
runs bbolt's consistency check, and prints the schema version, the file's size, the
keys and bytes in each bucket, and the last good copy. It changes nothing. It waits a
second for the file lock, so it fails while an agent runs on the dir.

Exit codes: 0 the store verifies; 1 it is damaged (the problems are listed), missing
or locked; 64 usage error.`,
		Example: `  trellis store check --data /var/lib/trellis`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := store.Check(data)
			switch {
			case err == nil:
				printStoreReport(io.stdout, rep, "ok")
				return nil
			case errors.Is(err, store.ErrCorrupt):
				printStoreReport(io.stdout, rep, "DAMAGED")
			}
			return withCode(exitError, err)
		},
	}
	cmd.Flags().StringVar(&data, "data", agent.DefaultDataDir, "data `DIR` of the agent")
	return cmd
}

// printStoreReport writes what Check found.
func printStoreReport(w io.Writer, rep store.Report, verdict string) {
	fmt.Fprintf(w, "%s: %s\n", rep.Path, verdict)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if rep.SchemaVersion != 0 {
		note := ""
		if rep.SchemaVersion > store.SchemaVersion {
			note = fmt.Sprintf(" (newer than this binary, which reads up to %d)", store.SchemaVersion)
		}
		fmt.Fprintf(tw, "schema version\t%d%s\n", rep.SchemaVersion, note)
	}
	if rep.TxID != 0 {
		fmt.Fprintf(tw, "transaction\t%d\n", rep.TxID)
	}
	if rep.PageSize != 0 {
		fmt.Fprintf(tw, "size\t%s; %d pages of %d bytes in use, %d of them free\n", byteSize(rep.Size), rep.Pages, rep.PageSize, rep.FreePages)
	} else {
		fmt.Fprintf(tw, "size\t%s\n", byteSize(rep.Size))
	}
	if lg := rep.LastGood; lg.Path != "" {
		fmt.Fprintf(tw, "last good copy\t%s: transaction %d of %s\n", lg.Path, lg.TxID, when(lg.Time))
	} else {
		fmt.Fprintf(tw, "last good copy\tnone (the agent writes one at each start)\n")
	}
	if rep.MetaFallback != "" {
		fmt.Fprintf(tw, "note\t%s\n", rep.MetaFallback)
	}
	tw.Flush()
	if len(rep.Buckets) > 0 && len(rep.Problems) == 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BUCKET\tKEYS\tNESTED BUCKETS\tBYTES")
		for _, b := range rep.Buckets {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", b.Name, b.Keys, b.Buckets, byteSize(b.Bytes))
		}
		tw.Flush()
	}
	if len(rep.Problems) > 0 {
		fmt.Fprintln(w, "problems:")
		for _, p := range rep.Problems {
			fmt.Fprintln(w, "  "+p)
		}
	}
}

func newStoreRecoverCmd(io *streams) *cobra.Command {
	var (
		data string
		yes  bool
	)
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Replace a damaged store with its last good copy",
		Long: `Recover puts the last good copy (trellis.db.last-good, which the agent writes at each
start) in place of a damaged trellis.db under --data, and says what it did. The damaged
file is kept as trellis.db.corrupt-TIME, never deleted. Whatever was written after the
copy was taken is lost; recover shows how much before it starts. It refuses, changing
nothing, when the store is not damaged, when an agent runs on the dir (stop it first),
or when there is no usable copy.

Without --yes it asks for confirmation, and refuses when standard input is not a
terminal.

Exit codes: 0 recovered; 1 not recovered (nothing was changed); 64 usage error.`,
		Example: `  systemctl stop trellis
  trellis store recover --data /var/lib/trellis
  systemctl start trellis`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return recoverStore(io, data, yes, isTerminal(io.stdin))
		},
	}
	cmd.Flags().StringVar(&data, "data", agent.DefaultDataDir, "data `DIR` of the agent")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

// recoverStore is `trellis store recover`: it shows the plan, asks (unless
// yes; only on a terminal), recovers and shows the result.
func recoverStore(io *streams, dir string, yes, terminal bool) error {
	rep, err := store.Check(dir)
	switch {
	case err == nil:
		return withCode(exitError, fmt.Errorf("%s verifies (schema version %d, transaction %d): it is not damaged, there is nothing to recover; nothing was changed",
			rep.Path, rep.SchemaVersion, rep.TxID))
	case errors.Is(err, store.ErrCorrupt), errors.Is(err, fs.ErrNotExist), errors.Is(err, store.ErrNotFound):
	default:
		return withCode(exitError, fmt.Errorf("%w; nothing was changed", err))
	}
	if lg := rep.LastGood; lg.Path != "" {
		damage := "is missing"
		switch {
		case errors.Is(err, store.ErrNotFound):
			damage = "is empty"
		case len(rep.Problems) > 0:
			damage = "is damaged: " + rep.Problems[0]
		}
		fmt.Fprintf(io.stdout, "The store %s %s\n", rep.Path, damage)
		fmt.Fprintf(io.stdout, "Recover keeps it as %sTIME and puts the last good copy in its place:\n", store.CorruptFilePrefix)
		fmt.Fprintf(io.stdout, "  %s: transaction %d of %s\n", lg.Path, lg.TxID, when(lg.Time))
		fmt.Fprintf(io.stdout, "What was written after %s is lost%s.\n", lg.Time.UTC().Format(time.RFC3339), lostTransactions(lg.TxID, rep.TxID))
		if !yes {
			if !terminal {
				return withCode(exitUsage, errors.New("standard input is not a terminal: run with --yes to recover; nothing was changed"))
			}
			ok, err := confirm(io, "Recover? [y/N] ")
			if err != nil {
				return withCode(exitError, fmt.Errorf("reading the answer: %w; nothing was changed", err))
			}
			if !ok {
				return withCode(exitError, errors.New("not confirmed; nothing was changed"))
			}
		}
	}
	// Without a last good copy Recover refuses, with the way forward.
	res, err := store.Recover(dir)
	if err != nil {
		return withCode(exitError, err)
	}
	if res.MovedAside != "" {
		fmt.Fprintf(io.stdout, "kept the damaged store as %s\n", res.MovedAside)
	}
	fmt.Fprintf(io.stdout, "restored %s from %s: transaction %d of %s, schema version %d\n",
		res.Path, res.Restored.Path, res.Restored.TxID, when(res.Restored.Time), res.SchemaVersion)
	fmt.Fprintf(io.stdout, "lost: what was written after %s%s\n", res.Restored.Time.UTC().Format(time.RFC3339), lostTransactions(res.Restored.TxID, res.DamagedTxID))
	return nil
}

// lostTransactions names the transactions between the copy and the damaged
// file, when the damaged file's header says how far it got.
func lostTransactions(copyTx, damagedTx uint64) string {
	switch {
	case damagedTx <= copyTx:
		return ""
	case damagedTx == copyTx+1:
		return fmt.Sprintf(" (transaction %d)", damagedTx)
	}
	return fmt.Sprintf(" (transactions %d to %d)", copyTx+1, damagedTx)
}

// confirm asks question on standard output and reads a yes or no; the end
// of the input is a no.
func confirm(st *streams, question string) (bool, error) {
	fmt.Fprint(st.stdout, question)
	line, err := bufio.NewReader(st.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// isTerminal reports whether r is a terminal.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// when formats a time and how long ago it was.
func when(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < 0:
		d = 0
	case d < time.Hour:
		d = d.Round(time.Second)
	default:
		d = d.Round(time.Minute)
	}
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), d)
}

// byteSize formats a size in bytes, KiB or MiB.
func byteSize(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
