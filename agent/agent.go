// Package agent is Trellis's composition root: it wires the actor runtime,
// the store and (in later stages) the mesh and capabilities into one device
// agent. It also owns the layout of the data dir, which every subsystem finds
// its files in.
//
// Only cmd/trellis imports agent.
package agent

import (
	"path/filepath"

	"github.com/trellis-edge/trellis/store"
)

// Files and folders under the data dir. docs/data-dir.md says which of them
// may be deleted safely.
const (
	StoreFile       = store.FileName // bbolt: identity, artifacts, desired state
	CompileCacheDir = "cache/wazero" // native code compiled by wazero; safe to delete
)

// StorePath returns the store file under the data dir.
func StorePath(dataDir string) string { return filepath.Join(dataDir, StoreFile) }

// CompileCachePath returns the compilation cache folder under the data dir.
func CompileCachePath(dataDir string) string {
	return filepath.Join(dataDir, filepath.FromSlash(CompileCacheDir))
}
