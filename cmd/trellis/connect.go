package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/spf13/cobra"

	"github.com/trellis-edge/trellis/mesh"
)

// connFlags are the connection flags of every lattice command; they follow
// the nats CLI: --server, --creds, --context.
type connFlags struct {
	server  string
	creds   string
	context string
	lattice string
	timeout time.Duration
	opKey   string
}

const defaultServer = "nats://127.0.0.1:4222"

func (c *connFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&c.server, "server", "s", "", "NATS server URL(s), comma separated (default: the context's, else "+defaultServer+", the local device bus)")
	f.StringVar(&c.creds, "creds", "", "NATS credentials `FILE`")
	f.StringVar(&c.context, "context", "", "nats CLI context `NAME` to take the server and credentials from (see 'nats context ls')")
	f.StringVar(&c.lattice, "lattice", mesh.DefaultLattice, "lattice id")
	f.DurationVar(&c.timeout, "timeout", 10*time.Second, "how long to wait for the answer")
	f.StringVar(&c.opKey, "operator-key", os.Getenv("TRELLIS_OPERATOR_KEY"), "sign control commands with the nkey seed in `FILE` (hosts with policy.operator_keys require it; env TRELLIS_OPERATOR_KEY)")
}

// natsContext is the part of a nats CLI context file Trellis uses.
type natsContext struct {
	URL      string `json:"url"`
	Creds    string `json:"creds"`
	User     string `json:"user"`
	Password string `json:"password"`
	Token    string `json:"token"`
	NKey     string `json:"nkey"`
	CA       string `json:"ca"`
	Cert     string `json:"cert"`
	Key      string `json:"key"`
}

// loadNATSContext reads a saved nats CLI context: name, or the selected one
// when name is "" and one is selected. It returns nil when none applies.
func loadNATSContext(name string) (*natsContext, error) {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, nil
		}
		dir = filepath.Join(home, ".config")
	}
	dir = filepath.Join(dir, "nats")
	explicit := name != ""
	if !explicit {
		b, err := os.ReadFile(filepath.Join(dir, "context.txt"))
		if err != nil {
			return nil, nil // no context selected: that's fine
		}
		name = strings.TrimSpace(string(b))
		if name == "" {
			return nil, nil
		}
	}
	if strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return nil, fmt.Errorf("--context %q: not a context name", name)
	}
	path := filepath.Join(dir, "context", name+".json")
	b, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("nats context %q: %w", name, err)
	}
	var c natsContext
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("nats context %q (%s): %w", name, path, err)
	}
	return &c, nil
}

// connect opens a connection as the flags say.
func (c *connFlags) connect(name string) (*nats.Conn, error) {
	if err := mesh.ValidateToken("lattice", c.lattice); err != nil {
		return nil, withCode(exitUsage, err)
	}
	ctx, err := loadNATSContext(c.context)
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	url, creds := defaultServer, c.creds
	opts := []nats.Option{nats.Name(name), nats.Timeout(c.timeout)}
	if ctx != nil {
		if ctx.URL != "" {
			url = ctx.URL
		}
		if creds == "" {
			creds = ctx.Creds
		}
		switch {
		case ctx.User != "":
			opts = append(opts, nats.UserInfo(ctx.User, ctx.Password))
		case ctx.Token != "":
			opts = append(opts, nats.Token(ctx.Token))
		case ctx.NKey != "":
			o, err := nats.NkeyOptionFromSeed(ctx.NKey)
			if err != nil {
				return nil, withCode(exitUsage, fmt.Errorf("nats context nkey: %w", err))
			}
			opts = append(opts, o)
		}
		if ctx.CA != "" {
			opts = append(opts, nats.RootCAs(ctx.CA))
		}
		if ctx.Cert != "" && ctx.Key != "" {
			opts = append(opts, nats.ClientCert(ctx.Cert, ctx.Key))
		}
	}
	if c.server != "" {
		url = c.server
	}
	if creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	var signer nkeys.KeyPair
	if c.opKey != "" {
		seed, err := os.ReadFile(c.opKey)
		if err != nil {
			return nil, withCode(exitUsage, fmt.Errorf("--operator-key: %w", err))
		}
		if signer, err = nkeys.FromSeed(bytes.TrimSpace(seed)); err != nil {
			return nil, withCode(exitUsage, fmt.Errorf("--operator-key %s: not an nkey seed: %w", c.opKey, err))
		}
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, withCode(exitError, fmt.Errorf("connecting to %s: %w", url, err))
	}
	if signer != nil {
		mesh.SignControlRequests(nc, signer)
	}
	return nc, nil
}
