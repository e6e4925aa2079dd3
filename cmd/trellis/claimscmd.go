package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/spf13/cobra"

	"github.com/trellis-edge/trellis/agent/claims"
)

// newActorClaimsCmds returns the claims subcommands of "trellis actor": keys,
// sign and inspect. They work on files only; nothing touches the lattice.
func newActorClaimsCmds(io *streams) []*cobra.Command {
	return []*cobra.Command{newActorKeysCmd(io), newActorSignCmd(io), newActorInspectCmd(io)}
}

func newActorKeysCmd(io *streams) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keys account|module --out FILE",
		Short: "Create an account key (signs actors) or a module key (names an actor)",
		Long: `Keys creates an Ed25519 key pair, writes its seed to --out (mode 0600; an existing
file is never overwritten) and prints its public key. An account key ("A…", seed
"SA…") signs actors' claims; a module key ("M…", seed "SM…") is an actor's identity,
the subject of its claims. Keep seeds secret: anyone holding the account seed can
sign actors as you.

Exit codes: 0 key written; 1 the file could not be written; 64 usage error.`,
		Example: `  trellis actor keys account --out ~/.trellis/keys/acme_account.nk
  trellis actor keys module --out echo_module.nk`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"account", "module"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return withCode(exitUsage, errors.New("--out FILE is required: where to write the seed"))
			}
			var seed []byte
			var pub string
			switch args[0] {
			case "account":
				kp, err := nkeys.CreateAccount()
				if err != nil {
					return withCode(exitError, err)
				}
				if seed, err = kp.Seed(); err != nil {
					return withCode(exitError, err)
				}
				if pub, err = kp.PublicKey(); err != nil {
					return withCode(exitError, err)
				}
			case "module":
				mk, err := claims.CreateModuleKey()
				if err != nil {
					return withCode(exitError, err)
				}
				seed, pub = mk.Seed(), mk.PublicKey()
			default:
				return withCode(exitUsage, fmt.Errorf("%q: want account or module", args[0]))
			}
			if err := writeSeed(out, seed); err != nil {
				return withCode(exitError, err)
			}
			fmt.Fprintln(io.stdout, pub)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write the seed to `FILE` (mode 0600, must not exist)")
	return cmd
}

// writeSeed writes a seed to a new file readable by its owner only.
func writeSeed(path string, seed []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(seed, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// readKeyFile returns the first line of a key file, trimmed.
func readKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) > 4096 {
		return nil, fmt.Errorf("%s: not a key file (%d bytes)", path, len(b))
	}
	line, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
	return bytes.TrimSpace(line), nil
}

func newActorSignCmd(io *streams) *cobra.Command {
	var (
		issuerF, subjectF, out string
		name, ver, callAlias   string
		caps, tags             []string
		rev                    int
		expires, notBefore     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "sign MODULE.wasm --issuer SEEDFILE --out FILE",
		Short: "Sign an actor's claims into its module (wasmCloud-compatible)",
		Long: `Sign embeds signed claims in a WebAssembly module, as wasmCloud's wascap does: a JWT
in the custom section "wasmcloud_jwt", signed by the account key in --issuer, naming
the module key (the actor's identity) as its subject, its capabilities, name and
version, and the SHA-256 of the module without the token. Any claims the module
already carries are replaced; every other section is kept.

The subject is the module key in --subject (a seed "SM…" or a public key "M…");
without it a fresh module key is made and printed, and its seed is not kept, so
re-signing later gives the actor a new identity unless you pass --subject.

Exit codes: 0 signed; 1 the module or a key could not be read, or the output not
written; 64 usage error (including a key of the wrong kind).`,
		Example: `  trellis actor keys account --out acme.nk
  trellis actor keys module --out echo_module.nk
  trellis actor sign echo.wasm --issuer acme.nk --subject echo_module.nk \
      --caps wasmcloud:keyvalue,trellis:gpio --name echo --ver 1.0.0 --rev 1 --out echo_s.wasm`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if issuerF == "" || out == "" {
				return withCode(exitUsage, errors.New("--issuer SEEDFILE and --out FILE are required"))
			}
			if expires < 0 || notBefore < 0 {
				return withCode(exitUsage, errors.New("--expires and --not-before must not be negative"))
			}
			wasm, err := os.ReadFile(args[0])
			if err != nil {
				return withCode(exitError, err)
			}
			issuer, err := readIssuer(issuerF)
			if err != nil {
				return err
			}
			subject, fresh, err := readSubject(subjectF)
			if err != nil {
				return err
			}
			now := time.Now()
			c := claims.Claims{Subject: subject, Name: name, Caps: caps, Tags: tags, Rev: rev, Ver: ver, CallAlias: callAlias}
			if c.Name == "" {
				c.Name = nameFromPath(args[0])
			}
			if expires > 0 {
				c.Expires = now.Add(expires).Unix()
			}
			if notBefore > 0 {
				c.NotBefore = now.Add(notBefore).Unix()
			}
			signed, err := claims.Sign(wasm, c, issuer, now)
			if err != nil {
				if errors.Is(err, claims.ErrMalformed) {
					return withCode(exitError, fmt.Errorf("%s: %w", args[0], err))
				}
				return withCode(exitUsage, err)
			}
			if err := os.WriteFile(out, signed, 0o644); err != nil {
				return withCode(exitError, err)
			}
			hash, _ := claims.Hash(signed)
			iss, _ := issuer.PublicKey()
			note := ""
			if fresh {
				note = " (new module key; its seed was not kept)"
			}
			fmt.Fprintf(io.stdout, "signed %s\n  issuer   %s\n  subject  %s%s\n  hash     %s\n", out, iss, subject, note, hash)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&issuerF, "issuer", "", "the account seed (SA…) that signs, from `SEEDFILE`")
	f.StringVar(&subjectF, "subject", "", "the module key, seed (SM…) or public (M…), from `SEEDFILE` (default: a new one)")
	f.StringVar(&out, "out", "", "write the signed module to `FILE` (may be MODULE itself)")
	f.StringSliceVar(&caps, "caps", nil, "capabilities the actor claims, comma-separated (e.g. wasmcloud:keyvalue)")
	f.StringSliceVar(&tags, "tags", nil, "tags, comma-separated")
	f.StringVar(&name, "name", "", "the actor's name (default: from the file name)")
	f.StringVar(&ver, "ver", "", "a human-readable version")
	f.IntVar(&rev, "rev", 0, "a revision number, increasing with each release")
	f.StringVar(&callAlias, "call-alias", "", "an alias callers may use instead of the module key")
	f.DurationVar(&expires, "expires", 0, "the claims expire this long from now (default: never)")
	f.DurationVar(&notBefore, "not-before", 0, "the claims become valid this long from now (default: at once)")
	return cmd
}

// readIssuer reads an account seed.
func readIssuer(path string) (nkeys.KeyPair, error) {
	seed, err := readKeyFile(path)
	if err != nil {
		return nil, withCode(exitError, fmt.Errorf("--issuer: %w", err))
	}
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return nil, withCode(exitUsage, fmt.Errorf("--issuer %s: not an nkeys seed: %v", path, err))
	}
	if pub, err := kp.PublicKey(); err != nil || !nkeys.IsValidPublicAccountKey(pub) {
		return nil, withCode(exitUsage, fmt.Errorf("--issuer %s: %w: want an account seed (SA…)", path, claims.ErrBadIssuer))
	}
	return kp, nil
}

// readSubject reads a module seed or public key, or makes a new key when
// path is empty.
func readSubject(path string) (pub string, fresh bool, err error) {
	if path == "" {
		mk, err := claims.CreateModuleKey()
		if err != nil {
			return "", false, withCode(exitError, err)
		}
		return mk.PublicKey(), true, nil
	}
	b, err := readKeyFile(path)
	if err != nil {
		return "", false, withCode(exitError, fmt.Errorf("--subject: %w", err))
	}
	if claims.IsValidModuleKey(string(b)) {
		return string(b), false, nil
	}
	mk, err := claims.ModuleKeyFromSeed(b)
	if err != nil {
		return "", false, withCode(exitUsage, fmt.Errorf("--subject %s: want a module seed (SM…) or key (M…): %w", path, err))
	}
	return mk.PublicKey(), false, nil
}

// inspectJSON is the -o json form of inspect.
type inspectJSON struct {
	Module         string         `json:"module"`
	Valid          bool           `json:"valid"`
	Error          string         `json:"error,omitempty"`
	Section        string         `json:"section,omitempty"`
	Claims         *claims.Claims `json:"claims,omitempty"`
	SignatureValid bool           `json:"signature_valid"`
	HashValid      bool           `json:"hash_valid"`
	ComputedHash   string         `json:"computed_hash,omitempty"`
	Expired        bool           `json:"expired"`
	NotYetValid    bool           `json:"not_yet_valid"`
}

func newActorInspectCmd(io *streams) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "inspect MODULE.wasm",
		Short: "Show and verify the signed claims of an actor module",
		Long: `Inspect reads the claims (wascap JWT) in a module and checks them: signed with
Ed25519 by their issuer, an account key; the module hash (SHA-256 of the module
without the token) matches, always, whatever the token's wascap revision; and the
time is within their "not before" and expiry. It prints the issuer, the subject
(the actor's module key), capabilities, the hash and its verdict, and the dates;
-o json gives the same as JSON.

Exit codes: 0 the claims are valid; 1 they are not (the reason is printed), the
module has none, or it could not be read; 64 usage error.`,
		Example: `  trellis actor inspect echo_s.wasm
  trellis actor inspect -o json echo_s.wasm`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return withCode(exitUsage, fmt.Errorf("-o %q: want table or json", output))
			}
			wasm, err := os.ReadFile(args[0])
			if err != nil {
				return withCode(exitError, err)
			}
			now := time.Now()
			r, verr := claims.Check(wasm, now)
			if output == "json" {
				j := inspectJSON{Module: args[0], Valid: verr == nil, Section: r.Section, Claims: r.Claims,
					SignatureValid: r.SignatureValid, HashValid: r.HashValid, ComputedHash: r.ComputedHash,
					Expired: r.Expired, NotYetValid: r.NotYetValid}
				if verr != nil {
					j.Error = verr.Error()
				}
				if err := writeJSON(io.stdout, j); err != nil {
					return err
				}
			} else {
				printInspect(io.stdout, args[0], r, verr, now)
			}
			if verr != nil {
				return withCode(exitError, fmt.Errorf("%s: %w", args[0], verr))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

// printInspect writes what inspect found as a table.
func printInspect(w io.Writer, path string, r claims.Report, verr error, now time.Time) {
	if verr == nil {
		fmt.Fprintf(w, "%s: valid\n", path)
	} else {
		fmt.Fprintf(w, "%s: INVALID: %v\n", path, verr)
	}
	c := r.Claims
	if c == nil {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "name\t%s\n", orDash(c.Name))
	fmt.Fprintf(tw, "issuer\t%s\n", c.Issuer)
	fmt.Fprintf(tw, "subject\t%s\n", c.Subject)
	fmt.Fprintf(tw, "capabilities\t%s\n", orDash(strings.Join(c.Caps, ", ")))
	fmt.Fprintf(tw, "tags\t%s\n", orDash(strings.Join(c.Tags, ", ")))
	fmt.Fprintf(tw, "version\t%s (rev %d)\n", orDash(c.Ver), c.Rev)
	if c.CallAlias != "" {
		fmt.Fprintf(tw, "call alias\t%s\n", c.CallAlias)
	}
	if c.Provider {
		fmt.Fprintf(tw, "provider\tyes\n")
	}
	fmt.Fprintf(tw, "issued\t%s\n", unixTime(c.IssuedAt))
	switch {
	case c.Expires == 0:
		fmt.Fprintf(tw, "expires\tnever\n")
	case r.Expired:
		fmt.Fprintf(tw, "expires\t%s (EXPIRED)\n", unixTime(c.Expires))
	default:
		fmt.Fprintf(tw, "expires\t%s (in %s)\n", unixTime(c.Expires), time.Unix(c.Expires, 0).Sub(now).Round(time.Second))
	}
	switch {
	case c.NotBefore == 0:
		fmt.Fprintf(tw, "valid from\timmediately\n")
	case r.NotYetValid:
		fmt.Fprintf(tw, "valid from\t%s (NOT YET)\n", unixTime(c.NotBefore))
	default:
		fmt.Fprintf(tw, "valid from\t%s\n", unixTime(c.NotBefore))
	}
	if r.HashValid {
		fmt.Fprintf(tw, "hash\t%s (matches)\n", c.Hash)
	} else {
		fmt.Fprintf(tw, "hash\t%s (MISMATCH: the module hashes to %s)\n", c.Hash, r.ComputedHash)
	}
	if r.SignatureValid {
		fmt.Fprintf(tw, "signature\tvalid\n")
	} else {
		fmt.Fprintf(tw, "signature\tINVALID\n")
	}
	fmt.Fprintf(tw, "section\t%s (wascap revision %d)\n", r.Section, c.Revision)
	tw.Flush()
}

func unixTime(s int64) string { return time.Unix(s, 0).UTC().Format(time.RFC3339) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
