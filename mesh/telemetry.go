package mesh

// Telemetry: durable, ordered, exactly-once delivery from a device to the hub
// across outages of the uplink, the hub or the device.
//
//	device (JetStream domain <host>)                     hub (JetStream domain "hub")
//	publish trellis.<l>.tm.<host>.<topic>                stream TELEMETRY
//	  │  actors (trellis:telemetry), local programs        subjects trellis.*.tmfwd.>, limits retention,
//	  ▼                                                    duplicate window ≥ 10 min, direct get allowed
//	stream TELEMETRY                                         ▲
//	  subjects trellis.<l>.tm.<host>.>, work queue,          │ trellis.<l>.tmfwd.<host>.<topic>,
//	  file storage, MaxAge, MaxBytes, drop_oldest|reject     │ with Nats-Msg-Id; wait for the hub's ack
//	  └── consumer "trellis-forwarder" ──── Forwarder ──────┘ then ack on the device (deletes it there)
//
// A message published on a device's telemetry subject is stored by the
// device's stream (EnsureDeviceTelemetry) first; core NATS subscribers
// anywhere in the lattice also see it live, which is lossy during outages by
// design. The stream is a work queue: it holds only the backlog, the messages
// the hub has not confirmed, and admits no consumer but the forwarder's (read
// telemetry on the hub, or live). The Forwarder copies each message, in
// stream order, to the hub's subject with the same topic, and deletes it on
// the device once the hub's stream has acknowledged storing it.
//
// Each forwarded message keeps the original body and headers, except
// JetStream's directives (every header whose name starts with "Nats-": they
// were meant for the device's stream, and the hub would act on them again); a
// Nats-Msg-Id the publisher set moves to Trellis-Origin-Msg-Id. The forwarder
// adds:
//
//	Nats-Msg-Id           <host>.<device stream created, Unix ns>.<device stream sequence>
//	Nats-Expected-Stream  TELEMETRY
//	Trellis-Host          <host>
//	Trellis-Published     when the device stored it, RFC 3339 with nanoseconds, UTC
//
// The message id is the same at every retry and after restarts, so the hub's
// duplicate window drops a message sent twice. Before it sends again after a
// failure or a restart, the forwarder also asks the hub for the device's last
// stored message and skips what the hub has, so a replay is avoided even
// after the duplicate window has passed. One device's telemetry reaches the
// hub's stream in the device's order; a consumer may check it with
// ParseTelemetryMsgID: for one device stream the sequence only grows, with
// gaps where the device dropped messages.
//
// A publisher gets the guarantee by publishing with JetStream: the publish
// returns once the device's stream has stored the message, or fails
// (IsTelemetryFull) when the stream is full under the reject policy. A core
// NATS publish on the subject is stored the same way, but the publisher does
// not learn whether it was.
//
// The hub must accept messages as large as a device does (its max_payload
// and the stream's limits): a message the hub's stream refuses for its size
// is skipped and counted (ForwarderStats.Skipped); one over the hub
// server's max_payload would break the device's uplink each time it is sent.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TelemetryStream is the name of the telemetry stream, on every device (in
// the device's JetStream domain) and on the hub (in domain "hub").
const TelemetryStream = "TELEMETRY"

// HubTelemetrySubjects are the subjects of the hub's telemetry stream: every
// lattice's forwarded telemetry.
const HubTelemetrySubjects = "trellis.*.tmfwd.>"

// Headers of a forwarded telemetry message (HeaderHost, "Trellis-Host", is
// set too).
const (
	// HeaderPublished is when the device's stream stored the message,
	// RFC 3339 with nanoseconds in UTC.
	HeaderPublished = "Trellis-Published"
	// HeaderOriginMsgID keeps the Nats-Msg-Id the publisher set, if any.
	HeaderOriginMsgID = "Trellis-Origin-Msg-Id"
)

// Telemetry buffer policies: what a device's full telemetry stream does.
const (
	// TelemetryDropOldest discards the oldest messages to make room (the
	// default); the forwarder counts those it had not forwarded as dropped.
	TelemetryDropOldest = "drop_oldest"
	// TelemetryReject refuses new messages: the publisher gets an error
	// (IsTelemetryFull) and what was stored is kept.
	TelemetryReject = "reject"
)

// Defaults and bounds of TelemetryLimits and HubTelemetryOptions.
const (
	DefaultTelemetryMaxAge     = 7 * 24 * time.Hour
	DefaultTelemetryMaxBytes   = 64 << 20
	DefaultTelemetryDuplicates = 2 * time.Minute

	// DefaultHubTelemetryDuplicates is the hub's duplicate window, and the
	// least it may be: a retry that comes later than this after the first
	// try would be stored twice if the forwarder could not ask the hub
	// where it stands (see the Forwarder).
	DefaultHubTelemetryDuplicates = 10 * time.Minute
	DefaultHubTelemetryMaxAge     = 7 * 24 * time.Hour
)

const tokenTelemetry, tokenTelemetryFwd = "tm", "tmfwd"

// TelemetrySubject is where host publishes telemetry on topic (one or more
// dot-separated tokens).
func TelemetrySubject(lattice, host, topic string) string {
	return join(subjectRoot, lattice, tokenTelemetry, host, topic)
}

// TelemetryWildcard matches every telemetry subject of host: the subjects
// of the device's telemetry stream.
func TelemetryWildcard(lattice, host string) string {
	return join(subjectRoot, lattice, tokenTelemetry, host, ">")
}

// ForwardedTelemetrySubject is where the forwarder puts host's telemetry on
// topic for the hub's stream.
func ForwardedTelemetrySubject(lattice, host, topic string) string {
	return join(subjectRoot, lattice, tokenTelemetryFwd, host, topic)
}

// ForwardedTelemetryWildcard matches the forwarded telemetry of host, or of
// every host of the lattice when host is "".
func ForwardedTelemetryWildcard(lattice, host string) string {
	if host == "" {
		return join(subjectRoot, lattice, tokenTelemetryFwd, ">")
	}
	return join(subjectRoot, lattice, tokenTelemetryFwd, host, ">")
}

// ValidateTelemetryTopic checks a telemetry topic: one or more tokens
// separated by '.', none empty, without wildcards or white space.
func ValidateTelemetryTopic(topic string) error {
	if topic == "" {
		return fmt.Errorf("mesh: telemetry topic: empty")
	}
	for i, tok := range strings.Split(topic, ".") {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
			return fmt.Errorf("mesh: telemetry topic %q: token %d is empty or has a wildcard or white space", topic, i+1)
		}
	}
	return nil
}

// TelemetryMsgID is the Nats-Msg-Id of a forwarded message: the host, the
// creation time of the device's stream (so that a recreated stream, whose
// sequences start again at 1, gets new ids) and the message's sequence in it.
func TelemetryMsgID(host string, streamCreated time.Time, seq uint64) string {
	return host + "." + strconv.FormatInt(streamCreated.UnixNano(), 10) + "." + strconv.FormatUint(seq, 10)
}

// ErrBadTelemetryMsgID is a Nats-Msg-Id that TelemetryMsgID did not make.
var ErrBadTelemetryMsgID = errors.New("mesh: not a telemetry message id")

// ParseTelemetryMsgID splits a TelemetryMsgID into the host, the device
// stream's creation time in Unix nanoseconds and the sequence. It never
// panics on garbage.
func ParseTelemetryMsgID(id string) (host string, created int64, seq uint64, err error) {
	rest, seqText, ok := cutLast(id, '.')
	if !ok {
		return "", 0, 0, fmt.Errorf("%w: %q", ErrBadTelemetryMsgID, id)
	}
	host, createdText, ok := cutLast(rest, '.')
	if !ok {
		return "", 0, 0, fmt.Errorf("%w: %q", ErrBadTelemetryMsgID, id)
	}
	if ValidateToken("host", host) != nil {
		return "", 0, 0, fmt.Errorf("%w: %q: bad host", ErrBadTelemetryMsgID, id)
	}
	if !decimal(createdText) || !decimal(seqText) {
		return "", 0, 0, fmt.Errorf("%w: %q: want decimal numbers", ErrBadTelemetryMsgID, id)
	}
	if created, err = strconv.ParseInt(createdText, 10, 64); err != nil {
		return "", 0, 0, fmt.Errorf("%w: %q: bad stream creation time", ErrBadTelemetryMsgID, id)
	}
	if seq, err = strconv.ParseUint(seqText, 10, 64); err != nil || seq == 0 {
		return "", 0, 0, fmt.Errorf("%w: %q: bad sequence", ErrBadTelemetryMsgID, id)
	}
	return host, created, seq, nil
}

// decimal reports whether s is a number as strconv formats it: digits, no
// sign, no leading zero.
func decimal(s string) bool {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func cutLast(s string, sep byte) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, sep)
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// TelemetryLimits bound a device's telemetry stream. Zero fields mean the
// defaults.
type TelemetryLimits struct {
	// MaxAge drops messages older than this, forwarded or not (default
	// DefaultTelemetryMaxAge).
	MaxAge time.Duration
	// MaxBytes bounds the stream on disk (default DefaultTelemetryMaxBytes).
	MaxBytes int64
	// WhenFull is TelemetryDropOldest (default) or TelemetryReject.
	WhenFull string
	// Duplicates is the stream's duplicate window for publishers that set
	// Nats-Msg-Id themselves (default DefaultTelemetryDuplicates; never
	// more than MaxAge).
	Duplicates time.Duration
}

// Validate checks l without applying defaults.
func (l TelemetryLimits) Validate() error {
	switch {
	case l.MaxAge < 0:
		return fmt.Errorf("mesh: telemetry limits: max age %s: must not be negative", l.MaxAge)
	case l.MaxBytes < 0:
		return fmt.Errorf("mesh: telemetry limits: max bytes %d: must not be negative", l.MaxBytes)
	case l.Duplicates < 0:
		return fmt.Errorf("mesh: telemetry limits: duplicate window %s: must not be negative", l.Duplicates)
	case l.WhenFull != "" && l.WhenFull != TelemetryDropOldest && l.WhenFull != TelemetryReject:
		return fmt.Errorf("mesh: telemetry limits: when full %q: want %s or %s", l.WhenFull, TelemetryDropOldest, TelemetryReject)
	}
	return nil
}

// withDefaults fills the zero fields and keeps the duplicate window within
// MaxAge, which JetStream requires.
func (l TelemetryLimits) withDefaults() TelemetryLimits {
	if l.MaxAge == 0 {
		l.MaxAge = DefaultTelemetryMaxAge
	}
	if l.MaxBytes == 0 {
		l.MaxBytes = DefaultTelemetryMaxBytes
	}
	if l.WhenFull == "" {
		l.WhenFull = TelemetryDropOldest
	}
	if l.Duplicates == 0 {
		l.Duplicates = DefaultTelemetryDuplicates
	}
	l.Duplicates = min(l.Duplicates, l.MaxAge)
	return l
}

// deviceTelemetryConfig is the device's stream for l (with defaults).
func deviceTelemetryConfig(lattice, host string, l TelemetryLimits) jetstream.StreamConfig {
	discard := jetstream.DiscardOld
	if l.WhenFull == TelemetryReject {
		discard = jetstream.DiscardNew
	}
	return jetstream.StreamConfig{
		Name:        TelemetryStream,
		Description: "Trellis telemetry of " + host + " waiting for the hub",
		Subjects:    []string{TelemetryWildcard(lattice, host)},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Discard:     discard,
		MaxAge:      l.MaxAge,
		MaxBytes:    l.MaxBytes,
		MaxMsgs:     -1,
		Duplicates:  l.Duplicates,
		Replicas:    1,
	}
}

// EnsureDeviceTelemetry creates the device's telemetry stream in js (the
// device's own JetStream: jetstream.New on a connection to its server), or
// updates an existing one to these subjects and limits. Call it at startup
// before publishing telemetry or running a Forwarder. The messages already
// stored are kept; lowering MaxBytes below what is stored discards the
// oldest at once, whatever the policy.
func EnsureDeviceTelemetry(ctx context.Context, js jetstream.JetStream, lattice, host string, l TelemetryLimits) (jetstream.Stream, error) {
	if err := ValidateToken("lattice", lattice); err != nil {
		return nil, err
	}
	if err := ValidateToken("host", host); err != nil {
		return nil, err
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	st, err := js.CreateOrUpdateStream(ctx, deviceTelemetryConfig(lattice, host, l.withDefaults()))
	if err != nil {
		return nil, fmt.Errorf("mesh: device telemetry stream: %w", err)
	}
	return st, nil
}

// HubTelemetryOptions configure the hub's telemetry stream. Zero fields mean
// the defaults.
type HubTelemetryOptions struct {
	// Duplicates is the duplicate window, at least (and by default)
	// DefaultHubTelemetryDuplicates. The hub keeps every message id of the
	// window in memory: about 100 bytes per message.
	Duplicates time.Duration
	// MaxAge drops older messages (default DefaultHubTelemetryMaxAge); it
	// must not be shorter than Duplicates.
	MaxAge time.Duration
	// MaxBytes bounds the stream, dropping the oldest; 0 means no bound but
	// JetStream's own.
	MaxBytes int64
	// Replicas is the number of copies in a hub cluster (default 1; use 3 in
	// production).
	Replicas int
}

// Validate checks o without applying defaults.
func (o HubTelemetryOptions) Validate() error {
	switch {
	case o.Duplicates != 0 && o.Duplicates < DefaultHubTelemetryDuplicates:
		return fmt.Errorf("mesh: hub telemetry: duplicate window %s: want at least %s", o.Duplicates, DefaultHubTelemetryDuplicates)
	case o.MaxAge < 0:
		return fmt.Errorf("mesh: hub telemetry: max age %s: must not be negative", o.MaxAge)
	case o.MaxBytes < 0:
		return fmt.Errorf("mesh: hub telemetry: max bytes %d: must not be negative", o.MaxBytes)
	case o.Replicas < 0 || o.Replicas > 5:
		return fmt.Errorf("mesh: hub telemetry: replicas %d: want 1 to 5", o.Replicas)
	}
	o = o.withDefaults()
	if o.MaxAge < o.Duplicates {
		return fmt.Errorf("mesh: hub telemetry: max age %s: must not be shorter than the duplicate window %s", o.MaxAge, o.Duplicates)
	}
	return nil
}

func (o HubTelemetryOptions) withDefaults() HubTelemetryOptions {
	if o.Duplicates == 0 {
		o.Duplicates = DefaultHubTelemetryDuplicates
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultHubTelemetryMaxAge
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = -1
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	return o
}

// hubTelemetryConfig is the hub's stream for o (with defaults).
func hubTelemetryConfig(o HubTelemetryOptions) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        TelemetryStream,
		Description: "Trellis telemetry forwarded by the devices",
		Subjects:    []string{HubTelemetrySubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      o.MaxAge,
		MaxBytes:    o.MaxBytes,
		MaxMsgs:     -1,
		Duplicates:  o.Duplicates,
		Replicas:    o.Replicas,
		// The forwarders ask for their device's last message (direct get,
		// last by subject) to skip what the hub already has.
		AllowDirect: true,
	}
}

// EnsureHubTelemetry creates the hub's telemetry stream in js (the hub's
// JetStream), or updates an existing one to these subjects and limits. The
// hub calls it at startup; it is idempotent.
func EnsureHubTelemetry(ctx context.Context, js jetstream.JetStream, o HubTelemetryOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateStream(ctx, hubTelemetryConfig(o.withDefaults())); err != nil {
		return fmt.Errorf("mesh: hub telemetry stream: %w", err)
	}
	return nil
}

// IsTelemetryFull reports whether err, from a JetStream publish to a device's
// telemetry subject, means the stream is full and its policy is
// TelemetryReject (JetStream's "maximum bytes exceeded" and the like).
func IsTelemetryFull(err error) bool {
	var api *jetstream.APIError
	if !errors.As(err, &api) || api.ErrorCode != jsErrCodeStoreFailed {
		return false
	}
	switch api.Description {
	case "maximum bytes exceeded", "maximum messages exceeded", "maximum messages per subject exceeded":
		return true
	}
	return false
}

// JetStream error codes the telemetry code branches on (nats-server's
// errors.json).
const (
	jsErrCodeStoreFailed        jetstream.ErrorCode = 10077 // JSStreamStoreFailedF: {err}
	jsErrCodeMsgExceedsMaximum  jetstream.ErrorCode = 10054 // JSStreamMessageExceedsMaximumErr
	jsErrCodeHeaderExceedsLimit jetstream.ErrorCode = 10097 // JSStreamHeaderExceedsMaximumErr
)
