package wasmcloud

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestOperationTable(t *testing.T) {
	ops := Operations()
	type key struct {
		ns, name string
		dir      Direction
		era      Era
	}
	seen := map[key]bool{}
	hostCalls := map[[2]string]Era{}
	for _, op := range ops {
		k := key{op.Namespace, op.Name, op.Direction, op.Era}
		if seen[k] {
			t.Errorf("duplicate %+v", k)
		}
		seen[k] = true
		if !op.Era.valid() || op.Direction != ActorToHost && op.Direction != HostToActor {
			t.Errorf("%s %s: era %v, direction %v", op.Namespace, op.Name, op.Era, op.Direction)
		}
		if op.Input == "" || op.Output == "" || op.Source == "" {
			t.Errorf("%s %s (%s): shapes and source must be given", op.Namespace, op.Name, op.Era)
		}
		// wasmbus names are qualified, legacy ones are not.
		if strings.Contains(op.Name, ".") != (op.Era == EraWasmbus) {
			t.Errorf("%s %s: name form does not match era %s", op.Namespace, op.Name, op.Era)
		}
		// waSCC lives in wascc:* (or on no contract), the others never do.
		if strings.HasPrefix(op.Namespace, "wascc:") != (op.Era == EraWaSCC && op.Namespace != "") {
			t.Errorf("%s %s: namespace does not match era %s", op.Namespace, op.Name, op.Era)
		}
		if op.Direction == ActorToHost {
			// A host call's (namespace, name) identifies its era.
			hk := [2]string{op.Namespace, op.Name}
			if e, dup := hostCalls[hk]; dup {
				t.Errorf("host call %v in eras %s and %s", hk, e, op.Era)
			}
			hostCalls[hk] = op.Era
			if got, ok := LookupHostCall(op.Namespace, op.Name); !ok || got != op {
				t.Errorf("LookupHostCall(%q, %q) = %+v, %v", op.Namespace, op.Name, got, ok)
			}
		}
	}
	// Operations hands out a copy.
	ops[0].Name = "changed"
	if Operations()[0].Name == "changed" {
		t.Fatal("Operations returned the table itself")
	}
}

func TestLookupHostCall(t *testing.T) {
	cases := []struct {
		ns, name string
		era      Era
		ok       bool
	}{
		{KeyValue, OpKVIncrement, EraWasmbus, true},
		{KeyValue, OpLegacyAdd, Era018, true},
		{KeyValue, OpKVGet, EraWasmbus, true},
		{KeyValue, OpLegacyGet, Era018, true},
		{WaSCCKeyValue, OpLegacyAdd, EraWaSCC, true},
		{WaSCCKeyValue, OpKVIncrement, 0, false},
		{Messaging, OpPublish, EraWasmbus, true},
		{Messaging, OpLegacyPublish, Era018, true},
		{Messaging, OpRequest, EraWasmbus, true},
		{WaSCCMessaging, OpLegacyRequest, EraWaSCC, true},
		{Logging, OpWriteLog, EraWasmbus, true},
		{Logging018, OpLegacyWriteLog, Era018, true},
		{WaSCCLogging, OpLegacyWriteLog, EraWaSCC, true},
		{NumberGen, OpGenerateGuid, EraWasmbus, true},
		{NumberGen, OpRandomInRange, EraWasmbus, true},
		{NumberGen, OpRandom32, EraWasmbus, true},
		{Extras018, OpLegacyRequestRandom, Era018, true},
		// Invocations of the actor are not host calls.
		{HTTPServer, OpHandleRequest, 0, false},
		{Messaging, OpHandleMessage, 0, false},
		{"", OpHealthRequest, 0, false},
		{KeyValue, "Increment", 0, false},
		{"wasmcloud:keyvalue ", OpKVGet, 0, false},
	}
	for _, tc := range cases {
		op, ok := LookupHostCall(tc.ns, tc.name)
		if ok != tc.ok || ok && op.Era != tc.era {
			t.Errorf("LookupHostCall(%q, %q) = %s, %v; want %s, %v", tc.ns, tc.name, op.Era, ok, tc.era, tc.ok)
		}
	}
}

// Every namespace and invocation the host needs is in the table.
func TestTableCoversContracts(t *testing.T) {
	has := func(ns, name string, e Era, d Direction) bool {
		return slices.ContainsFunc(Operations(), func(op Operation) bool {
			return op.Namespace == ns && op.Name == name && op.Era == e && op.Direction == d
		})
	}
	for _, tc := range []struct {
		ns, name string
		era      Era
		dir      Direction
	}{
		{HTTPServer, OpHandleRequest, EraWasmbus, HostToActor},
		{HTTPServer, OpLegacyHandleRequest, Era018, HostToActor},
		{WaSCCHTTPServer, OpLegacyHandleRequest, EraWaSCC, HostToActor},
		{Messaging, OpHandleMessage, EraWasmbus, HostToActor},
		{Messaging, OpLegacyHandleMessage, Era018, HostToActor},
		{Messaging, OpLegacyDeliverMessage, Era018, HostToActor},
		{WaSCCMessaging, OpLegacyDeliverMessage, EraWaSCC, HostToActor},
		{"", OpHealthRequest, EraWasmbus, HostToActor},
		{"", OpLegacyHealthRequest, Era018, HostToActor},
		{"", OpLegacyHealthRequest, EraWaSCC, HostToActor},
	} {
		if !has(tc.ns, tc.name, tc.era, tc.dir) {
			t.Errorf("missing %q %q %s %s", tc.ns, tc.name, tc.era, tc.dir)
		}
	}
	// All 16 wasmbus KeyValue operations of keyvalue.smithy.
	n := 0
	for _, op := range Operations() {
		if op.Namespace == KeyValue && op.Era == EraWasmbus {
			n++
		}
	}
	if n != 16 {
		t.Errorf("%d wasmbus KeyValue operations, want 16", n)
	}
	if ActorToHost.String() != "actor→host" || HostToActor.String() != "host→actor" {
		t.Error("Direction.String")
	}
}

// The package is a leaf: besides the standard library it imports only
// capabilities and msgpack.
func TestImports(t *testing.T) {
	allowed := []string{
		"github.com/trellis-edge/trellis/capabilities",
		"github.com/vmihailenco/msgpack/v5",
		"github.com/vmihailenco/msgpack/v5/msgpcode",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			std := !strings.Contains(strings.SplitN(p, "/", 2)[0], ".")
			if !std && !slices.Contains(allowed, p) {
				t.Errorf("%s imports %s", name, p)
			}
		}
	}
}
