// Package agentconfig holds the example production agent config; its test
// keeps the file valid as the config grows.
package agentconfig

import (
	"testing"

	"github.com/trellis-edge/trellis/agent"
)

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := agent.LoadConfig("agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.WithDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
	if !cfg.Policy.RequireSigned || len(cfg.Policy.TrustedIssuers) == 0 {
		t.Fatalf("the production example must require signed actors: %+v", cfg.Policy)
	}
}
