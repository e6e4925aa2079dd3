package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes shared by every command. docs/cli.md lists them.
const (
	exitOK         = 0
	exitError      = 1  // a failure, including an actor's guest error
	exitGuestFault = 2  // the actor trapped, timed out, or hit a limit
	exitLoad       = 3  // the module could not be loaded or started
	exitUsage      = 64 // bad flags or arguments
)

// exitError carries a command's exit code through cobra.
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

func withCode(code int, err error) error { return &codeError{code: code, err: err} }

// streams are a command's standard streams.
type streams struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// run is the whole program: it parses args, runs the command and returns the
// exit code. main only adds signals and os.Exit, so tests call run directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	io := &streams{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(io)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ce *codeError
	if errors.As(err, &ce) {
		if ce.err != nil && ce.err.Error() != "" {
			fmt.Fprintln(stderr, "trellis:", ce.err)
		}
		return ce.code
	}
	// cobra's own errors: unknown command, bad flag, wrong arg count.
	fmt.Fprintln(stderr, "trellis:", err)
	fmt.Fprintln(stderr, "Run 'trellis --help' for usage.")
	return exitUsage
}

func newRootCmd(io *streams) *cobra.Command {
	var logLevel string
	root := &cobra.Command{
		Use:   "trellis",
		Short: "Trellis runs WebAssembly actors on edge devices",
		Long: `Trellis is a single static binary for Raspberry Pi–class devices and any Linux box.
It runs WebAssembly actors (waPC and wasmCloud 0.x modules) with wazero, gives them
capabilities only where granted, keeps its state in bbolt, and joins a NATS lattice.

Exit codes: 0 success; 1 error (including an actor's guest error); 2 the actor trapped,
timed out or hit a limit; 3 the module could not be loaded or started; 64 usage error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.AddCommand(
		newRunCmd(io, &logLevel), newDevCmd(io, &logLevel), newAgentCmd(io, &logLevel), newHubCmd(io, &logLevel),
		newCallCmd(io), newGetCmd(io), newActorCmd(io), newGPIOCmd(io), newSensorCmd(io), newDevicesCmd(io),
		newStoreCmd(io), newBenchCmd(io), newVersionCmd(io),
	)
	return root
}

// newLogger returns the logger for a command: JSON under systemd (for the
// journal), text otherwise.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, withCode(exitUsage, fmt.Errorf("--log-level %q: want debug, info, warn or error", level))
	}
	opts := &slog.HandlerOptions{Level: l}
	if os.Getenv("INVOCATION_ID") != "" { // set by systemd for its services
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
