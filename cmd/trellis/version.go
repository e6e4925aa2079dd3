package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/trellis-edge/trellis/agent/actor"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newVersionCmd(io *streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, platform and wasm engine",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			wazero := "unknown"
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, d := range bi.Deps {
					if d.Path == "github.com/tetratelabs/wazero" {
						wazero = d.Version
					}
				}
			}
			fmt.Fprintf(io.stdout, "trellis %s %s/%s %s wazero %s (%s)\n",
				version, runtime.GOOS, runtime.GOARCH, runtime.Version(), wazero, actor.EngineName())
			return nil
		},
	}
}
