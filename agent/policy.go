package agent

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/trellis-edge/trellis/agent/claims"
	"github.com/trellis-edge/trellis/mesh"
)

// PolicyConfig says which actor modules the agent runs. The zero value runs
// every module, signed or not (what `trellis dev` does); a production
// device sets RequireSigned and TrustedIssuers.
type PolicyConfig struct {
	// RequireSigned refuses modules without valid wascap claims.
	RequireSigned bool `yaml:"require_signed"`
	// TrustedIssuers are the account public keys (A…) whose signatures are
	// accepted; empty accepts any valid signature.
	TrustedIssuers []string `yaml:"trusted_issuers"`
	// OperatorKeys are the nkeys (O…, A… or U…) whose signatures a control
	// command that changes this host must carry (`--operator-key`); empty
	// accepts every command NATS lets through.
	OperatorKeys []string `yaml:"operator_keys"`
}

// Validate checks the issuer keys.
func (p PolicyConfig) Validate() error {
	for i, k := range p.TrustedIssuers {
		if !nkeys.IsValidPublicAccountKey(k) {
			return fmt.Errorf("trusted_issuers[%d] %q: want an account public key (A…)", i, k)
		}
	}
	for i, k := range p.OperatorKeys {
		if !nkeys.IsValidPublicOperatorKey(k) && !nkeys.IsValidPublicAccountKey(k) && !nkeys.IsValidPublicUserKey(k) {
			return fmt.Errorf("operator_keys[%d] %q: want an operator, account or user public key (O…, A…, U…)", i, k)
		}
	}
	return nil
}

// Rejection reasons, as the error, the actor_failed event and the log name
// them.
const (
	ReasonMissingClaims   = "missing claims"
	ReasonUntrustedIssuer = "untrusted issuer"
	ReasonBadHash         = "bad hash"
	ReasonBadSignature    = "bad signature"
	ReasonExpired         = "expired"
	ReasonNotYetValid     = "not yet valid"
	ReasonMalformedClaims = "malformed claims"
)

// RejectedError is a module the policy refuses.
type RejectedError struct {
	Actor  string
	Reason string // one of the Reason… constants
	Err    error
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("actor %s rejected by policy: %s: %v", e.Actor, e.Reason, e.Err)
}

func (e *RejectedError) Unwrap() error { return e.Err }

// ErrorCode lets the control API and callers classify it.
func (e *RejectedError) ErrorCode() string { return "denied" }

// admit checks a module against the policy. It returns the contracts a
// signed module's claims allow (nil for an unsigned module: no restriction
// beyond the grants).
func (p PolicyConfig) admit(name string, wasm []byte, now time.Time) ([]string, error) {
	c, err := claims.Verify(wasm, now)
	reject := func(reason string, err error) error { return &RejectedError{Actor: name, Reason: reason, Err: err} }
	switch {
	case errors.Is(err, claims.ErrNoClaims):
		if p.RequireSigned {
			return nil, reject(ReasonMissingClaims, errors.New("the module is not signed and the policy requires signed actors (require_signed)"))
		}
		return nil, nil
	case errors.Is(err, claims.ErrHashMismatch):
		return nil, reject(ReasonBadHash, err)
	case errors.Is(err, claims.ErrBadSignature):
		return nil, reject(ReasonBadSignature, err)
	case errors.Is(err, claims.ErrExpired):
		return nil, reject(ReasonExpired, err)
	case errors.Is(err, claims.ErrNotYetValid):
		return nil, reject(ReasonNotYetValid, err)
	case err != nil:
		return nil, reject(ReasonMalformedClaims, err)
	}
	if len(p.TrustedIssuers) > 0 && !slices.Contains(p.TrustedIssuers, c.Issuer) {
		return nil, reject(ReasonUntrustedIssuer, fmt.Errorf("issuer %s is not in trusted_issuers", c.Issuer))
	}
	// A signed module may call only the contracts its claims list (none
	// when it lists none), on top of its grants.
	return append([]string{}, c.Caps...), nil
}

// ControlAuthorizer implements mesh.ControlAuthorizer: with operator keys
// configured, control commands that change the host must be signed.
func (h *host) ControlAuthorizer() *mesh.Authorizer { return h.auth }
