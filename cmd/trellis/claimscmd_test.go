package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/trellis-edge/trellis/agent/claims"
)

// claimsCLI runs the command line like trellis does, with the claims
// commands under "actor" (attached here if the root does not have them yet).
func claimsCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	io := &streams{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
	root := newRootCmd(io)
	actorCmd, _, err := root.Find([]string{"actor"})
	if err != nil {
		t.Fatal(err)
	}
	if c, _, _ := actorCmd.Find([]string{"sign"}); c == actorCmd {
		actorCmd.AddCommand(newActorClaimsCmds(io)...)
	}
	root.SetArgs(args)
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	code := exitOK
	if err := root.ExecuteContext(context.Background()); err != nil {
		var ce *codeError
		if errors.As(err, &ce) {
			fmt.Fprintln(&stderr, "trellis:", ce.err)
			code = ce.code
		} else {
			fmt.Fprintln(&stderr, "trellis:", err)
			code = exitUsage
		}
	}
	return code, stdout.String(), stderr.String()
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := claimsCLI(t, args...)
	if code != 0 {
		t.Fatalf("trellis %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func TestClaimsCLIRoundTrip(t *testing.T) {
	dir := t.TempDir()
	acctF, modF := filepath.Join(dir, "acct.nk"), filepath.Join(dir, "mod.nk")
	acctPub := strings.TrimSpace(mustCLI(t, "actor", "keys", "account", "--out", acctF))
	modPub := strings.TrimSpace(mustCLI(t, "actor", "keys", "module", "--out", modF))
	if !nkeys.IsValidPublicAccountKey(acctPub) || !claims.IsValidModuleKey(modPub) {
		t.Fatalf("keys: %q %q", acctPub, modPub)
	}
	for _, f := range []string{acctF, modF} {
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, st.Mode(), err)
		}
	}
	// An existing seed file is never overwritten.
	if code, _, errs := claimsCLI(t, "actor", "keys", "account", "--out", acctF); code != exitError || !strings.Contains(errs, "exists") {
		t.Fatalf("overwrite: %d %s", code, errs)
	}

	signed := filepath.Join(dir, "echo_s.wasm")
	out := mustCLI(t, "actor", "sign", fixtures+"echo.wasm", "--issuer", acctF, "--subject", modF,
		"--caps", "wasmcloud:keyvalue,trellis:gpio", "--name", "echo", "--ver", "1.2.3", "--rev", "4", "--out", signed)
	if !strings.Contains(out, modPub) || !strings.Contains(out, acctPub) {
		t.Fatalf("sign output:\n%s", out)
	}
	out = mustCLI(t, "actor", "inspect", signed)
	for _, want := range []string{"valid", acctPub, modPub, "wasmcloud:keyvalue, trellis:gpio", "1.2.3 (rev 4)", "(matches)", "never"} {
		if !strings.Contains(out, want) {
			t.Fatalf("inspect lacks %q:\n%s", want, out)
		}
	}
	var j inspectJSON
	if err := json.Unmarshal([]byte(mustCLI(t, "actor", "inspect", "-o", "json", signed)), &j); err != nil {
		t.Fatal(err)
	}
	if !j.Valid || !j.HashValid || !j.SignatureValid || j.Claims.Subject != modPub || j.Claims.Name != "echo" {
		t.Fatalf("json: %+v", j)
	}
	// The signed module runs.
	if code, out, errs := trellis(t, "", "run", signed, "echo", "signed"); code != 0 || out != "signed" {
		t.Fatalf("run: %d %q %s", code, out, errs)
	}
	// Re-signing in place, with a public module key and a fresh default name.
	pubF := filepath.Join(dir, "mod.pub")
	if err := os.WriteFile(pubF, []byte(modPub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "actor", "sign", signed, "--issuer", acctF, "--subject", pubF, "--out", signed)
	j = inspectJSON{}
	if err := json.Unmarshal([]byte(mustCLI(t, "actor", "inspect", "-o", "json", signed)), &j); err != nil {
		t.Fatal(err)
	}
	if !j.Valid || j.Claims.Subject != modPub || j.Claims.Name != "echo_s" || len(j.Claims.Caps) != 0 {
		t.Fatalf("re-signed: %+v", j.Claims)
	}
	// Without --subject: a fresh module key.
	fresh := filepath.Join(dir, "fresh.wasm")
	out = mustCLI(t, "actor", "sign", echoWasm, "--issuer", acctF, "--out", fresh, "--expires", "24h")
	if strings.Contains(out, modPub) || !strings.Contains(out, "new module key") {
		t.Fatalf("fresh: %s", out)
	}
	out = mustCLI(t, "actor", "inspect", fresh)
	if !strings.Contains(out, "(in 2") { // expires in 23h59m…/24h0m0s
		t.Fatalf("expiry not shown:\n%s", out)
	}
	if code, out, errs := trellis(t, "", "run", fresh, "echo", "go"); code != 0 || out != "go" {
		t.Fatalf("run: %d %q %s", code, out, errs)
	}
}

func TestInspectCLIRejects(t *testing.T) {
	dir := t.TempDir()
	acctF, userF := filepath.Join(dir, "acct.nk"), filepath.Join(dir, "user.nk")
	mustCLI(t, "actor", "keys", "account", "--out", acctF)
	user, _ := nkeys.CreateUser()
	useed, _ := user.Seed()
	if err := os.WriteFile(userF, useed, 0o600); err != nil {
		t.Fatal(err)
	}
	signedF := filepath.Join(dir, "s.wasm")
	mustCLI(t, "actor", "sign", fixtures+"echo.wasm", "--issuer", acctF, "--out", signedF)
	signed, err := os.ReadFile(signedF)
	if err != nil {
		t.Fatal(err)
	}
	secs, err := claims.ParseSections(signed)
	if err != nil {
		t.Fatal(err)
	}
	codeByte, tokenChar := bytes.Clone(signed), bytes.Clone(signed)
	for _, s := range secs {
		if s.ID == 10 {
			codeByte[(s.Payload+s.End)/2] ^= 1
		}
		if s.Name == claims.SectionJWT {
			if tokenChar[s.End-20] == 'A' { // a signature character
				tokenChar[s.End-20] = 'B'
			} else {
				tokenChar[s.End-20] = 'A'
			}
		}
	}
	seed, _ := os.ReadFile(acctF)
	acct, err := nkeys.FromSeed(bytes.TrimSpace(seed))
	if err != nil {
		t.Fatal(err)
	}
	mk, _ := claims.CreateModuleKey()
	unsigned, _ := os.ReadFile(fixtures + "echo.wasm")
	expired, err := claims.Sign(unsigned, claims.Claims{Subject: mk.PublicKey(), Expires: time.Now().Add(-time.Hour).Unix()}, acct, time.Now().Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	notYet, err := claims.Sign(unsigned, claims.Claims{Subject: mk.PublicKey(), NotBefore: time.Now().Add(time.Hour).Unix()}, acct, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		wasm []byte
		want string
	}{
		{"code byte", codeByte, "module hash mismatch"},
		{"section removed", unsigned, "no claims section"},
		{"token char", tokenChar, "bad signature"},
		{"expired", expired, "EXPIRED"},
		{"not yet valid", notYet, "NOT YET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".wasm")
			if err := os.WriteFile(f, tc.wasm, 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errs := claimsCLI(t, "actor", "inspect", f)
			if code != exitError || !strings.Contains(out+errs, tc.want) || !strings.Contains(out, "INVALID") {
				t.Fatalf("exit %d, want 1 and %q\n%s%s", code, tc.want, out, errs)
			}
			code, out, _ = claimsCLI(t, "actor", "inspect", "-o", "json", f)
			var j inspectJSON
			if err := json.Unmarshal([]byte(out), &j); err != nil || code != exitError || j.Valid || j.Error == "" {
				t.Fatalf("json: exit %d, %+v, %v", code, j, err)
			}
		})
	}
	// Usage errors.
	for _, args := range [][]string{
		{"actor", "sign", fixtures + "echo.wasm", "--issuer", userF, "--out", filepath.Join(dir, "u.wasm")},
		{"actor", "sign", fixtures + "echo.wasm", "--issuer", acctF, "--subject", acctF, "--out", filepath.Join(dir, "u.wasm")},
		{"actor", "sign", fixtures + "echo.wasm", "--issuer", acctF},
		{"actor", "keys", "user", "--out", filepath.Join(dir, "k")},
		{"actor", "keys", "module"},
		{"actor", "inspect", "-o", "yaml", signedF},
	} {
		if code, out, errs := claimsCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d\n%s%s", args, code, exitUsage, out, errs)
		}
	}
	if code, _, errs := claimsCLI(t, "actor", "inspect", filepath.Join(dir, "nope.wasm")); code != exitError || !strings.Contains(errs, "nope.wasm") {
		t.Errorf("missing file: %d %s", code, errs)
	}
}
