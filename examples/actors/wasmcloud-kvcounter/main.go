// Command wasmcloud-kvcounter is a wasmCloud 0.x actor written from
// wasmCloud's public interface definitions, not from Trellis's: it speaks
// waPC and wasmCloud's msgpack shapes only, as an unmodified wasmCloud actor
// does, so that running it on Trellis checks the host's compatibility
// contracts against a second, independent implementation of them. One
// module carries both eras:
//
//   - wasmbus (wasmCloud ≥ 0.50, wasmCloud/interfaces smithy models):
//     HttpServer.HandleRequest, MessageSubscriber.HandleMessage and
//     Actor.HealthRequest, calling KeyValue.Increment, Logging.WriteLog,
//     Messaging.Publish and NumberGen.GenerateGuid.
//   - 0.18 (wasmCloud/actor-interfaces widl models): HandleRequest,
//     HandleMessage and HealthRequest, calling Add, WriteLog and Publish.
//
// It imports nothing of the host: the waPC plumbing is the sdk's Handle and
// HostCall (what wapc-guest gives a Rust actor) and the payload structs below
// are its own, with the map keys of wasmCloud's serde field names. See
// README.md for the shapes, their sources and the grants it needs.
//
// The file has no wasip1 build constraint so that main_test.go can run its
// handlers natively against the host's codecs (the sdk compiles natively).
package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/trellis-edge/trellis/sdk"
	"github.com/vmihailenco/msgpack/v5"
)

// binding is the link name of every host call: wasmCloud's default link.
const binding = "default"

// Operations the host invokes on the actor.
const (
	// wasmbus (wasmCloud/interfaces httpserver, messaging, core smithy).
	opHandleRequest = "HttpServer.HandleRequest"
	opHandleMessage = "MessageSubscriber.HandleMessage"
	opHealthRequest = "Actor.HealthRequest"
	// opGenerateGuid is this actor's own operation (not a wasmCloud one):
	// it answers, as plain text, a GUID it got from the numbergen builtin.
	opGenerateGuid = "KvCounter.GenerateGuid"

	// 0.18 (wasmCloud/actor-interfaces http-server, messaging, actor-core).
	opLegacyHandleRequest = "HandleRequest"
	opLegacyHandleMessage = "HandleMessage"
	opLegacyHealthRequest = "HealthRequest"
)

// Host calls the actor makes: namespace (contract id) and operation.
const (
	nsKeyValue  = "wasmcloud:keyvalue"
	nsMessaging = "wasmcloud:messaging"

	// wasmbus.
	nsLogging    = "wasmcloud:builtin:logging"
	nsNumberGen  = "wasmcloud:builtin:numbergen"
	hcIncrement  = "KeyValue.Increment"
	hcWriteLog   = "Logging.WriteLog"
	hcPublish    = "Messaging.Publish"
	hcGenerateID = "NumberGen.GenerateGuid"

	// 0.18.
	nsLegacyLogging = "wasmcloud:logging"
	hcLegacyAdd     = "Add"
	hcLegacyWrite   = "WriteLog"
	hcLegacyPublish = "Publish"
)

// echoSubject is where a message without a reply subject is echoed.
const echoSubject = "wc.echo"

// logTarget is the 0.18 log target: what the log crate's macros pass, the
// actor's module path.
const logTarget = "kvcounter"

// wasmbus payloads (wasmCloud/interfaces; rmp-serde writes structs as maps
// with the serde names below).

// httpRequest is HttpRequest (httpserver/httpserver.smithy).
type httpRequest struct {
	Method      string              `msgpack:"method"`
	Path        string              `msgpack:"path"`
	QueryString string              `msgpack:"queryString"`
	Header      map[string][]string `msgpack:"header"`
	Body        []byte              `msgpack:"body"`
}

// httpResponse is HttpResponse (httpserver/httpserver.smithy): no status.
type httpResponse struct {
	StatusCode uint16              `msgpack:"statusCode"`
	Header     map[string][]string `msgpack:"header"`
	Body       []byte              `msgpack:"body"`
}

// incrementRequest is IncrementRequest (keyvalue/keyvalue.smithy), and
// also 0.18's AddArgs (keyvalue/rust/src/generated.rs): the same map.
type incrementRequest struct {
	Key   string `msgpack:"key"`
	Value int32  `msgpack:"value"`
}

// logEntry is LogEntry (logging/logging.smithy).
type logEntry struct {
	Level string `msgpack:"level"`
	Text  string `msgpack:"text"`
}

// message is SubMessage and PubMessage (messaging/messaging.smithy):
// replyTo is an Option, left out when None.
type message struct {
	Subject string `msgpack:"subject"`
	ReplyTo string `msgpack:"replyTo,omitempty"`
	Body    []byte `msgpack:"body"`
}

// healthResponse is HealthCheckResponse (core/wasmcloud-core.smithy);
// message is an Option, left out when None, as the HealthResponder derive
// answers.
type healthResponse struct {
	Healthy bool   `msgpack:"healthy"`
	Message string `msgpack:"message,omitempty"`
}

// 0.18 payloads (wasmCloud/actor-interfaces */rust/src/generated.rs).

// legacyRequest is http-server's Request: one string per header.
type legacyRequest struct {
	Method      string            `msgpack:"method"`
	Path        string            `msgpack:"path"`
	QueryString string            `msgpack:"queryString"`
	Header      map[string]string `msgpack:"header"`
	Body        []byte            `msgpack:"body"`
}

// legacyResponse is http-server's Response: u32 status code and a reason.
type legacyResponse struct {
	StatusCode uint32            `msgpack:"statusCode"`
	Status     string            `msgpack:"status"`
	Header     map[string]string `msgpack:"header"`
	Body       []byte            `msgpack:"body"`
}

// addResponse is keyvalue's AddResponse.
type addResponse struct {
	Value int32 `msgpack:"value"`
}

// writeLogArgs is logging's WriteLogArgs.
type writeLogArgs struct {
	Target string `msgpack:"target"`
	Level  string `msgpack:"level"`
	Text   string `msgpack:"text"`
}

// brokerMessage is messaging's BrokerMessage and PublishArgs: replyTo is
// always written (a plain String, no serde default).
type brokerMessage struct {
	Subject string `msgpack:"subject"`
	ReplyTo string `msgpack:"replyTo"`
	Body    []byte `msgpack:"body"`
}

// publishResponse is messaging's PublishResponse.
type publishResponse struct {
	Published bool `msgpack:"published"`
}

// healthCheckRequest is actor-core's HealthCheckRequest.
type healthCheckRequest struct {
	Placeholder bool `msgpack:"placeholder"`
}

// legacyHealthResponse is actor-core's HealthCheckResponse: both fields
// always written.
type legacyHealthResponse struct {
	Healthy bool   `msgpack:"healthy"`
	Message string `msgpack:"message"`
}

// hostCall reaches the host: sdk.HostCall in the module, a fake host in
// main_test.go.
type hostCall func(binding, namespace, operation string, payload []byte) ([]byte, error)

// actor holds the handlers; its only state is how it reaches the host (the
// counters live in the host's key-value store).
type actor struct {
	call hostCall
}

// route is one operation the actor exports.
type route struct {
	operation string
	handler   sdk.Handler
}

// routes lists the actor's operations with their handlers.
func (a actor) routes() []route {
	return []route{
		{opHandleRequest, a.handleRequest},
		{opHandleMessage, a.handleMessage},
		{opHealthRequest, a.healthRequest},
		{opGenerateGuid, a.generateGuid},
		{opLegacyHandleRequest, a.legacyHandleRequest},
		{opLegacyHandleMessage, a.legacyHandleMessage},
		{opLegacyHealthRequest, a.legacyHealthRequest},
	}
}

// Handlers are registered in init: the host's _initialize runs package
// initialisation, but main.main never runs in a c-shared (reactor) module.
func init() {
	for _, r := range (actor{call: sdk.HostCall}).routes() {
		sdk.Handle(r.operation, r.handler)
	}
}

// main is required by package main and never called.
func main() {}

// wasmbus handlers.

// handleRequest counts requests per path, as wasmCloud/examples
// actor/kvcounter (src/lib.rs) does: key "counter:" + the path with '/'
// turned into ':', incremented by the query's amount (default 1), answered
// with {"counter": N}.
func (a actor) handleRequest(payload []byte) ([]byte, error) {
	var req httpRequest
	if err := decode("HttpRequest", payload, &req, "method", "path", "queryString", "header", "body"); err != nil {
		return nil, opError(opHandleRequest, err)
	}
	key := counterKey(req.Path)
	in, err := encode(incrementRequest{Key: key, Value: amount(req.QueryString)})
	if err != nil {
		return nil, opError(opHandleRequest, err)
	}
	out, err := a.call(binding, nsKeyValue, hcIncrement, in)
	if err != nil {
		return nil, opError(opHandleRequest, err)
	}
	n, err := decodeI32(hcIncrement+" reply", out)
	if err != nil {
		return nil, opError(opHandleRequest, err)
	}
	if err := a.log(countLine(key, n)); err != nil {
		return nil, opError(opHandleRequest, err)
	}
	res, err := encode(httpResponse{StatusCode: 200, Header: map[string][]string{}, Body: counterJSON(n)})
	if err != nil {
		return nil, opError(opHandleRequest, err)
	}
	return res, nil
}

// log writes text at level info through wasmcloud:builtin:logging. Unlike
// the samples' log macros, which drop logging errors, a refusal fails the
// operation, so that a host that refuses the shape is seen.
func (a actor) log(text string) error {
	in, err := encode(logEntry{Level: "info", Text: text})
	if err != nil {
		return err
	}
	_, err = a.call(binding, nsLogging, hcWriteLog, in)
	return err
}

// handleMessage echoes a message: it publishes the body to the message's
// reply subject, or to wc.echo when it has none, and answers nothing.
func (a actor) handleMessage(payload []byte) ([]byte, error) {
	var m message
	if err := decode("SubMessage", payload, &m, "subject", "body"); err != nil {
		return nil, opError(opHandleMessage, err)
	}
	subject := m.ReplyTo
	if subject == "" {
		subject = echoSubject
	}
	in, err := encode(message{Subject: subject, Body: nonNil(m.Body)})
	if err != nil {
		return nil, opError(opHandleMessage, err)
	}
	// Publish has no output: wasmbus-rpc ignores whatever the host answers.
	if _, err := a.call(binding, nsMessaging, hcPublish, in); err != nil {
		return nil, opError(opHandleMessage, err)
	}
	return nil, nil
}

// healthRequest answers {healthy: true}, as the HealthResponder derive does.
func (a actor) healthRequest(payload []byte) ([]byte, error) {
	// HealthCheckRequest has no fields, but it is a map.
	if err := decode("HealthCheckRequest", payload, &struct{}{}); err != nil {
		return nil, opError(opHealthRequest, err)
	}
	res, err := encode(healthResponse{Healthy: true})
	if err != nil {
		return nil, opError(opHealthRequest, err)
	}
	return res, nil
}

// generateGuid asks NumberGen.GenerateGuid (empty input, a bare str output)
// and answers the GUID as plain text.
func (a actor) generateGuid([]byte) ([]byte, error) {
	out, err := a.call(binding, nsNumberGen, hcGenerateID, nil)
	if err != nil {
		return nil, opError(opGenerateGuid, err)
	}
	var guid string
	if err := unmarshal(out, &guid); err != nil {
		return nil, opError(opGenerateGuid, fmt.Errorf("%s reply: %w", hcGenerateID, err))
	}
	if guid == "" {
		return nil, opError(opGenerateGuid, fmt.Errorf("%s reply: empty GUID", hcGenerateID))
	}
	return []byte(guid), nil
}

// 0.18 handlers.

// legacyHandleRequest counts requests per path, as the 0.18 kvcounter
// (wasmCloud/examples kvcounter, wasmcloud-actor-keyvalue add) did: key =
// the path with '/' turned into ':', Add 1, answer 200 "OK" with
// {"counter": N}.
func (a actor) legacyHandleRequest(payload []byte) ([]byte, error) {
	var req legacyRequest
	if err := decode("Request", payload, &req, "method", "path", "queryString", "header", "body"); err != nil {
		return nil, opError(opLegacyHandleRequest, err)
	}
	key := legacyCounterKey(req.Path)
	in, err := encode(incrementRequest{Key: key, Value: 1})
	if err != nil {
		return nil, opError(opLegacyHandleRequest, err)
	}
	out, err := a.call(binding, nsKeyValue, hcLegacyAdd, in)
	if err != nil {
		return nil, opError(opLegacyHandleRequest, err)
	}
	var add addResponse
	// A real 0.18 actor unwraps this decode: a bare int traps it.
	if err := decode("AddResponse", out, &add, "value"); err != nil {
		return nil, opError(opLegacyHandleRequest, err)
	}
	if err := a.legacyLog(countLine(key, add.Value)); err != nil {
		return nil, opError(opLegacyHandleRequest, err)
	}
	res, err := encode(legacyResponse{StatusCode: 200, Status: "OK", Header: map[string]string{}, Body: counterJSON(add.Value)})
	if err != nil {
		return nil, opError(opLegacyHandleRequest, err)
	}
	return res, nil
}

// legacyLog writes text at level info through wasmcloud:logging; a refusal
// fails the operation (see log).
func (a actor) legacyLog(text string) error {
	in, err := encode(writeLogArgs{Target: logTarget, Level: "info", Text: text})
	if err != nil {
		return err
	}
	// The host's answer is ignored, as wasmcloud-actor-logging does.
	_, err = a.call(binding, nsLegacyLogging, hcLegacyWrite, in)
	return err
}

// legacyHandleMessage echoes a message as handleMessage does, with the 0.18
// shapes, and answers serialize(()): a msgpack nil.
func (a actor) legacyHandleMessage(payload []byte) ([]byte, error) {
	var m brokerMessage
	if err := decode("BrokerMessage", payload, &m, "subject", "replyTo", "body"); err != nil {
		return nil, opError(opLegacyHandleMessage, err)
	}
	subject := m.ReplyTo
	if subject == "" {
		subject = echoSubject
	}
	in, err := encode(brokerMessage{Subject: subject, Body: nonNil(m.Body)})
	if err != nil {
		return nil, opError(opLegacyHandleMessage, err)
	}
	out, err := a.call(binding, nsMessaging, hcLegacyPublish, in)
	if err != nil {
		return nil, opError(opLegacyHandleMessage, err)
	}
	var pub publishResponse
	if err := decode("PublishResponse", out, &pub, "published"); err != nil {
		return nil, opError(opLegacyHandleMessage, err)
	}
	if !pub.Published {
		return nil, opError(opLegacyHandleMessage, errors.New(hcLegacyPublish+" answered published: false"))
	}
	return encode(nil)
}

// legacyHealthRequest answers {healthy: true, message: ""}, as
// wasmcloud-actor-core's default health handler does.
func (a actor) legacyHealthRequest(payload []byte) ([]byte, error) {
	var req healthCheckRequest
	if err := decode("HealthCheckRequest", payload, &req, "placeholder"); err != nil {
		return nil, opError(opLegacyHealthRequest, err)
	}
	res, err := encode(legacyHealthResponse{Healthy: true})
	if err != nil {
		return nil, opError(opLegacyHealthRequest, err)
	}
	return res, nil
}

// Pure logic.

// counterKey is the wasmbus sample's key: "counter:" + path, '/' → ':'.
// GET /api/counter/x counts under "counter::api:counter:x".
func counterKey(path string) string {
	return "counter:" + strings.ReplaceAll(path, "/", ":")
}

// legacyCounterKey is the 0.18 sample's key: the path, '/' → ':'.
// GET /api/counter/x counts under ":api:counter:x".
func legacyCounterKey(path string) string {
	return strings.ReplaceAll(path, "/", ":")
}

// amount is the wasmbus sample's increment: the first "amount" query
// parameter as an i32, 1 when it is absent or not a number.
func amount(query string) int32 {
	q, _ := url.ParseQuery(query) // keeps the pairs it could parse, like form_urlencoded
	v, ok := q["amount"]
	if !ok {
		return 1
	}
	n, err := strconv.ParseInt(v[0], 10, 32)
	if err != nil {
		return 1
	}
	return int32(n)
}

// counterJSON is serde_json's rendering of json!({"counter": n}).
func counterJSON(n int32) []byte {
	return []byte(`{"counter":` + strconv.FormatInt(int64(n), 10) + `}`)
}

func countLine(key string, n int32) string {
	return "counter " + key + " = " + strconv.FormatInt(int64(n), 10)
}

// nonNil keeps a body a msgpack bin: msgpack/v5 writes a nil slice as nil,
// which serde_bytes refuses.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func opError(op string, err error) error {
	return fmt.Errorf("wasmcloud-kvcounter: %s: %w", op, err)
}

// Codec: msgpack as wasmCloud's Rust actors write and read it (rmp-serde
// with structs as maps).

// encode writes v with the shortest integer forms, as rmp-serde does
// (msgpack/v5 otherwise writes an int32 field in five bytes), and sorted
// map keys, so that equal values give equal bytes.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return buf.Bytes(), nil
}

// unmarshal decodes exactly one value: trailing bytes are an error.
func unmarshal(b []byte, v any) error {
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r) // reads r directly: no read-ahead
	if err := dec.Decode(v); err != nil {
		return err
	}
	if r.Len() != 0 {
		return fmt.Errorf("%d bytes after the value", r.Len())
	}
	return nil
}

// decode decodes the msgpack map b into the struct v after checking that
// it has every key in required: serde refuses a struct with a missing
// field that has no default, so a misspelt key (query_string) is an error
// naming the field, never a silent zero. Unknown keys are skipped, as serde
// does.
func decode(shape string, b []byte, v any, required ...string) error {
	keys, err := mapKeys(b)
	if err != nil {
		return fmt.Errorf("decode %s: %w", shape, err)
	}
	for _, k := range required {
		if !slices.Contains(keys, k) {
			return fmt.Errorf("decode %s: missing field %q", shape, k)
		}
	}
	if err := unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", shape, err)
	}
	return nil
}

// mapKeys returns the keys of the msgpack map b. A map that declares more
// entries than its bytes can hold is refused before anything is allocated
// for it.
func mapKeys(b []byte) ([]string, error) {
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	n, err := dec.DecodeMapLen()
	switch {
	case err != nil:
		return nil, fmt.Errorf("not a map: %w", err)
	case n < 0:
		return nil, errors.New("nil, want a map")
	case n > r.Len()/2: // a key and a value take a byte each at least
		return nil, fmt.Errorf("map of %d entries in %d bytes", n, r.Len())
	}
	keys := make([]string, 0, n)
	for range n {
		k, err := dec.DecodeString()
		if err != nil {
			return nil, fmt.Errorf("map key: %w", err)
		}
		if err := dec.Skip(); err != nil {
			return nil, fmt.Errorf("value of %q: %w", k, err)
		}
		keys = append(keys, k)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d bytes after the value", r.Len())
	}
	return keys, nil
}

// decodeI32 decodes a bare msgpack integer that must fit an i32, in any
// msgpack width, as rmp-serde reads an i32.
func decodeI32(shape string, b []byte) (int32, error) {
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	v, err := dec.DecodeInterfaceLoose() // ints come back as int64 or uint64
	if err != nil {
		return 0, fmt.Errorf("decode %s: %w", shape, err)
	}
	if r.Len() != 0 {
		return 0, fmt.Errorf("decode %s: %d bytes after the value", shape, r.Len())
	}
	switch n := v.(type) {
	case int64:
		if n >= math.MinInt32 && n <= math.MaxInt32 {
			return int32(n), nil
		}
	case uint64:
		if n <= math.MaxInt32 {
			return int32(n), nil
		}
	default:
		return 0, fmt.Errorf("decode %s: %T, want a bare integer (an i32, not a map)", shape, v)
	}
	return 0, fmt.Errorf("decode %s: %v does not fit an i32", shape, v)
}
