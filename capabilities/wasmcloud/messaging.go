package wasmcloud

import "math"

// Message is a message on a subject, in every role the contracts give it:
// wasmbus PubMessage (Messaging.Publish input), SubMessage
// (MessageSubscriber.HandleMessage input) and ReplyMessage
// (Messaging.Request output); 0.18 PublishArgs and BrokerMessage; waSCC
// BrokerMessage.
//
// Wire shape: {subject: str, replyTo: str, body: bin}.
//
// Sources: wasmCloud/interfaces messaging/messaging.smithy (replyTo not
// @required) and messaging/rust/src/messaging.rs (reply_to: Option<String>,
// skip_serializing_if none); wasmCloud/actor-interfaces
// messaging/rust/src/generated.rs (#[serde(rename = "replyTo")], no
// defaults); protochron/wascc-codec src/messaging.rs (rename_all =
// "camelCase", body #[serde(default)]).
type Message struct {
	Subject string
	// ReplyTo is empty when there is none.
	ReplyTo string
	Body    []byte
}

const (
	shapeMessage         = "Message"
	shapeRequestMessage  = "RequestMessage"
	shapePublishResponse = "PublishResponse"
)

// EncodeMessage encodes m for era e. wasmbus leaves replyTo out when it is
// empty (as wasmbus-rpc does for None); the legacy eras always write it,
// because the 0.18 decoder requires it.
func EncodeMessage(e Era, m Message) ([]byte, error) {
	if !e.valid() {
		return nil, errEra(shapeMessage, e)
	}
	return encodeStruct([]field{
		{key: "subject", ptr: &m.Subject},
		{key: "replyTo", omitEmpty: e == EraWasmbus, ptr: &m.ReplyTo},
		{key: "body", ptr: &m.Body},
	})
}

// DecodeMessage decodes a message of era e. Required: subject and body
// (wasmbus, smithy @required); all three (0.18); subject and replyTo
// (waSCC, body defaults). A nil replyTo reads as empty. For the legacy eras
// the key reply_to is accepted too: the early waSCC model
// wasmCloud/actor-interfaces schemas/messaging.widl spells it so.
func DecodeMessage(e Era, b []byte) (Message, error) {
	var m Message
	if !e.valid() {
		return m, errEra(shapeMessage, e)
	}
	reply := field{key: "replyTo", required: e.legacy(), ptr: &m.ReplyTo}
	if e.legacy() {
		reply.aliases = []string{"reply_to"}
	}
	err := decodeStruct(shapeMessage, b, decodeOpts{}, []field{
		{key: "subject", required: true, ptr: &m.Subject},
		reply,
		{key: "body", required: e != EraWaSCC, ptr: &m.Body},
	})
	if err != nil {
		return Message{}, err
	}
	return m, nil
}

// RequestMessage is the input of a request/reply: wasmbus Messaging.Request
// {subject: str, body: bin, timeoutMs: u32}; legacy Request
// {subject: str, body: bin, timeout: i64}, also in milliseconds
// (wascc-codec RequestMessage.timeout_ms renamed "timeout"; actor-interfaces
// RequestArgs.timeout; the 0.18 NATS provider reads it as
// Duration::from_millis).
type RequestMessage struct {
	Subject   string
	Body      []byte
	TimeoutMs uint32
}

// EncodeRequestMessage encodes r for era e.
func EncodeRequestMessage(e Era, r RequestMessage) ([]byte, error) {
	switch {
	case e == EraWasmbus:
		return encodeStruct([]field{{key: "subject", ptr: &r.Subject}, {key: "body", ptr: &r.Body}, {key: "timeoutMs", ptr: &r.TimeoutMs}})
	case e.legacy():
		t := int64(r.TimeoutMs)
		return encodeStruct([]field{{key: "subject", ptr: &r.Subject}, {key: "body", ptr: &r.Body}, {key: "timeout", ptr: &t}})
	}
	return nil, errEra(shapeRequestMessage, e)
}

// DecodeRequestMessage decodes a request of era e. A legacy timeout outside
// [0, MaxUint32] ms is an error naming the field.
func DecodeRequestMessage(e Era, b []byte) (RequestMessage, error) {
	var r RequestMessage
	switch {
	case e == EraWasmbus:
		err := decodeStruct(shapeRequestMessage, b, decodeOpts{}, []field{
			{key: "subject", required: true, ptr: &r.Subject},
			{key: "body", required: true, ptr: &r.Body},
			{key: "timeoutMs", required: true, ptr: &r.TimeoutMs},
		})
		if err != nil {
			return RequestMessage{}, err
		}
		return r, nil
	case e.legacy():
		var t int64
		err := decodeStruct(shapeRequestMessage, b, decodeOpts{}, []field{
			{key: "subject", required: true, ptr: &r.Subject},
			{key: "body", required: e == Era018, ptr: &r.Body},
			{key: "timeout", required: true, ptr: &t},
		})
		if err != nil {
			return RequestMessage{}, err
		}
		if t < 0 || t > math.MaxUint32 {
			return RequestMessage{}, &PayloadError{Shape: shapeRequestMessage, Field: "timeout", Reason: "out of range [0, MaxUint32] ms"}
		}
		r.TimeoutMs = uint32(t)
		return r, nil
	}
	return RequestMessage{}, errEra(shapeRequestMessage, e)
}

// EncodePublishResponse encodes 0.18's answer to Publish: {published: bool}
// (actor-interfaces messaging/rust/src/generated.rs PublishResponse; the
// 0.18 actor unwraps its decode). waSCC actors ignore the answer and
// wasmbus expects an empty one.
func EncodePublishResponse(published bool) ([]byte, error) {
	return encodeStruct([]field{{key: "published", ptr: &published}})
}

// DecodePublishResponse decodes what EncodePublishResponse encodes.
func DecodePublishResponse(b []byte) (bool, error) {
	var p bool
	err := decodeStruct(shapePublishResponse, b, decodeOpts{}, []field{{key: "published", required: true, ptr: &p}})
	return p, err
}
