//go:build !wasip1

package sdk

import (
	"go/build"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestImports keeps the SDK a guest library: its packages import only the
// standard library and each other, in the wasm build and in the native one
// (whose test helpers run actors natively). Host code (capabilities, agent,
// mesh, store) and third-party modules stay out of actors; tests may use
// them.
func TestImports(t *testing.T) {
	const module = "github.com/trellis-edge/trellis"
	var dirs []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() != "testdata" {
			dirs = append(dirs, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, goos := range []string{"wasip1", "linux"} {
		ctx := build.Default
		ctx.GOOS, ctx.GOARCH = goos, "wasm"
		if goos != "wasip1" {
			ctx.GOARCH = "amd64"
		}
		ctx.CgoEnabled = false
		checked := 0
		for _, dir := range dirs {
			p, err := ctx.ImportDir(dir, 0)
			if _, ok := err.(*build.NoGoError); ok {
				continue // test files only, or none for this target
			}
			if err != nil {
				t.Fatalf("%s: %v", dir, err)
			}
			checked++
			for _, imp := range p.Imports {
				first, _, _ := strings.Cut(imp, "/")
				switch {
				case imp == module+"/sdk" || strings.HasPrefix(imp, module+"/sdk/"):
				case strings.HasPrefix(imp, module):
					t.Errorf("%s (GOOS=%s) imports host package %s", dir, goos, imp)
				case strings.Contains(first, "."):
					t.Errorf("%s (GOOS=%s) imports %s, outside the standard library", dir, goos, imp)
				}
			}
		}
		if checked < 10 {
			t.Errorf("GOOS=%s: checked %d packages; the walk missed the SDK", goos, checked)
		}
	}
}
