package mesh

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Signed control commands: defence in depth behind NATS permissions. A host
// whose Host implements ControlAuthorizer obeys a command that changes it
// (actor start/stop/scale/update, labels, devices) only when the command
// carries a valid signature by one of its operator keys, made within the
// replay window, with a nonce it has not seen. A leaked device credential
// can then publish on another device's control subjects and still change
// nothing. Read-only operations (ping, inventory, device.get) stay open.
//
// The signature is Ed25519 by an nkey (operator O…, account A… or user U…)
// over
//
//	trellis-ctl-v1 \n <subject> \n <timestamp> \n <nonce> \n <hex sha256 of the body>
//
// carried in the headers below.
const (
	HeaderSigner    = "Trellis-Signer"    // the public nkey
	HeaderTimestamp = "Trellis-Timestamp" // Unix nanoseconds
	HeaderNonce     = "Trellis-Nonce"     // 32 hex digits, fresh per command
	HeaderSignature = "Trellis-Signature" // base64url, no padding

	// DefaultControlWindow is how far a command's timestamp may be from the
	// host's clock, either way.
	DefaultControlWindow = 2 * time.Minute
	// CtlCodeUnauthorized is the error code of a refused command.
	CtlCodeUnauthorized = "401"
)

// ControlAuthorizer is implemented by a Host that requires signed commands.
type ControlAuthorizer interface {
	ControlAuthorizer() *Authorizer
}

// Authorizer checks signed control commands.
type Authorizer struct {
	keys   []string
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time // nonce → when it expires from the window
}

// NewAuthorizer accepts commands signed by keys within window (0 means
// DefaultControlWindow).
func NewAuthorizer(keys []string, window time.Duration) (*Authorizer, error) {
	for i, k := range keys {
		if _, err := nkeys.FromPublicKey(k); err != nil {
			return nil, fmt.Errorf("mesh: operator key %d %q: %w", i, k, err)
		}
	}
	if window <= 0 {
		window = DefaultControlWindow
	}
	return &Authorizer{keys: slices.Clone(keys), window: window, now: time.Now, seen: map[string]time.Time{}}, nil
}

func signedText(subject, ts, nonce string, body []byte) []byte {
	sum := sha256.Sum256(body)
	return []byte("trellis-ctl-v1\n" + subject + "\n" + ts + "\n" + nonce + "\n" + hex.EncodeToString(sum[:]))
}

// SignControl adds a signature by kp to a control command.
func SignControl(msg *nats.Msg, kp nkeys.KeyPair, now time.Time) error {
	pub, err := kp.PublicKey()
	if err != nil {
		return err
	}
	var n [16]byte
	if _, err := rand.Read(n[:]); err != nil {
		return err
	}
	ts, nonce := strconv.FormatInt(now.UnixNano(), 10), hex.EncodeToString(n[:])
	sig, err := kp.Sign(signedText(msg.Subject, ts, nonce, msg.Data))
	if err != nil {
		return err
	}
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	msg.Header.Set(HeaderSigner, pub)
	msg.Header.Set(HeaderTimestamp, ts)
	msg.Header.Set(HeaderNonce, nonce)
	msg.Header.Set(HeaderSignature, base64.RawURLEncoding.EncodeToString(sig))
	return nil
}

// ErrUnauthorized is a command without a valid signature.
var ErrUnauthorized = errors.New("unauthorized")

// Check verifies a command's signature headers.
func (a *Authorizer) Check(subject string, header map[string][]string, body []byte) error {
	get := func(k string) string {
		if v := header[k]; len(v) == 1 {
			return v[0]
		}
		return ""
	}
	signer, ts, nonce, sig := get(HeaderSigner), get(HeaderTimestamp), get(HeaderNonce), get(HeaderSignature)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrUnauthorized, fmt.Sprintf(format, args...))
	}
	if signer == "" || sig == "" {
		return fail("the command is not signed by an operator key (this host requires %s and %s)", HeaderSigner, HeaderSignature)
	}
	if !slices.Contains(a.keys, signer) {
		return fail("signer %s is not an operator key of this host", signer)
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fail("%s %q: want Unix nanoseconds", HeaderTimestamp, ts)
	}
	now := a.now()
	if d := now.Sub(time.Unix(0, n)); d > a.window || d < -a.window {
		return fail("timestamp is %s from this host's clock, outside the window of %s", d.Round(time.Second), a.window)
	}
	if len(nonce) != 32 {
		return fail("%s: want 32 hex digits", HeaderNonce)
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return fail("%s: not base64url", HeaderSignature)
	}
	kp, err := nkeys.FromPublicKey(signer)
	if err != nil {
		return fail("signer: %v", err)
	}
	if err := kp.Verify(signedText(subject, ts, nonce, body), raw); err != nil {
		return fail("bad signature")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, exp := range a.seen {
		if now.After(exp) {
			delete(a.seen, k)
		}
	}
	if _, dup := a.seen[nonce]; dup {
		return fail("replayed command (nonce %s seen before)", nonce)
	}
	a.seen[nonce] = now.Add(2 * a.window)
	return nil
}

// signers are the keys ControlRequest signs with, by connection.
var signers sync.Map // *nats.Conn → nkeys.KeyPair

// SignControlRequests makes ControlRequest sign every command it sends on nc
// with kp (the CLI's --operator-key); nil stops it.
func SignControlRequests(nc *nats.Conn, kp nkeys.KeyPair) {
	if kp == nil {
		signers.Delete(nc)
		return
	}
	signers.Store(nc, kp)
}

// requestMsg sends a control request, signed when nc has a signer.
func requestMsg(ctx context.Context, nc *nats.Conn, subject string, body []byte) (*nats.Msg, error) {
	msg := nats.NewMsg(subject)
	msg.Data = body
	if kp, ok := signers.Load(nc); ok {
		if err := SignControl(msg, kp.(nkeys.KeyPair), time.Now()); err != nil {
			return nil, err
		}
	}
	return nc.RequestMsgWithContext(ctx, msg)
}
