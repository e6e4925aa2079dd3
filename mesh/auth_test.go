package mesh

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// authHost is a fake host that requires signed commands.
type authHost struct {
	*fakeHost
	auth *Authorizer
}

func (h authHost) ControlAuthorizer() *Authorizer { return h.auth }

// TestSignedControl: a host with operator keys obeys only commands signed
// by one of them, fresh and not replayed; read-only operations stay open;
// nothing reaches the host from a refused command.
func TestSignedControl(t *testing.T) {
	operator, _ := nkeys.CreateOperator()
	opPub, _ := operator.PublicKey()
	stranger, _ := nkeys.CreateUser()
	auth, err := NewAuthorizer([]string{opPub}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s := ctlTestServer(t, 0)
	h := authHost{newFakeHost(testHostID, "signed"), auth}
	c, err := ServeControl(ctlConn(t, s), "default", testHostID, "dev", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	nc := ctlConn(t, s)
	subject := HostCtlSubject("default", testHostID, CtlActorStop)
	body := []byte(`{"name":"echo"}`)
	send := func(msg *nats.Msg) string {
		t.Helper()
		reply, err := nc.RequestMsg(msg, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return reply.Header.Get("Nats-Service-Error-Code") + " " + reply.Header.Get("Nats-Service-Error")
	}
	signed := func(kp nkeys.KeyPair, at time.Time) *nats.Msg {
		m := nats.NewMsg(subject)
		m.Data = body
		if err := SignControl(m, kp, at); err != nil {
			t.Fatal(err)
		}
		return m
	}

	if got := send(&nats.Msg{Subject: subject, Data: body}); !strings.HasPrefix(got, CtlCodeUnauthorized) || !strings.Contains(got, "not signed") {
		t.Fatalf("unsigned: %q", got)
	}
	if got := send(signed(stranger, time.Now())); !strings.Contains(got, "not an operator key") {
		t.Fatalf("signed by a stranger: %q", got)
	}
	if got := send(signed(operator, time.Now().Add(-time.Hour))); !strings.Contains(got, "outside the window") {
		t.Fatalf("an old command: %q", got)
	}
	tampered := signed(operator, time.Now())
	tampered.Data = []byte(`{"name":"other"}`)
	if got := send(tampered); !strings.Contains(got, "bad signature") {
		t.Fatalf("a changed body: %q", got)
	}
	if calls := h.Calls(); len(calls) != 0 {
		t.Fatalf("refused commands reached the host: %q", calls)
	}
	good := signed(operator, time.Now())
	if got := send(good); strings.TrimSpace(got) != "" {
		t.Fatalf("a signed command: %q", got)
	}
	replay := nats.NewMsg(subject)
	replay.Data, replay.Header = good.Data, good.Header
	if got := send(replay); !strings.Contains(got, "replayed") {
		t.Fatalf("a replay: %q", got)
	}
	if calls := h.Calls(); len(calls) != 1 {
		t.Fatalf("host calls %q, want the one signed command", calls)
	}
	// Read-only operations need no signature.
	var inv Inventory
	if err := ControlRequest(t.Context(), nc, HostCtlSubject("default", testHostID, CtlInventory), nil, &inv); err != nil {
		t.Fatalf("inventory unsigned: %v", err)
	}
	// ControlRequest signs when the connection has a signer.
	SignControlRequests(nc, operator)
	defer SignControlRequests(nc, nil)
	if err := ControlRequest(t.Context(), nc, subject, StopActor{Name: "echo"}, nil); err != nil {
		t.Fatalf("ControlRequest with a signer: %v", err)
	}
	var ce *ControlError
	SignControlRequests(nc, stranger)
	if err := ControlRequest(t.Context(), nc, subject, StopActor{Name: "echo"}, nil); !errors.As(err, &ce) || ce.Code != CtlCodeUnauthorized {
		t.Fatalf("ControlRequest signed by a stranger: %v", err)
	}
}

// FuzzAuthorizerCheck: arbitrary headers and bodies never panic and are
// never accepted without a signature by the operator key.
func FuzzAuthorizerCheck(f *testing.F) {
	operator, _ := nkeys.CreateOperator()
	opPub, _ := operator.PublicKey()
	auth, _ := NewAuthorizer([]string{opPub}, time.Minute)
	m := nats.NewMsg("s")
	m.Data = []byte("{}")
	_ = SignControl(m, operator, time.Now())
	f.Add(m.Header.Get(HeaderSigner), m.Header.Get(HeaderTimestamp), m.Header.Get(HeaderNonce), m.Header.Get(HeaderSignature), []byte("{}"))
	f.Add(opPub, "1", strings.Repeat("0", 32), "!!", []byte(nil))
	f.Fuzz(func(t *testing.T, signer, ts, nonce, sig string, body []byte) {
		h := map[string][]string{HeaderSigner: {signer}, HeaderTimestamp: {ts}, HeaderNonce: {nonce}, HeaderSignature: {sig}}
		if err := auth.Check("s", h, body); err == nil {
			// Only the seed's own signature over exactly this may pass; the
			// fuzzer cannot forge one, so it must be the seed corpus entry.
			if sig != m.Header.Get(HeaderSignature) || string(body) != "{}" {
				t.Fatalf("accepted a command not signed by the operator: %q", h)
			}
		}
	})
}
