package main

// The actor's payload structs are a second implementation of wasmCloud's
// shapes; capabilities/wasmcloud is the host's. These tests run every shape
// the actor uses through both, in both directions, and run the handlers
// against a fake host that decodes and answers with the host's codecs, so
// that any disagreement between the two fails here. A test may import the
// host; main.go may not.

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
	"github.com/trellis-edge/trellis/sdk"
	"github.com/vmihailenco/msgpack/v5"
)

// TestNames checks the actor's operation names and namespaces against the
// host's table: each host call must be an actor→host operation of the era
// the actor uses it in.
func TestNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{opHandleRequest, wasmcloud.OpHandleRequest},
		{opHandleMessage, wasmcloud.OpHandleMessage},
		{opHealthRequest, wasmcloud.OpHealthRequest},
		{opLegacyHandleRequest, wasmcloud.OpLegacyHandleRequest},
		{opLegacyHandleMessage, wasmcloud.OpLegacyHandleMessage},
		{opLegacyHealthRequest, wasmcloud.OpLegacyHealthRequest},
		{nsKeyValue, wasmcloud.KeyValue},
		{nsMessaging, wasmcloud.Messaging},
		{nsLogging, wasmcloud.Logging},
		{nsNumberGen, wasmcloud.NumberGen},
		{nsLegacyLogging, wasmcloud.Logging018},
	} {
		if c.got != c.want {
			t.Errorf("actor name %q, host name %q", c.got, c.want)
		}
	}
	for _, c := range []struct {
		ns, op string
		era    wasmcloud.Era
	}{
		{nsKeyValue, hcIncrement, wasmcloud.EraWasmbus},
		{nsLogging, hcWriteLog, wasmcloud.EraWasmbus},
		{nsMessaging, hcPublish, wasmcloud.EraWasmbus},
		{nsNumberGen, hcGenerateID, wasmcloud.EraWasmbus},
		{nsKeyValue, hcLegacyAdd, wasmcloud.Era018},
		{nsLegacyLogging, hcLegacyWrite, wasmcloud.Era018},
		{nsMessaging, hcLegacyPublish, wasmcloud.Era018},
	} {
		op, ok := wasmcloud.LookupHostCall(c.ns, c.op)
		if !ok {
			t.Errorf("%s %s: not a host call of the host's table", c.ns, c.op)
			continue
		}
		if op.Era != c.era {
			t.Errorf("%s %s: era %s in the host's table, the actor uses it as %s", c.ns, c.op, op.Era, c.era)
		}
	}
	seen := map[string]bool{}
	for _, r := range (actor{}).routes() {
		if seen[r.operation] {
			t.Errorf("operation %q registered twice", r.operation)
		}
		seen[r.operation] = true
	}
}

func TestCounterKeys(t *testing.T) {
	for _, c := range []struct{ path, wasmbus, legacy string }{
		{"/api/counter/x", "counter::api:counter:x", ":api:counter:x"},
		{"/", "counter::", ":"},
		{"", "counter:", ""},
		{"/a//b/", "counter::a::b:", ":a::b:"},
	} {
		if got := counterKey(c.path); got != c.wasmbus {
			t.Errorf("counterKey(%q) = %q, want %q", c.path, got, c.wasmbus)
		}
		if got := legacyCounterKey(c.path); got != c.legacy {
			t.Errorf("legacyCounterKey(%q) = %q, want %q", c.path, got, c.legacy)
		}
	}
}

func TestAmount(t *testing.T) {
	for _, c := range []struct {
		query string
		want  int32
	}{
		{"", 1},
		{"amount=5", 5},
		{"x=1&amount=-3&amount=9", -3}, // the first one, as form_urlencoded's find
		{"amount=%32%30", 20},
		{"amount=+7", 1},   // '+' is a space: " 7" is no i32 for Rust's parse either
		{"amount=%2B7", 7}, // a sign is
		{"amount=abc", 1},
		{"amount=", 1},
		{"amount=2147483648", 1}, // over i32
		{"amount", 1},
		{"a=%zz&amount=4", 4}, // a bad pair does not hide the others
	} {
		if got := amount(c.query); got != c.want {
			t.Errorf("amount(%q) = %d, want %d", c.query, got, c.want)
		}
	}
}

// shape is one wasm payload: the actor's value and the host's codec for it.
type shape struct {
	name string
	// guest is the actor's value (a struct, or a bare value).
	guest any
	// required lists the keys the actor's decoder requires.
	required []string
	// hostEncode encodes the same value with the host's codec.
	hostEncode func() ([]byte, error)
	// hostDecode decodes with the host's codec; the result must equal
	// hostWant.
	hostDecode func([]byte) (any, error)
	hostWant   any
	// sameBytes: both encoders must write identical bytes.
	sameBytes bool
}

func shapes() []shape {
	wb, v18 := wasmcloud.EraWasmbus, wasmcloud.Era018
	// One header name: msgpack/v5 does not sort the keys of a
	// map[string][]string, so two names would give either order (as a Rust
	// HashMap would); the decode-both-ways checks cover several names.
	hreq := wasmcloud.HTTPRequest{Method: "GET", Path: "/api/counter/x", QueryString: "amount=2", Header: map[string][]string{"X-Multi": {"a", "b"}}, Body: []byte("hi")}
	legacyHreq := wasmcloud.HTTPRequest{Method: "POST", Path: "/api/counter/x", QueryString: "a=1", Header: map[string][]string{"Accept": {"*/*"}}, Body: []byte{0, 1, 0xff}}
	return []shape{
		{
			name:       "wasmbus HttpRequest",
			guest:      httpRequest{Method: "GET", Path: "/api/counter/x", QueryString: "amount=2", Header: map[string][]string{"X-Multi": {"a", "b"}}, Body: []byte("hi")},
			required:   []string{"method", "path", "queryString", "header", "body"},
			hostEncode: func() ([]byte, error) { return wasmcloud.EncodeHTTPRequest(wb, hreq) },
			hostDecode: func(b []byte) (any, error) { return wasmcloud.DecodeHTTPRequest(wb, b) },
			hostWant:   hreq,
			sameBytes:  true,
		},
		{
			name:     "wasmbus HttpResponse",
			guest:    httpResponse{StatusCode: 200, Header: map[string][]string{}, Body: []byte(`{"counter":3}`)},
			required: []string{"statusCode"},
			hostEncode: func() ([]byte, error) {
				return wasmcloud.EncodeHTTPResponse(wb, wasmcloud.HTTPResponse{StatusCode: 200, Body: []byte(`{"counter":3}`)})
			},
			hostDecode: func(b []byte) (any, error) { return wasmcloud.DecodeHTTPResponse(wb, b) },
			hostWant:   wasmcloud.HTTPResponse{StatusCode: 200, Header: map[string][]string{}, Body: []byte(`{"counter":3}`)},
			sameBytes:  true,
		},
		{
			name:     "IncrementRequest / AddArgs",
			guest:    incrementRequest{Key: "counter::api:counter:x", Value: -70000},
			required: []string{"key", "value"},
			hostEncode: func() ([]byte, error) {
				return wasmcloud.EncodeIncrementRequest(wasmcloud.IncrementRequest{Key: "counter::api:counter:x", Value: -70000})
			},
			hostDecode: func(b []byte) (any, error) { return wasmcloud.DecodeIncrementRequest(b) },
			hostWant:   wasmcloud.IncrementRequest{Key: "counter::api:counter:x", Value: -70000},
			sameBytes:  true,
		},
		{
			name:       "KeyValue.Increment reply (bare i32)",
			guest:      int32(70000),
			hostEncode: func() ([]byte, error) { return wasmcloud.EncodeIncrementResponse(wb, 70000) },
			hostDecode: func(b []byte) (any, error) { return wasmcloud.DecodeIncrementResponse(wb, b) },
			hostWant:   int32(70000),
			sameBytes:  true,
		},
		{
			name:     "LogEntry",
			guest:    logEntry{Level: "info", Text: "counter k = 1"},
			required: []string{"level", "text"},
			hostEncode: func() ([]byte, error) {
				return wasmcloud.EncodeLogEntry(wb, wasmcloud.LogEntry{Level: "info", Text: "counter k = 1"})
			},
			hostDecode: func(b []byte) (any, error) { return wasmcloud.DecodeLogEntry(wb, b) },
			hostWant:   wasmcloud.LogEntry{Level: "info", Text: "counter k = 1"},
			sameBytes:  true,
		},
		{
			name:     "SubMessage / PubMessage with replyTo",
			guest:    message{Subject: "wc.in", ReplyTo: "wc.reply", Body: []byte("ping")},
			required: []string{"subject", "body"},
			hostEncode: func() ([]byte, error) {
				return wasmcloud.EncodeMessage(wb, wasmcloud.Message{Subject: "wc.in", ReplyTo: "wc.reply", Body: []byte("ping")})
			},
			hostDecode: func(b []byte) (any, error) { return wasmcloud.DecodeMessage(wb, b) },
			hostWant:   wasmcloud.Message{Subject: "wc.in", ReplyTo: "wc.reply", Body: []byte("ping")},
			sameBytes:  true,
		},
		{
			name:     "SubMessage / PubMessage without replyTo",
			guest:    message{Subject: "wc.echo", Body: []byte{0, 0xc1, 0xff}},
			required: []string{"subject", "body"},
			hostEncode: func() ([]byte, error) {
				return wasmcloud.EncodeMessage(wb, wasmcloud.Message{Subject: "wc.echo", Body: []byte{0, 0xc1, 0xff}})
			},
			hostDecode: func(b []byte) (any, error) { return wasmcloud.DecodeMessage(wb, b) },
			hostWant:   wasmcloud.Message{Subject: "wc.echo", Body: []byte{0, 0xc1, 0xff}},
			sameBytes:  true,
		},
		{
			name:       "NumberGen.GenerateGuid reply (bare str)",
			guest:      "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
			hostEncode: func() ([]byte, error) { return wasmcloud.EncodeString("3f2504e0-4f89-41d3-9a0c-0305e82c3301") },
			hostDecode: func(b []byte) (any, error) { return wasmcloud.DecodeString(b) },
			hostWant:   "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
			sameBytes:  true,
		},
		{
			// The actor answers {healthy: true}, leaving the None message
			// out; the host writes both fields.
			name:  "wasmbus HealthCheckResponse",
			guest: healthResponse{Healthy: true},
			hostEncode: func() ([]byte, error) {
				return wasmcloud.EncodeHealthResponse(wb, wasmcloud.HealthResponse{Healthy: true})
			},
			hostDecode: func(b []byte) (any, error) { return wasmcloud.DecodeHealthResponse(wb, b) },
			hostWant:   wasmcloud.HealthResponse{Healthy: true},
		},
		{
			name:       "wasmbus HealthCheckRequest",
			guest:      struct{}{},
			hostEncode: func() ([]byte, error) { return wasmcloud.EncodeHealthRequest(wb) },
			hostDecode: func(b []byte) (any, error) { return nil, wasmcloud.DecodeHealthRequest(wb, b) },
			sameBytes:  true,
		},

		{
			name:       "0.18 Request",
			guest:      legacyRequest{Method: "POST", Path: "/api/counter/x", QueryString: "a=1", Header: map[string]string{"Accept": "*/*"}, Body: []byte{0, 1, 0xff}},
			required:   []string{"method", "path", "queryString", "header", "body"},
			hostEncode: func() ([]byte, error) { return wasmcloud.EncodeHTTPRequest(v18, legacyHreq) },
			hostDecode: func(b []byte) (any, error) { return wasmcloud.DecodeHTTPRequest(v18, b) },
			hostWant:   legacyHreq,
			sameBytes:  true,
		},
		{
			name:     "0.18 Response",
			guest:    legacyResponse{StatusCode: 200, Status: "OK", Header: map[string]string{}, Body: []byte(`{"counter":1}`)},
			required: []string{"statusCode", "status", "header", "body"},
			hostEncode: func() ([]byte, error) {
				return wasmcloud.EncodeHTTPResponse(v18, wasmcloud.HTTPResponse{StatusCode: 200, Status: "OK", Body: []byte(`{"counter":1}`)})
			},
			hostDecode: func(b []byte) (any, error) { return wasmcloud.DecodeHTTPResponse(v18, b) },
			hostWant:   wasmcloud.HTTPResponse{StatusCode: 200, Status: "OK", Header: map[string][]string{}, Body: []byte(`{"counter":1}`)},
			sameBytes:  true,
		},
		{
			name:       "0.18 AddResponse",
			guest:      addResponse{Value: -5},
			required:   []string{"value"},
			hostEncode: func() ([]byte, error) { return wasmcloud.EncodeIncrementResponse(v18, -5) },
			hostDecode: func(b []byte) (any, error) { return wasmcloud.DecodeIncrementResponse(v18, b) },
			hostWant:   int32(-5),
			sameBytes:  true,
		},
		{
			name:     "0.18 WriteLogArgs",
			guest:    writeLogArgs{Target: "kvcounter", Level: "info", Text: "counter k = 1"},
			required: []string{"target", "level", "text"},
			hostEncode: func() ([]byte, error) {
				return wasmcloud.EncodeLogEntry(v18, wasmcloud.LogEntry{Target: "kvcounter", Level: "info", Text: "counter k = 1"})
			},
			hostDecode: func(b []byte) (any, error) { return wasmcloud.DecodeLogEntry(v18, b) },
			hostWant:   wasmcloud.LogEntry{Target: "kvcounter", Level: "info", Text: "counter k = 1"},
			sameBytes:  true,
		},
		{
			name:     "0.18 BrokerMessage / PublishArgs with replyTo",
			guest:    brokerMessage{Subject: "wc.in", ReplyTo: "wc.reply", Body: []byte("ping")},
			required: []string{"subject", "replyTo", "body"},
			hostEncode: func() ([]byte, error) {
				return wasmcloud.EncodeMessage(v18, wasmcloud.Message{Subject: "wc.in", ReplyTo: "wc.reply", Body: []byte("ping")})
			},
			hostDecode: func(b []byte) (any, error) { return wasmcloud.DecodeMessage(v18, b) },
			hostWant:   wasmcloud.Message{Subject: "wc.in", ReplyTo: "wc.reply", Body: []byte("ping")},
			sameBytes:  true,
		},
		{
			// replyTo is written even when empty: the 0.18 decoder needs it.
			name:     "0.18 BrokerMessage / PublishArgs without replyTo",
			guest:    brokerMessage{Subject: "wc.echo", Body: []byte("x")},
			required: []string{"subject", "replyTo", "body"},
			hostEncode: func() ([]byte, error) {
				return wasmcloud.EncodeMessage(v18, wasmcloud.Message{Subject: "wc.echo", Body: []byte("x")})
			},
			hostDecode: func(b []byte) (any, error) { return wasmcloud.DecodeMessage(v18, b) },
			hostWant:   wasmcloud.Message{Subject: "wc.echo", Body: []byte("x")},
			sameBytes:  true,
		},
		{
			name:       "0.18 PublishResponse",
			guest:      publishResponse{Published: true},
			required:   []string{"published"},
			hostEncode: func() ([]byte, error) { return wasmcloud.EncodePublishResponse(true) },
			hostDecode: func(b []byte) (any, error) { return wasmcloud.DecodePublishResponse(b) },
			hostWant:   true,
			sameBytes:  true,
		},
		{
			name:       "0.18 HealthCheckRequest",
			guest:      healthCheckRequest{Placeholder: true},
			required:   []string{"placeholder"},
			hostEncode: func() ([]byte, error) { return wasmcloud.EncodeHealthRequest(v18) },
			hostDecode: func(b []byte) (any, error) { return nil, wasmcloud.DecodeHealthRequest(v18, b) },
			sameBytes:  true,
		},
		{
			name:     "0.18 HealthCheckResponse",
			guest:    legacyHealthResponse{Healthy: true},
			required: []string{"healthy", "message"},
			hostEncode: func() ([]byte, error) {
				return wasmcloud.EncodeHealthResponse(v18, wasmcloud.HealthResponse{Healthy: true})
			},
			hostDecode: func(b []byte) (any, error) { return wasmcloud.DecodeHealthResponse(v18, b) },
			hostWant:   wasmcloud.HealthResponse{Healthy: true},
			sameBytes:  true,
		},
	}
}

// guestDecode decodes b into a new value of the guest's type, with the
// actor's own decoders.
func guestDecode(t *testing.T, s shape, b []byte) any {
	t.Helper()
	switch s.guest.(type) {
	case int32:
		n, err := decodeI32(s.name, b)
		if err != nil {
			t.Fatalf("actor decode of the host's bytes % x: %v", b, err)
		}
		return n
	case string:
		var v string
		if err := unmarshal(b, &v); err != nil {
			t.Fatalf("actor decode of the host's bytes % x: %v", b, err)
		}
		return v
	}
	p := reflect.New(reflect.TypeOf(s.guest))
	if err := decode(s.name, b, p.Interface(), s.required...); err != nil {
		t.Fatalf("actor decode of the host's bytes % x: %v", b, err)
	}
	return p.Elem().Interface()
}

// TestShapes runs each shape actor → host and host → actor.
func TestShapes(t *testing.T) {
	for _, s := range shapes() {
		t.Run(s.name, func(t *testing.T) {
			mine, err := encode(s.guest)
			if err != nil {
				t.Fatal(err)
			}
			theirs, err := s.hostEncode()
			if err != nil {
				t.Fatal(err)
			}
			if s.sameBytes && !bytes.Equal(mine, theirs) {
				t.Errorf("encodings differ:\nactor % x\nhost  % x", mine, theirs)
			}

			// actor → host
			got, err := s.hostDecode(mine)
			if err != nil {
				t.Fatalf("host decode of the actor's bytes % x: %v", mine, err)
			}
			if !reflect.DeepEqual(got, s.hostWant) {
				t.Errorf("host decoded the actor's bytes as %#v, want %#v", got, s.hostWant)
			}

			// host → actor
			if back := guestDecode(t, s, theirs); !reflect.DeepEqual(back, s.guest) {
				t.Errorf("actor decoded the host's bytes as %#v, want %#v", back, s.guest)
			}
		})
	}
}

// TestRequiredKeys drops each key the actor requires from the host's
// encoding: the actor must refuse it, naming the key, as serde does.
func TestRequiredKeys(t *testing.T) {
	for _, s := range shapes() {
		theirs, err := s.hostEncode()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range s.required {
			var m map[string]any
			if err := msgpack.Unmarshal(theirs, &m); err != nil {
				t.Fatal(err)
			}
			delete(m, k)
			b, err := msgpack.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			p := reflect.New(reflect.TypeOf(s.guest))
			err = decode(s.name, b, p.Interface(), s.required...)
			if err == nil || !strings.Contains(err.Error(), `"`+k+`"`) {
				t.Errorf("%s without %s: error %v, want one naming %q", s.name, k, err, k)
			}
		}
	}
}

// fakeHost serves the actor's host calls with the host's codecs: it
// decodes every payload as the host would and answers in the era the host
// table gives the operation.
type fakeHost struct {
	t        *testing.T
	era      wasmcloud.Era // every host call must be of this era
	counters map[string]int32
	logs     []wasmcloud.LogEntry
	pubs     []wasmcloud.Message
	// fail makes "namespace operation" fail with the host error text.
	fail map[string]string
	// reply replaces the answer of "namespace operation".
	reply map[string][]byte
}

func newFakeHost(t *testing.T, era wasmcloud.Era) *fakeHost {
	return &fakeHost{t: t, era: era, counters: map[string]int32{}, fail: map[string]string{}, reply: map[string][]byte{}}
}

const testGUID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"

func (h *fakeHost) call(bind, ns, name string, payload []byte) ([]byte, error) {
	h.t.Helper()
	if bind != "default" {
		h.t.Errorf("host call %s %s: binding %q, want default", ns, name, bind)
	}
	op, ok := wasmcloud.LookupHostCall(ns, name)
	if !ok {
		h.t.Errorf("host call %s %s: not in the host's table", ns, name)
		return nil, &sdk.HostError{Binding: bind, Namespace: ns, Operation: name, Message: "unknown operation"}
	}
	if op.Era != h.era {
		h.t.Errorf("host call %s %s: era %s, want %s", ns, name, op.Era, h.era)
	}
	key := ns + " " + name
	if msg, ok := h.fail[key]; ok {
		return nil, &sdk.HostError{Binding: bind, Namespace: ns, Operation: name, Message: msg}
	}
	out, err := h.serve(op, payload)
	if err != nil {
		h.t.Errorf("host call %s %s: the host refuses % x: %v", ns, name, payload, err)
		return nil, &sdk.HostError{Binding: bind, Namespace: ns, Operation: name, Message: err.Error()}
	}
	if b, ok := h.reply[key]; ok {
		return b, nil
	}
	return out, nil
}

func (h *fakeHost) serve(op wasmcloud.Operation, payload []byte) ([]byte, error) {
	switch op.Name {
	case wasmcloud.OpKVIncrement, wasmcloud.OpLegacyAdd:
		r, err := wasmcloud.DecodeIncrementRequest(payload)
		if err != nil {
			return nil, err
		}
		h.counters[r.Key] += r.Value
		return wasmcloud.EncodeIncrementResponse(op.Era, h.counters[r.Key])
	case wasmcloud.OpWriteLog, wasmcloud.OpLegacyWriteLog:
		l, err := wasmcloud.DecodeLogEntry(op.Era, payload)
		if err != nil {
			return nil, err
		}
		h.logs = append(h.logs, l)
		return nil, nil
	case wasmcloud.OpPublish, wasmcloud.OpLegacyPublish:
		m, err := wasmcloud.DecodeMessage(op.Era, payload)
		if err != nil {
			return nil, err
		}
		h.pubs = append(h.pubs, m)
		if op.Era == wasmcloud.Era018 {
			return wasmcloud.EncodePublishResponse(true)
		}
		return nil, nil
	case wasmcloud.OpGenerateGuid:
		if len(payload) != 0 {
			return nil, errors.New("GenerateGuid takes an empty payload")
		}
		return wasmcloud.EncodeString(testGUID)
	}
	return nil, errors.New("the fake host does not serve " + op.Name)
}

// handler returns the actor's handler of operation, calling h.
func handler(t *testing.T, h *fakeHost, operation string) sdk.Handler {
	t.Helper()
	for _, r := range (actor{call: h.call}).routes() {
		if r.operation == operation {
			return r.handler
		}
	}
	t.Fatalf("no operation %q", operation)
	return nil
}

func TestHTTPWasmbus(t *testing.T) {
	h := newFakeHost(t, wasmcloud.EraWasmbus)
	handle := handler(t, h, opHandleRequest)
	for i, c := range []struct {
		query string
		want  int32
		body  string
	}{{"", 1, `{"counter":1}`}, {"", 2, `{"counter":2}`}, {"amount=5", 7, `{"counter":7}`}} {
		in, err := wasmcloud.EncodeHTTPRequest(wasmcloud.EraWasmbus, wasmcloud.HTTPRequest{
			Method: "GET", Path: "/api/counter/x", QueryString: c.query,
			Header: map[string][]string{"Accept": {"application/json", "*/*"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := handle(in)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		res, err := wasmcloud.DecodeHTTPResponse(wasmcloud.EraWasmbus, out)
		if err != nil {
			t.Fatalf("request %d: host decode of % x: %v", i, out, err)
		}
		want := wasmcloud.HTTPResponse{StatusCode: 200, Header: map[string][]string{}, Body: counterJSON(c.want)}
		if !reflect.DeepEqual(res, want) {
			t.Errorf("request %d: response %#v, want %#v", i, res, want)
		}
		if got := string(res.Body); got != c.body {
			t.Errorf("request %d: body %s, want %s", i, got, c.body)
		}
	}
	if want := map[string]int32{"counter::api:counter:x": 7}; !reflect.DeepEqual(h.counters, want) {
		t.Errorf("counters %v, want %v", h.counters, want)
	}
	if len(h.logs) != 3 || h.logs[2] != (wasmcloud.LogEntry{Level: "info", Text: "counter counter::api:counter:x = 7"}) {
		t.Errorf("logs %#v", h.logs)
	}
}

func TestHTTPLegacy(t *testing.T) {
	h := newFakeHost(t, wasmcloud.Era018)
	handle := handler(t, h, opLegacyHandleRequest)
	for i, want := range []int32{1, 2} {
		in, err := wasmcloud.EncodeHTTPRequest(wasmcloud.Era018, wasmcloud.HTTPRequest{
			Method: "GET", Path: "/api/counter/x", QueryString: "amount=5", // 0.18 always adds 1
			Header: map[string][]string{"Accept": {"*/*"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := handle(in)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		res, err := wasmcloud.DecodeHTTPResponse(wasmcloud.Era018, out)
		if err != nil {
			t.Fatalf("request %d: host decode of % x: %v", i, out, err)
		}
		w := wasmcloud.HTTPResponse{StatusCode: 200, Status: "OK", Header: map[string][]string{}, Body: counterJSON(want)}
		if !reflect.DeepEqual(res, w) {
			t.Errorf("request %d: response %#v, want %#v", i, res, w)
		}
	}
	if want := map[string]int32{":api:counter:x": 2}; !reflect.DeepEqual(h.counters, want) {
		t.Errorf("counters %v, want %v", h.counters, want)
	}
	if len(h.logs) != 2 || h.logs[1] != (wasmcloud.LogEntry{Target: "kvcounter", Level: "info", Text: "counter :api:counter:x = 2"}) {
		t.Errorf("logs %#v", h.logs)
	}
}

func TestMessages(t *testing.T) {
	for _, c := range []struct {
		name      string
		era       wasmcloud.Era
		operation string
		in        wasmcloud.Message
		want      wasmcloud.Message
		response  []byte
	}{
		{"wasmbus reply", wasmcloud.EraWasmbus, opHandleMessage,
			wasmcloud.Message{Subject: "wc.in", ReplyTo: "wc.reply.1", Body: []byte("ping")},
			wasmcloud.Message{Subject: "wc.reply.1", Body: []byte("ping")}, nil},
		{"wasmbus no reply", wasmcloud.EraWasmbus, opHandleMessage,
			wasmcloud.Message{Subject: "wc.in", Body: []byte{0, 0xff}},
			wasmcloud.Message{Subject: "wc.echo", Body: []byte{0, 0xff}}, nil},
		{"wasmbus empty body", wasmcloud.EraWasmbus, opHandleMessage,
			wasmcloud.Message{Subject: "wc.in"},
			wasmcloud.Message{Subject: "wc.echo", Body: []byte{}}, nil},
		{"0.18 reply", wasmcloud.Era018, opLegacyHandleMessage,
			wasmcloud.Message{Subject: "legacy.in", ReplyTo: "wc.reply.2", Body: []byte("ping")},
			wasmcloud.Message{Subject: "wc.reply.2", Body: []byte("ping")}, []byte{0xc0}},
		{"0.18 no reply", wasmcloud.Era018, opLegacyHandleMessage,
			wasmcloud.Message{Subject: "legacy.in", Body: []byte("x")},
			wasmcloud.Message{Subject: "wc.echo", Body: []byte("x")}, []byte{0xc0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newFakeHost(t, c.era)
			in, err := wasmcloud.EncodeMessage(c.era, c.in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := handler(t, h, c.operation)(in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, c.response) {
				t.Errorf("response % x, want % x", out, c.response)
			}
			if len(h.pubs) != 1 || !reflect.DeepEqual(h.pubs[0], c.want) {
				t.Errorf("published %#v, want %#v", h.pubs, c.want)
			}
		})
	}
}

func TestGenerateGuid(t *testing.T) {
	h := newFakeHost(t, wasmcloud.EraWasmbus)
	out, err := handler(t, h, opGenerateGuid)(nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != testGUID {
		t.Errorf("got %q, want %q", out, testGUID)
	}
}

func TestHealth(t *testing.T) {
	for _, c := range []struct {
		era       wasmcloud.Era
		operation string
	}{{wasmcloud.EraWasmbus, opHealthRequest}, {wasmcloud.Era018, opLegacyHealthRequest}} {
		h := newFakeHost(t, c.era)
		in, err := wasmcloud.EncodeHealthRequest(c.era)
		if err != nil {
			t.Fatal(err)
		}
		out, err := handler(t, h, c.operation)(in)
		if err != nil {
			t.Fatalf("%s: %v", c.operation, err)
		}
		res, err := wasmcloud.DecodeHealthResponse(c.era, out)
		if err != nil || !res.Healthy {
			t.Errorf("%s: answered % x: %+v, %v", c.operation, out, res, err)
		}
	}
}

// rawMap encodes a msgpack map with keys in the given order.
func rawMap(t *testing.T, kv ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := enc.EncodeMapLen(len(kv) / 2); err != nil {
		t.Fatal(err)
	}
	for _, v := range kv {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestErrors: a host call that fails, an answer of the wrong era's shape
// and a request of the wrong shape each fail the operation (a guest error;
// the host turns it into a 500), with an error that says what.
func TestErrors(t *testing.T) {
	wb, v18 := wasmcloud.EraWasmbus, wasmcloud.Era018
	req := func(e wasmcloud.Era) []byte {
		b, err := wasmcloud.EncodeHTTPRequest(e, wasmcloud.HTTPRequest{Method: "GET", Path: "/c", Header: map[string][]string{"Accept": {"*/*"}}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	msg := func(e wasmcloud.Era) []byte {
		b, err := wasmcloud.EncodeMessage(e, wasmcloud.Message{Subject: "s", ReplyTo: "r", Body: []byte("b")})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	bareInt, _ := wasmcloud.EncodeIncrementResponse(wb, 3)
	mapInt, _ := wasmcloud.EncodeIncrementResponse(v18, 3)
	notPublished, _ := wasmcloud.EncodePublishResponse(false)
	for _, c := range []struct {
		name      string
		era       wasmcloud.Era
		operation string
		in        []byte
		setup     func(*fakeHost)
		want      string // in the error
	}{
		{"wasmbus kv fails", wb, opHandleRequest, req(wb),
			func(h *fakeHost) { h.fail[nsKeyValue+" "+hcIncrement] = "denied: no kv grant" }, "denied: no kv grant"},
		{"wasmbus log fails", wb, opHandleRequest, req(wb),
			func(h *fakeHost) { h.fail[nsLogging+" "+hcWriteLog] = "rate limited" }, "rate limited"},
		{"wasmbus Increment answered {value}", wb, opHandleRequest, req(wb),
			func(h *fakeHost) { h.reply[nsKeyValue+" "+hcIncrement] = mapInt }, "want a bare integer"},
		{"wasmbus request with query_string", wb, opHandleRequest,
			rawMap(t, "method", "GET", "path", "/", "query_string", "", "header", map[string][]string{}, "body", []byte{}),
			nil, `missing field "queryString"`},
		{"wasmbus handler given a 0.18 request", wb, opHandleRequest, req(v18), nil, "decode HttpRequest"},
		{"wasmbus publish fails", wb, opHandleMessage, msg(wb),
			func(h *fakeHost) { h.fail[nsMessaging+" "+hcPublish] = "denied: publish r" }, "denied: publish r"},
		{"wasmbus message without body", wb, opHandleMessage, rawMap(t, "subject", "s"), nil, `missing field "body"`},
		{"numbergen fails", wb, opGenerateGuid, nil,
			func(h *fakeHost) { h.fail[nsNumberGen+" "+hcGenerateID] = "unavailable" }, "unavailable"},
		{"numbergen answers a map", wb, opGenerateGuid, nil,
			func(h *fakeHost) { h.reply[nsNumberGen+" "+hcGenerateID] = mapInt }, hcGenerateID + " reply"},

		{"0.18 kv fails", v18, opLegacyHandleRequest, req(v18),
			func(h *fakeHost) { h.fail[nsKeyValue+" "+hcLegacyAdd] = "denied: no kv grant" }, "denied: no kv grant"},
		{"0.18 log fails", v18, opLegacyHandleRequest, req(v18),
			func(h *fakeHost) { h.fail[nsLegacyLogging+" "+hcLegacyWrite] = "rate limited" }, "rate limited"},
		{"0.18 Add answered a bare int", v18, opLegacyHandleRequest, req(v18),
			func(h *fakeHost) { h.reply[nsKeyValue+" "+hcLegacyAdd] = bareInt }, "decode AddResponse"},
		{"0.18 handler given a wasmbus request", v18, opLegacyHandleRequest, req(wb), nil, "decode Request"},
		{"0.18 message without replyTo", v18, opLegacyHandleMessage,
			rawMap(t, "subject", "s", "body", []byte("b")), nil, `missing field "replyTo"`},
		{"0.18 publish fails", v18, opLegacyHandleMessage, msg(v18),
			func(h *fakeHost) { h.fail[nsMessaging+" "+hcLegacyPublish] = "denied: publish r" }, "denied: publish r"},
		{"0.18 not published", v18, opLegacyHandleMessage, msg(v18),
			func(h *fakeHost) { h.reply[nsMessaging+" "+hcLegacyPublish] = notPublished }, "published: false"},
		{"0.18 publish answered nothing", v18, opLegacyHandleMessage, msg(v18),
			func(h *fakeHost) { h.reply[nsMessaging+" "+hcLegacyPublish] = []byte{} }, "decode PublishResponse"},
		{"0.18 health without placeholder", v18, opLegacyHealthRequest, rawMap(t), nil, `missing field "placeholder"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newFakeHost(t, c.era)
			if c.setup != nil {
				c.setup(h)
			}
			out, err := handler(t, h, c.operation)(c.in)
			if err == nil {
				t.Fatalf("answered % x, want an error", out)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "wasmcloud-kvcounter: "+c.operation+": ") {
				t.Errorf("error %q, want it to name %s and contain %q", err, c.operation, c.want)
			}
		})
	}
}

// FuzzHandlers feeds arbitrary payloads to every operation: the actor must
// answer or fail, never panic (a panic traps the instance).
func FuzzHandlers(f *testing.F) {
	for _, e := range []wasmcloud.Era{wasmcloud.EraWasmbus, wasmcloud.Era018} {
		b, _ := wasmcloud.EncodeHTTPRequest(e, wasmcloud.HTTPRequest{Method: "GET", Path: "/api/counter/x", QueryString: "amount=2", Header: map[string][]string{"A": {"b"}}, Body: []byte("x")})
		f.Add(b)
		b, _ = wasmcloud.EncodeMessage(e, wasmcloud.Message{Subject: "s", ReplyTo: "r", Body: []byte("b")})
		f.Add(b)
		b, _ = wasmcloud.EncodeHealthRequest(e)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xc0})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xc6, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, payload []byte) {
		for _, e := range []wasmcloud.Era{wasmcloud.EraWasmbus, wasmcloud.Era018} {
			h := newFakeHost(t, e)
			for _, r := range (actor{call: h.call}).routes() {
				if slices.Contains([]string{opHandleRequest, opHandleMessage, opHealthRequest, opGenerateGuid}, r.operation) != (e == wasmcloud.EraWasmbus) {
					continue
				}
				_, _ = r.handler(payload)
			}
		}
	})
}
