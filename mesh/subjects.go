// Package mesh is Trellis's lattice: the embedded nats-server every agent runs
// (the device bus, a leaf node of the hub), the subject space, actor RPC over
// NATS, the control API, events, and durable telemetry (a stream on the
// device and a forwarder to the hub, see telemetry.go).
//
// It is a leaf package: agent and cmd import it; it never imports agent.
// What it needs from an agent (calling actors, starting them, reporting
// inventory) it declares as small interfaces.
package mesh

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultLattice is the lattice id when none is given.
const DefaultLattice = "default"

// Subject roots. Every Trellis subject starts with "trellis.<lattice>.".
//
//	trellis.<lattice>.rpc.<actor>.<operation...>             call an actor wherever it runs (queue group)
//	trellis.<lattice>.host.<host>.rpc.<actor>.<operation...> call an actor on one host
//	trellis.<lattice>.ctl.…                                  control API (see control.go)
//	trellis.<lattice>.evt.<host>.<type>                      CloudEvents
//	trellis.<lattice>.tm.<host>.<topic...>                   telemetry, stored by the device's stream first
//	trellis.<lattice>.tmfwd.<host>.<topic...>                telemetry forwarded into the hub's stream
const (
	subjectRoot = "trellis"
	tokenRPC    = "rpc"
	tokenHost   = "host"
	tokenCtl    = "ctl"
	tokenEvt    = "evt"
)

// Headers of an RPC reply. A reply without HeaderErrorCode is a success and
// its body is the actor's response.
const (
	HeaderErrorCode = "Trellis-Error-Code" // a stable code: guest_error, trap, timeout, …
	HeaderError     = "Trellis-Error"      // the message, safe to show
	HeaderHost      = "Trellis-Host"       // id of the host that answered
)

// RPCQueue is the queue group of an actor's RPC subscriptions on every
// host, so one request is answered by one host.
func RPCQueue(actor string) string { return "trellis-rpc-" + actor }

// RPCSubject is the subject that calls operation on actor wherever it runs.
func RPCSubject(lattice, actor, operation string) string {
	return join(subjectRoot, lattice, tokenRPC, actor, operation)
}

// RPCWildcard matches every operation of actor, on any host.
func RPCWildcard(lattice, actor string) string {
	return join(subjectRoot, lattice, tokenRPC, actor, ">")
}

// PinnedRPCSubject calls operation on actor on one host only.
func PinnedRPCSubject(lattice, host, actor, operation string) string {
	return join(subjectRoot, lattice, tokenHost, host, tokenRPC, actor, operation)
}

// PinnedRPCWildcard matches every operation of actor on one host.
func PinnedRPCWildcard(lattice, host, actor string) string {
	return join(subjectRoot, lattice, tokenHost, host, tokenRPC, actor, ">")
}

// CtlSubject is a control API subject: trellis.<lattice>.ctl.<parts...>.
func CtlSubject(lattice string, parts ...string) string {
	return join(append([]string{subjectRoot, lattice, tokenCtl}, parts...)...)
}

// EventSubject is where a host publishes events of one type.
func EventSubject(lattice, host, typ string) string {
	return join(subjectRoot, lattice, tokenEvt, host, typ)
}

// EventWildcard matches every event of every host of a lattice.
func EventWildcard(lattice string) string { return join(subjectRoot, lattice, tokenEvt, ">") }

func join(tokens ...string) string { return strings.Join(tokens, ".") }

// RPCAddress is a parsed RPC subject.
type RPCAddress struct {
	Lattice   string
	Host      string // "" unless pinned
	Actor     string
	Operation string // may contain dots
}

// ErrBadSubject is a subject that is not a well-formed Trellis RPC subject.
var ErrBadSubject = errors.New("mesh: not a trellis rpc subject")

// ParseRPC parses an RPC subject, pinned or not. It never panics on garbage.
func ParseRPC(subject string) (RPCAddress, error) {
	t := strings.Split(subject, ".")
	if len(t) < 5 || t[0] != subjectRoot {
		return RPCAddress{}, fmt.Errorf("%w: %q", ErrBadSubject, subject)
	}
	a := RPCAddress{Lattice: t[1]}
	rest := t[2:]
	check := []string{a.Lattice}
	if rest[0] == tokenHost {
		if len(rest) < 5 || rest[2] != tokenRPC {
			return RPCAddress{}, fmt.Errorf("%w: %q", ErrBadSubject, subject)
		}
		a.Host, rest = rest[1], rest[2:]
		check = append(check, a.Host)
	}
	if rest[0] != tokenRPC || len(rest) < 3 {
		return RPCAddress{}, fmt.Errorf("%w: %q", ErrBadSubject, subject)
	}
	a.Actor, a.Operation = rest[1], strings.Join(rest[2:], ".")
	for _, tok := range append(append(check, a.Actor), rest[2:]...) {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
			return RPCAddress{}, fmt.Errorf("%w: %q: empty or wildcard token", ErrBadSubject, subject)
		}
	}
	return a, nil
}

// ValidateToken checks that s can be one subject token (a lattice id, host
// id, actor name or label): 1–64 of A–Z a–z 0–9 '-' '_'.
func ValidateToken(kind, s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("mesh: %s %q: want 1 to 64 characters", kind, s)
	}
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("mesh: %s %q: character %q at %d: want A-Z, a-z, 0-9, '-' or '_'", kind, s, c, i)
		}
	}
	return nil
}
