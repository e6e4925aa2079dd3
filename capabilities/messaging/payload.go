package messaging

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/capabilities"
)

// The native operations' payloads that are not wasmCloud's shapes. Publish,
// Request and the delivered message use wasmcloud.Message and
// wasmcloud.RequestMessage in the wasmbus era.

// SubscribeRequest is the input of Subscribe: each message on Subject (a
// pattern) invokes the calling actor's Operation; with a Queue, one member
// of the queue group gets each message.
type SubscribeRequest struct {
	Subject   string `msgpack:"subject"`
	Operation string `msgpack:"operation"`
	Queue     string `msgpack:"queue,omitempty"`
}

// SubscribeResponse is the output of Subscribe.
type SubscribeResponse struct {
	ID string `msgpack:"id"`
}

// UnsubscribeRequest is the input of Unsubscribe.
type UnsubscribeRequest struct {
	ID string `msgpack:"id"`
}

// UnsubscribeResponse is the output of Unsubscribe.
type UnsubscribeResponse struct {
	Existed bool `msgpack:"existed"`
}

// TelemetryRequest is the input of trellis:telemetry Publish.
type TelemetryRequest struct {
	Topic string `msgpack:"topic"`
	Body  []byte `msgpack:"body"`
}

// Limits on the strings of payloads.
const (
	MaxSubject   = 1024 // bytes of a subject or pattern
	MaxOperation = 128  // bytes of an operation name
	MaxQueue     = 64   // bytes of a queue group name
	MaxTopic     = 256  // bytes of a telemetry topic
	maxID        = 256  // bytes of a subscription id (the store's bound)
)

// decodeStrict decodes a native payload into v: msgpack nested no deeper
// than capabilities.MaxPayloadDepth (checked first, which also bounds every
// declared length by the payload's size), no unknown keys, nothing after the
// map.
func decodeStrict(op string, payload []byte, v any) error {
	if err := capabilities.CheckMsgpack(payload, capabilities.MaxPayloadDepth); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	in := bytes.NewReader(payload) // an io.ByteScanner: the decoder reads it directly
	dec := msgpack.NewDecoder(in)
	dec.DisallowUnknownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s: %v", capabilities.ErrBadPayload, op, err)
	}
	if in.Len() > 0 {
		return fmt.Errorf("%w: %s: %d trailing bytes after the request", capabilities.ErrBadPayload, op, in.Len())
	}
	return nil
}

func decodeSubscribe(payload []byte) (SubscribeRequest, error) {
	var r SubscribeRequest
	if err := decodeStrict(OpSubscribe, payload, &r); err != nil {
		return SubscribeRequest{}, err
	}
	if err := checkSubject("subject", r.Subject, true); err != nil {
		return SubscribeRequest{}, fmt.Errorf("%w: %s: %v", capabilities.ErrBadPayload, OpSubscribe, err)
	}
	if reason := validOperation(r.Operation); reason != "" {
		return SubscribeRequest{}, fmt.Errorf("%w: %s: operation %s: %s", capabilities.ErrBadPayload, OpSubscribe, quote(r.Operation), reason)
	}
	if reason := validQueue(r.Queue); reason != "" {
		return SubscribeRequest{}, fmt.Errorf("%w: %s: queue %s: %s", capabilities.ErrBadPayload, OpSubscribe, quote(r.Queue), reason)
	}
	return r, nil
}

func decodeUnsubscribe(payload []byte) (UnsubscribeRequest, error) {
	var r UnsubscribeRequest
	if err := decodeStrict(OpUnsubscribe, payload, &r); err != nil {
		return UnsubscribeRequest{}, err
	}
	if r.ID == "" || len(r.ID) > maxID {
		return UnsubscribeRequest{}, fmt.Errorf("%w: %s: id %s: want 1 to %d bytes", capabilities.ErrBadPayload, OpUnsubscribe, quote(r.ID), maxID)
	}
	return r, nil
}

func decodeTelemetry(payload []byte) (TelemetryRequest, error) {
	var r TelemetryRequest
	if err := decodeStrict(OpPublish, payload, &r); err != nil {
		return TelemetryRequest{}, err
	}
	if len(r.Topic) > MaxTopic {
		return TelemetryRequest{}, fmt.Errorf("%w: %s: topic %s: longer than %d bytes", capabilities.ErrBadPayload, OpPublish, quote(r.Topic), MaxTopic)
	}
	if err := checkSubject("topic", r.Topic, false); err != nil {
		return TelemetryRequest{}, fmt.Errorf("%w: %s: %v", capabilities.ErrBadPayload, OpPublish, err)
	}
	return r, nil
}

// checkSubject checks a subject (wildcards false) or a pattern: the
// grants' rules (capabilities.ValidateSubject), at most MaxSubject bytes,
// and only printable UTF-8, so that it is safe in the protocol, the store
// and errors. field names it in the error.
func checkSubject(field, s string, wildcards bool) error {
	if len(s) > MaxSubject {
		return fmt.Errorf("%s %s: longer than %d bytes", field, quote(s), MaxSubject)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s %s: not UTF-8", field, quote(s))
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f {
			return fmt.Errorf("%s %s: control character", field, quote(s))
		}
	}
	if err := capabilities.ValidateSubject(s, wildcards); err != nil {
		return fmt.Errorf("%s: %v", field, err)
	}
	return nil
}

// Reserved reports whether subject (or, with a wildcard, some subject the
// pattern matches) belongs to the host: a first token of trellis, or a
// subject starting with $ (system and JetStream APIs) or _INBOX (replies of
// other clients). A pattern whose first token is a wildcard can match them,
// so it is reserved too. No grant allows an actor to reach these.
func Reserved(subject string) bool {
	first, _, _ := strings.Cut(subject, ".")
	return first == "trellis" || first == "*" || first == ">" ||
		strings.HasPrefix(subject, "$") || strings.HasPrefix(subject, "_INBOX")
}

// validOperation reports why op cannot be an actor operation name, or "" if
// it can.
func validOperation(op string) string {
	if op == "" {
		return "required"
	}
	if len(op) > MaxOperation {
		return "longer than " + strconv.Itoa(MaxOperation) + " bytes"
	}
	if !utf8.ValidString(op) {
		return "not UTF-8"
	}
	for _, r := range op {
		if r <= ' ' || r == 0x7f || r >= 0x80 && r <= 0x9f {
			return "want no spaces or control characters"
		}
	}
	return ""
}

// validQueue reports why q cannot be a queue group, or "" if it can ("" is
// no queue group).
func validQueue(q string) string {
	if q == "" {
		return ""
	}
	if len(q) > MaxQueue {
		return "longer than " + strconv.Itoa(MaxQueue) + " bytes"
	}
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c >= 0x7f || c == '.' || c == '*' || c == '>' {
			return "want one token of printable ASCII such as workers"
		}
	}
	return ""
}

// quote quotes a guest-chosen string for an error, cut to a readable length.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.QuoteToASCII(strings.ToValidUTF8(s[:max], "")) + "…"
	}
	return strconv.QuoteToASCII(s)
}
