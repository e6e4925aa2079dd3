package agent_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/trellis-edge/trellis"

// TestImportDirection enforces DESIGN.md's one-way dependencies:
// cmd → agent/deploy → {capabilities, mesh, store}; leaf packages never
// import agent; guest code imports nothing of the host; only periphhost
// touches periph's host drivers.
func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps=false", "-f", "{{.ImportPath}}:{{join .Imports \" \"}}", module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	rules := []struct {
		from   string // package path prefix under the module
		forbid []string
	}{
		{"store", []string{"agent", "deploy", "cmd", "mesh", "capabilities"}},
		{"mesh", []string{"agent", "deploy", "cmd"}},
		{"capabilities", []string{"agent", "deploy", "cmd"}},
		{"agent", []string{"deploy", "cmd"}},
		{"deploy", []string{"cmd"}},
		{"agent/abi", []string{"agent/actor", "store", "mesh", "capabilities"}},
		{"sdk", []string{"agent", "deploy", "cmd", "mesh", "store", "capabilities"}},
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		for _, imp := range strings.Fields(imports) {
			if strings.HasPrefix(imp, "periph.io/x/host") && !strings.HasPrefix(rel, "capabilities/periphhost") {
				t.Errorf("%s imports %s: only capabilities/periphhost may", rel, imp)
			}
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			target := strings.TrimPrefix(imp, module+"/")
			for _, r := range rules {
				if !within(rel, r.from) {
					continue
				}
				for _, f := range r.forbid {
					if within(target, f) && !within(target, r.from) {
						t.Errorf("%s imports %s: %s must not depend on %s", rel, target, r.from, f)
					}
				}
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no in-module imports found: the check saw nothing")
	}
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}
