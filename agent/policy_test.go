package agent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/trellis-edge/trellis/agent"
	"github.com/trellis-edge/trellis/agent/claims"
	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/mesh"
)

// signKitchen signs the kitchen actor with issuer for caps.
func signKitchen(t *testing.T, issuer nkeys.KeyPair, caps []string, expires time.Time) []byte {
	t.Helper()
	mk, err := claims.CreateModuleKey()
	if err != nil {
		t.Fatal(err)
	}
	c := claims.Claims{Subject: mk.PublicKey(), Name: "kitchen", Caps: caps, Rev: 1, Ver: "0.1.0"}
	if !expires.IsZero() {
		c.Expires = expires.Unix()
	}
	signed, err := claims.Sign(readFile(t, kitchenWasm), c, issuer, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// TestPolicy: with require_signed and trusted issuers, the control API
// admits only valid modules signed by a trusted issuer; every refusal names
// its reason in the error and in the actor_failed event; a signed actor may
// call only the contracts its claims list, on top of its grants.
func TestPolicy(t *testing.T) {
	trusted, _ := nkeys.CreateAccount()
	stranger, _ := nkeys.CreateAccount()
	trustedPub, _ := trusted.PublicKey()
	a := startAgentConfig(t, agent.Config{Name: "policy", Policy: agent.PolicyConfig{RequireSigned: true, TrustedIssuers: []string{trustedPub}}})
	events, err := a.nc.SubscribeSync(mesh.EventSubject(mesh.DefaultLattice, a.id, "actor_failed"))
	if err != nil {
		t.Fatal(err)
	}
	grants := capabilities.Grants{KV: true, Sensors: []string{"room"}}
	start := func(name string, wasm []byte) error {
		return mesh.ControlRequest(t.Context(), a.nc, mesh.HostCtlSubject(mesh.DefaultLattice, a.id, mesh.CtlActorStart),
			mesh.StartActor{Name: name, Module: wasm, Grants: grants}, nil)
	}
	good := signKitchen(t, trusted, []string{"wasmcloud:keyvalue"}, time.Time{})
	tampered := append([]byte{}, good...)
	tampered[len(tampered)/3] ^= 0x01 // a byte of code
	for _, tc := range []struct {
		name, reason string
		wasm         []byte
	}{
		{"unsigned", agent.ReasonMissingClaims, readFile(t, kitchenWasm)},
		{"stranger", agent.ReasonUntrustedIssuer, signKitchen(t, stranger, nil, time.Time{})},
		{"expired", agent.ReasonExpired, signKitchen(t, trusted, nil, time.Now().Add(-time.Minute))},
		{"tampered", agent.ReasonBadHash, tampered},
	} {
		err := start(tc.name, tc.wasm)
		if err == nil || !strings.Contains(err.Error(), "rejected by policy: "+tc.reason) {
			t.Fatalf("%s: %v, want a rejection for %q", tc.name, err, tc.reason)
		}
		msg, err := events.NextMsg(10 * time.Second)
		if err != nil || !strings.Contains(string(msg.Data), tc.reason) {
			t.Fatalf("%s: actor_failed event %v, %v", tc.name, msg, err)
		}
	}
	if err := start("kitchen", good); err != nil {
		t.Fatalf("a module signed by a trusted issuer: %v", err)
	}
	// Its claims list wasmcloud:keyvalue: trellis:kv (the same contract) is
	// allowed; trellis:sensor is granted but not in the claims: denied.
	if _, err := hostcall(t, a, "trellis:kv", "Increment", map[string]any{"key": []byte("k"), "delta": 1}); err != nil {
		t.Fatalf("kv, listed in the claims: %v", err)
	}
	if _, err := hostcall(t, a, "trellis:sensor", "Read", map[string]any{"sensor": "room"}); err == nil || !strings.Contains(err.Error(), "claims do not list trellis:sensor") {
		t.Fatalf("sensor, granted but not in the claims: %v", err)
	}
	if _, err := hostcall(t, a, "trellis:numbergen", "GenerateGuid", nil); err != nil {
		t.Fatalf("numbergen needs neither grant nor claim: %v", err)
	}
}

// TestPolicyConfig: trusted issuers must be account keys; the config
// says which field is wrong.
func TestPolicyConfig(t *testing.T) {
	user, _ := nkeys.CreateUser()
	pub, _ := user.PublicKey()
	_, err := agent.New(agent.Config{DataDir: t.TempDir(), Policy: agent.PolicyConfig{TrustedIssuers: []string{pub}}}, agent.Options{})
	if err == nil || !strings.Contains(err.Error(), "trusted_issuers[0]") {
		t.Fatalf("a user key as trusted issuer: %v", err)
	}
	cfg, err := agent.ParseConfig([]byte("policy:\n  require_signed: true\n  trusted_issuers: []\n"))
	if err != nil || !cfg.Policy.RequireSigned {
		t.Fatalf("parse: %+v, %v", cfg.Policy, err)
	}
}

// TestOperatorSignedControl: with operator keys, an identity that can reach
// the control subjects (a leaked device credential, say) changes nothing
// unless it signs with an operator key; the inventory stays readable.
func TestOperatorSignedControl(t *testing.T) {
	operator, _ := nkeys.CreateOperator()
	opPub, _ := operator.PublicKey()
	a := startAgentConfig(t, agent.Config{Name: "guarded", Policy: agent.PolicyConfig{OperatorKeys: []string{opPub}}})
	subject := mesh.HostCtlSubject(mesh.DefaultLattice, a.id, mesh.CtlActorStart)
	req := mesh.StartActor{Name: "echo", Module: readFile(t, echoWasm)}
	nc := connect(t, a.url)
	err := mesh.ControlRequest(t.Context(), nc, subject, req, nil)
	if err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Fatalf("an unsigned start: %v", err)
	}
	var inv mesh.Inventory
	if err := mesh.ControlRequest(t.Context(), nc, mesh.HostCtlSubject(mesh.DefaultLattice, a.id, mesh.CtlInventory), nil, &inv); err != nil || len(inv.Actors) != 0 {
		t.Fatalf("inventory: %+v, %v (want readable, and no actor started)", inv.Actors, err)
	}
	mesh.SignControlRequests(nc, operator)
	if err := mesh.ControlRequest(t.Context(), nc, subject, req, nil); err != nil {
		t.Fatalf("a start signed by the operator: %v", err)
	}
}
