// Package messaging is the guest side of trellis:messaging: NATS subjects
// on the device's bus, which reaches the whole lattice. The actor needs
// grants of subject patterns: `publish` for Publish and Request,
// `subscribe` for Subscribe. Subjects whose first token is "trellis", and
// those starting with "$" or "_INBOX", belong to the host and are refused
// whatever the grants say. A refused call fails with an error that says
// "denied".
//
// Messages reach the actor in two ways: through a subscription an operator
// binds in the grants (`subscriptions: [{subject: ..., operation: ...}]`),
// or through one the actor makes with Subscribe, which the host keeps
// across restarts until Unsubscribe. Either way the host invokes one of
// the actor's operations with the message; HandleMessage registers it, and
// what the handler returns is published to the message's reply subject, if
// it has one:
//
//	func init() {
//		messaging.HandleMessage("Ping", func(m messaging.Message) ([]byte, error) {
//			return append([]byte("pong: "), m.Body...), nil
//		})
//	}
//
// with the grants
//
//	subscribe: ["ping"]
//	subscriptions: [{subject: ping, operation: Ping}]
//
// Errors the host returns are *sdk.HostError; an answer that does not
// decode is an error naming the key at fault.
package messaging

import (
	"math"
	"time"

	"github.com/trellis-edge/trellis/sdk"
	"github.com/trellis-edge/trellis/sdk/internal/msgpack"
	"github.com/trellis-edge/trellis/sdk/internal/wire"
)

// Namespace is the contract's namespace.
const Namespace = "trellis:messaging"

// DefaultOperation is the operation a subscription bound in the grants
// invokes when it names none (wasmCloud's wasmbus name).
const DefaultOperation = "MessageSubscriber.HandleMessage"

// Message is a message on a subject: one the actor publishes, one it
// receives, or the reply to a Request.
type Message struct {
	Subject string
	ReplyTo string // the subject to reply to; empty when there is none
	Body    []byte
}

// Publish publishes body on subject.
func Publish(subject string, body []byte) error {
	return PublishMessage(Message{Subject: subject, Body: body})
}

// PublishMessage publishes m, with its reply subject if it has one.
func PublishMessage(m Message) error {
	_, err := wire.Call(Namespace, "Publish", appendMessage(nil, m))
	return err
}

// appendMessage appends {subject, replyTo?, body}: replyTo is left out
// when empty, as wasmbus does.
func appendMessage(b []byte, m Message) []byte {
	n := 2
	if m.ReplyTo != "" {
		n++
	}
	b = msgpack.AppendMapHeader(b, n)
	b = msgpack.AppendString(msgpack.AppendString(b, "subject"), m.Subject)
	if m.ReplyTo != "" {
		b = msgpack.AppendString(msgpack.AppendString(b, "replyTo"), m.ReplyTo)
	}
	return msgpack.AppendBin(msgpack.AppendString(b, "body"), m.Body)
}

// Request publishes body on subject with a reply subject of the host's and
// returns the first reply. It waits at most timeout (0: the host's
// default, 2 s), and never past the deadline of the call in progress.
// Durations are sent in whole milliseconds, rounded up.
func Request(subject string, body []byte, timeout time.Duration) (Message, error) {
	b := msgpack.AppendMapHeader(nil, 3)
	b = msgpack.AppendString(msgpack.AppendString(b, "subject"), subject)
	b = msgpack.AppendBin(msgpack.AppendString(b, "body"), body)
	b = msgpack.AppendUint(msgpack.AppendString(b, "timeoutMs"), uint64(timeoutMs(timeout)))
	resp, err := wire.Call(Namespace, "Request", b)
	if err != nil {
		return Message{}, err
	}
	return decodeMessage("sdk/messaging: Request response", resp)
}

// timeoutMs converts d to whole milliseconds, rounding up and saturating.
func timeoutMs(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(ms)
}

// Subscribe asks the host to invoke the actor's operation with every
// message on subject (a pattern: "*" matches one token, ">" the rest) and
// returns the subscription's id, for Unsubscribe. With a queue group, a
// message goes to one member of the group only. The host keeps the
// subscription across restarts.
func Subscribe(subject, operation, queue string) (id string, err error) {
	n := 2
	if queue != "" {
		n++
	}
	b := msgpack.AppendMapHeader(nil, n)
	b = msgpack.AppendString(msgpack.AppendString(b, "subject"), subject)
	b = msgpack.AppendString(msgpack.AppendString(b, "operation"), operation)
	if queue != "" {
		b = msgpack.AppendString(msgpack.AppendString(b, "queue"), queue)
	}
	resp, err := wire.Call(Namespace, "Subscribe", b)
	if err != nil {
		return "", err
	}
	err = wire.DecodeMap("sdk/messaging: Subscribe response", resp, func(d *msgpack.Decoder, k string) (err error) {
		if k == "id" {
			id, err = d.String()
			return err
		}
		return d.Skip()
	})
	if err == nil && id == "" {
		err = wire.Invalid("sdk/messaging: Subscribe response", "no id")
	}
	return id, err
}

// Unsubscribe ends the subscription id made by Subscribe and reports
// whether it existed.
func Unsubscribe(id string) (existed bool, err error) {
	b := msgpack.AppendMapHeader(nil, 1)
	b = msgpack.AppendString(msgpack.AppendString(b, "id"), id)
	resp, err := wire.Call(Namespace, "Unsubscribe", b)
	if err != nil {
		return false, err
	}
	err = wire.DecodeMap("sdk/messaging: Unsubscribe response", resp, func(d *msgpack.Decoder, k string) (err error) {
		if k == "existed" {
			existed, err = d.Bool()
			return err
		}
		return d.Skip()
	})
	return existed, err
}

// DecodeMessage decodes the payload with which the host invokes a
// subscription's operation: {subject, replyTo?, body}.
func DecodeMessage(payload []byte) (Message, error) {
	return decodeMessage("sdk/messaging: message", payload)
}

func decodeMessage(what string, b []byte) (Message, error) {
	var m Message
	seen := false
	err := wire.DecodeMap(what, b, func(d *msgpack.Decoder, k string) (err error) {
		switch k {
		case "subject":
			seen = true
			m.Subject, err = d.String()
		case "replyTo", "reply_to":
			m.ReplyTo, err = d.String()
		case "body":
			m.Body, err = d.Bytes()
		default:
			err = d.Skip()
		}
		return err
	})
	if err == nil && !seen {
		err = wire.Invalid(what, "no subject")
	}
	if err != nil {
		return Message{}, err
	}
	return m, nil
}

// HandleMessage registers operation (with sdk.Handle, so call it from an
// init function) as the receiver of messages: each payload is decoded into
// a Message for f. When the message has a reply subject, the host
// publishes what f returns to it (nothing when f returns no bytes); an
// error from f, or a payload that does not decode, is the operation's
// error, which the host logs.
//
// The operation is the one a subscription names: DefaultOperation for a
// subscription bound in the grants without one.
func HandleMessage(operation string, f func(Message) ([]byte, error)) {
	sdk.Handle(operation, func(payload []byte) ([]byte, error) {
		m, err := DecodeMessage(payload)
		if err != nil {
			return nil, err
		}
		return f(m)
	})
}
