package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trellis-edge/trellis/agent"
	"github.com/trellis-edge/trellis/agent/actor"
)

func newRunCmd(io *streams, logLevel *string) *cobra.Command {
	var (
		dataDir   string
		timeout   time.Duration
		pages     uint32
		fromStdin bool
		name      string
		others    []string
		limitsF   string
	)
	cmd := &cobra.Command{
		Use:   "run MODULE.wasm OPERATION [PAYLOAD]",
		Short: "Call one operation of an actor module, with no agent",
		Long: `Run loads MODULE.wasm into the same actor runtime the agent uses, calls OPERATION
once with PAYLOAD (or standard input with --stdin, or nothing), and writes the response
bytes to standard output. The actor's own output (WASI stdout/stderr, console and
trellis:log) goes to standard error.

This is how an actor author tries an actor. Host calls to trellis:log work; host calls
to another actor work when it is loaded with --actor NAME=PATH.wasm; any other namespace
is denied, as it would be without a grant.

With --data DIR the compiled native code is kept in DIR/cache/wazero, so the next run of
the same module skips compiling (only on amd64 and arm64, where wazero compiles).

Exit codes: 0 success; 1 the actor returned an error (printed on standard error);
2 the actor trapped, timed out or hit a limit; 3 the module could not be loaded or
started; 64 usage error.`,
		Example: `  trellis run examples/actors/echo/echo.wasm echo hello
  echo -n '{"a":1}' | trellis run --stdin --timeout 2s actor.wasm handle
  trellis run --data ./.trellis --actor echo=echo.wasm caller.wasm relay hi
  trellis run --limits limits.yaml actor.wasm handle payload`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(io.stderr, *logLevel)
			if err != nil {
				return err
			}
			var payload []byte
			switch {
			case fromStdin && len(args) == 3:
				return withCode(exitUsage, errors.New("give PAYLOAD or --stdin, not both"))
			case fromStdin:
				if payload, err = readAllLimited(io.stdin, actor.DefaultMaxPayload); err != nil {
					return withCode(exitError, fmt.Errorf("reading standard input: %w", err))
				}
			case len(args) == 3:
				payload = []byte(args[2])
			}
			opts := actor.Options{Logger: log}
			if dataDir != "" {
				opts.CacheDir = agent.CompileCachePath(dataDir)
			}
			rt, err := actor.New(opts)
			if err != nil {
				return withCode(exitError, err)
			}
			defer rt.Close(cmd.Context())

			var limits actor.Limits
			if limitsF != "" {
				b, err := os.ReadFile(limitsF)
				if err != nil {
					return withCode(exitUsage, err)
				}
				if limits, err = actor.ParseLimits(b); err != nil {
					return withCode(exitUsage, fmt.Errorf("%s: %w", limitsF, err))
				}
			}
			// Flags win over the file where given; the file wins over flag defaults.
			if limitsF == "" || cmd.Flags().Changed("timeout") {
				limits.CallTimeout = timeout
			}
			if limitsF == "" || cmd.Flags().Changed("max-memory-pages") {
				limits.MemoryPages = pages
			}
			if err := limits.Validate(); err != nil {
				return withCode(exitUsage, err)
			}
			for _, spec := range others {
				n, path, ok := strings.Cut(spec, "=")
				if !ok {
					return withCode(exitUsage, fmt.Errorf("--actor %q: want NAME=PATH.wasm", spec))
				}
				if err := startFile(cmd, rt, n, path, limits); err != nil {
					return err
				}
			}
			if name == "" {
				name = nameFromPath(args[0])
			}
			if err := startFile(cmd, rt, name, args[0], limits); err != nil {
				return err
			}
			resp, err := rt.Invoke(cmd.Context(), name, args[1], payload)
			if err != nil {
				switch actor.CodeOf(err) {
				case actor.CodeTrap, actor.CodeTimeout, actor.CodeLimit, actor.CodeOverloaded, actor.CodeCanceled:
					return withCode(exitGuestFault, fmt.Errorf("%w [%s]", err, actor.CodeOf(err)))
				}
				return withCode(exitError, err)
			}
			if _, err := io.stdout.Write(resp); err != nil {
				return withCode(exitError, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data", "", "data dir whose compilation cache to use (default: none, compile every time)")
	f.DurationVar(&timeout, "timeout", actor.DefaultCallTimeout, "deadline of the call, including the actor's start")
	f.Uint32Var(&pages, "max-memory-pages", actor.DefaultMemoryPages, "cap on the actor's linear memory, in 64 KiB pages")
	f.BoolVar(&fromStdin, "stdin", false, "read the payload from standard input")
	f.StringVar(&name, "name", "", "actor name (default: from the file name)")
	f.StringVar(&limitsF, "limits", "", "read the actor's limits from a YAML `FILE` (see docs/actors.md)")
	f.StringArrayVar(&others, "actor", nil, "also load actor `NAME=PATH.wasm`, callable from the module (repeatable)")
	return cmd
}

// startFile reads a module and starts it as an actor.
func startFile(cmd *cobra.Command, rt *actor.Runtime, name, path string, limits actor.Limits) error {
	if err := actor.ValidateName(name); err != nil {
		return withCode(exitUsage, err)
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		return withCode(exitLoad, err)
	}
	if _, err := rt.Start(cmd.Context(), name, wasm, limits); err != nil {
		return withCode(exitLoad, fmt.Errorf("%s: %w", path, err))
	}
	return nil
}

// nameFromPath makes an actor name from a file name: "Hello_AS.wasm" → "hello_as".
func nameFromPath(path string) string {
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	var b strings.Builder
	for _, c := range strings.ToLower(base) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.TrimLeft(b.String(), "-_")
	if len(s) > 63 {
		s = s[:63]
	}
	if s == "" {
		return "actor"
	}
	return s
}

// readAllLimited reads r to its end, failing past max bytes.
func readAllLimited(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("more than %d bytes", max)
	}
	return b, nil
}
