package mesh

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// ctlTestServer starts an in-process nats-server that listens on no port.
func ctlTestServer(t *testing.T, maxPayload int32) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{DontListen: true, NoLog: true, NoSigs: true, MaxPayload: maxPayload})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

func ctlConn(t *testing.T, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// fakeHost is an in-memory Host that records its calls.
type fakeHost struct {
	id, name string

	mu     sync.Mutex
	calls  []string
	labels map[string]string
	fail   error                           // returned by every action when set
	block  func(ctx context.Context) error // when set, actions call it
}

func newFakeHost(id, name string) *fakeHost {
	return &fakeHost{id: id, name: name, labels: map[string]string{"site": "lab"}}
}

func (h *fakeHost) record(format string, args ...any) error {
	h.mu.Lock()
	h.calls = append(h.calls, fmt.Sprintf(format, args...))
	fail := h.fail
	h.mu.Unlock()
	return fail
}

func (h *fakeHost) act(ctx context.Context, format string, args ...any) error {
	if err := h.record(format, args...); err != nil {
		return err
	}
	h.mu.Lock()
	block := h.block
	h.mu.Unlock()
	if block != nil {
		return block(ctx)
	}
	return nil
}

func (h *fakeHost) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

func (h *fakeHost) Inventory(context.Context) Inventory {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Inventory{
		Host:   HostInfo{ID: h.id, Name: h.name, Lattice: "default", Labels: maps.Clone(h.labels), Version: "dev"},
		Actors: []ActorInfo{{Name: "echo", MaxInstances: 2}},
	}
}

func (h *fakeHost) StartActor(ctx context.Context, req StartActor) error {
	return h.act(ctx, "StartActor %s %d bytes max=%d", req.Name, len(req.Module), req.Limits.MaxInstances)
}

func (h *fakeHost) UpdateActor(ctx context.Context, req StartActor) error {
	return h.act(ctx, "UpdateActor %s %d bytes", req.Name, len(req.Module))
}

func (h *fakeHost) StopActor(ctx context.Context, name string) error {
	return h.act(ctx, "StopActor %s", name)
}

func (h *fakeHost) ScaleActor(ctx context.Context, name string, n int) error {
	return h.act(ctx, "ScaleActor %s %d", name, n)
}

func (h *fakeHost) PutLabels(ctx context.Context, labels map[string]string) error {
	keys := slices.Sorted(maps.Keys(labels))
	var kv []string
	for _, k := range keys {
		kv = append(kv, k+"="+labels[k])
	}
	return h.act(ctx, "PutLabels %s", strings.Join(kv, ","))
}

func (h *fakeHost) DeleteLabels(ctx context.Context, keys []string) error {
	return h.act(ctx, "DeleteLabels %s", strings.Join(keys, ","))
}

var wasmModule = []byte("\x00asm\x01\x00\x00\x00")

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// ctlCase is one request to one control operation. The table also seeds the
// fuzz targets.
type ctlCase struct {
	name     string
	op       string // a Ctl… constant
	body     string
	code     string // "" for success
	message  string // substring of Reply.Message
	call     string // the Host call, "" for none
	hostFail bool   // the Host returns an error
}

var ctlCases = []ctlCase{
	{name: "inventory empty body", op: CtlInventory, body: ""},
	{name: "inventory empty object", op: CtlInventory, body: " {} "},
	{name: "inventory null", op: CtlInventory, body: "null"},
	{name: "inventory unknown field", op: CtlInventory, body: `{"x":1}`, code: CtlCodeBadRequest, message: `unknown field "x"`},
	{name: "inventory garbage", op: CtlInventory, body: "\x00\xff", code: CtlCodeBadRequest, message: "want a JSON object"},

	{name: "start", op: CtlActorStart, body: `{"name":"echo","module":"` + b64(wasmModule) + `","limits":{"max_instances":4,"call_timeout":"2s"}}`,
		message: `actor "echo" started`, call: "StartActor echo 8 bytes max=4"},
	{name: "start without limits", op: CtlActorStart, body: `{"name":"e_1-x","module":"` + b64(wasmModule) + `"}`,
		call: "StartActor e_1-x 8 bytes max=0"},
	{name: "start host fails", op: CtlActorStart, body: `{"name":"echo","module":"` + b64(wasmModule) + `"}`, hostFail: true,
		code: CtlCodeFailed, message: "boom", call: "StartActor echo 8 bytes max=0"},
	{name: "start unknown field", op: CtlActorStart, body: `{"name":"echo","module":"` + b64(wasmModule) + `","extra":true}`,
		code: CtlCodeBadRequest, message: `unknown field "extra"`},
	{name: "start unknown limit", op: CtlActorStart, body: `{"name":"echo","module":"` + b64(wasmModule) + `","limits":{"cpu":1}}`,
		code: CtlCodeBadRequest, message: `unknown field "cpu"`},
	{name: "start truncated", op: CtlActorStart, body: `{"name":`, code: CtlCodeBadRequest, message: "truncated"},
	{name: "start bad JSON", op: CtlActorStart, body: `{"name" "echo"}`, code: CtlCodeBadRequest, message: "invalid JSON at offset"},
	{name: "start array", op: CtlActorStart, body: `[]`, code: CtlCodeBadRequest, message: "want a JSON object"},
	{name: "start null", op: CtlActorStart, body: `null`, code: CtlCodeBadRequest, message: "want a JSON object"},
	{name: "start trailing data", op: CtlActorStart, body: `{"name":"echo","module":"` + b64(wasmModule) + `"} {}`,
		code: CtlCodeBadRequest, message: "trailing data"},
	{name: "start upper-case name", op: CtlActorStart, body: `{"name":"Echo","module":"` + b64(wasmModule) + `"}`,
		code: CtlCodeBadRequest, message: `name "Echo": character 'E' at 0`},
	{name: "start dotted name", op: CtlActorStart, body: `{"name":"a.b","module":"` + b64(wasmModule) + `"}`,
		code: CtlCodeBadRequest, message: `name "a.b"`},
	{name: "start long name", op: CtlActorStart, body: `{"name":"` + strings.Repeat("a", 65) + `","module":"` + b64(wasmModule) + `"}`,
		code: CtlCodeBadRequest, message: "want 1 to 64 characters"},
	{name: "start no module", op: CtlActorStart, body: `{"name":"echo"}`, code: CtlCodeBadRequest, message: "module: empty"},
	{name: "start not wasm", op: CtlActorStart, body: `{"name":"echo","module":"` + b64([]byte("#!/bin/sh\n")) + `"}`,
		code: CtlCodeBadRequest, message: "wasm magic"},
	{name: "start bad base64", op: CtlActorStart, body: `{"name":"echo","module":"!!!"}`, code: CtlCodeBadRequest, message: "module: invalid base64"},
	{name: "start name wrong type", op: CtlActorStart, body: `{"name":7}`, code: CtlCodeBadRequest, message: "name: JSON number where a string is expected"},
	{name: "start too many instances", op: CtlActorStart, body: `{"name":"echo","module":"` + b64(wasmModule) + `","limits":{"max_instances":1025}}`,
		code: CtlCodeBadRequest, message: "limits.max_instances 1025"},
	{name: "start negative timeout", op: CtlActorStart, body: `{"name":"echo","module":"` + b64(wasmModule) + `","limits":{"call_timeout":"-1s"}}`,
		code: CtlCodeBadRequest, message: "limits.call_timeout -1s"},
	{name: "start bad timeout", op: CtlActorStart, body: `{"name":"echo","module":"` + b64(wasmModule) + `","limits":{"call_timeout":"soon"}}`,
		code: CtlCodeBadRequest, message: `"soon"`},
	{name: "start too many pages", op: CtlActorStart, body: `{"name":"echo","module":"` + b64(wasmModule) + `","limits":{"memory_pages":70000}}`,
		code: CtlCodeBadRequest, message: "limits.memory_pages 70000"},
	{name: "start negative max_request", op: CtlActorStart, body: `{"name":"echo","module":"` + b64(wasmModule) + `","limits":{"max_request":-1}}`,
		code: CtlCodeBadRequest, message: "limits.max_request -1"},

	{name: "update", op: CtlActorUpdate, body: `{"name":"echo","module":"` + b64(wasmModule) + `"}`,
		message: `actor "echo" updated`, call: "UpdateActor echo 8 bytes"},
	{name: "update host fails", op: CtlActorUpdate, body: `{"name":"echo","module":"` + b64(wasmModule) + `"}`, hostFail: true,
		code: CtlCodeFailed, message: "boom", call: "UpdateActor echo 8 bytes"},
	{name: "update not wasm", op: CtlActorUpdate, body: `{"name":"echo","module":"AAAA"}`, code: CtlCodeBadRequest, message: "wasm magic"},

	{name: "stop", op: CtlActorStop, body: `{"name":"echo"}`, message: `actor "echo" stopped`, call: "StopActor echo"},
	{name: "stop host fails", op: CtlActorStop, body: `{"name":"echo"}`, hostFail: true, code: CtlCodeFailed, message: "boom", call: "StopActor echo"},
	{name: "stop path name", op: CtlActorStop, body: `{"name":"../etc"}`, code: CtlCodeBadRequest, message: `name "../etc"`},
	{name: "stop empty name", op: CtlActorStop, body: `{}`, code: CtlCodeBadRequest, message: `name "": want 1 to 64`},
	{name: "stop wildcard", op: CtlActorStop, body: `{"name":">"}`, code: CtlCodeBadRequest, message: `name ">"`},

	{name: "scale", op: CtlActorScale, body: `{"name":"echo","max_instances":8}`, message: "scaled to 8", call: "ScaleActor echo 8"},
	{name: "scale max", op: CtlActorScale, body: `{"name":"echo","max_instances":1024}`, call: "ScaleActor echo 1024"},
	{name: "scale zero", op: CtlActorScale, body: `{"name":"echo","max_instances":0}`, code: CtlCodeBadRequest, message: "max_instances 0: want 1 to 1024"},
	{name: "scale too many", op: CtlActorScale, body: `{"name":"echo","max_instances":1025}`, code: CtlCodeBadRequest, message: "max_instances 1025"},
	{name: "scale negative", op: CtlActorScale, body: `{"name":"echo","max_instances":-3}`, code: CtlCodeBadRequest, message: "max_instances -3"},
	{name: "scale string", op: CtlActorScale, body: `{"name":"echo","max_instances":"8"}`, code: CtlCodeBadRequest, message: "max_instances: JSON string where an integer is expected"},
	{name: "scale float", op: CtlActorScale, body: `{"name":"echo","max_instances":1.5}`, code: CtlCodeBadRequest, message: "max_instances"},
	{name: "scale overflow", op: CtlActorScale, body: `{"name":"echo","max_instances":99999999999999999999}`, code: CtlCodeBadRequest, message: "max_instances"},

	{name: "labels put", op: CtlLabelsPut, body: `{"labels":{"site":"berlin","model":"pi4","example.com/role":"gw"}}`,
		message: "3 labels put", call: "PutLabels example.com/role=gw,model=pi4,site=berlin"},
	{name: "labels put empty value", op: CtlLabelsPut, body: `{"labels":{"canary":""}}`, call: "PutLabels canary="},
	{name: "labels put host fails", op: CtlLabelsPut, body: `{"labels":{"site":"x"}}`, hostFail: true, code: CtlCodeFailed, message: "boom", call: "PutLabels site=x"},
	{name: "labels put none", op: CtlLabelsPut, body: `{"labels":{}}`, code: CtlCodeBadRequest, message: "want at least one"},
	{name: "labels put missing", op: CtlLabelsPut, body: `{}`, code: CtlCodeBadRequest, message: "want at least one"},
	{name: "labels put space in value", op: CtlLabelsPut, body: `{"labels":{"site":"berlin mitte"}}`, code: CtlCodeBadRequest, message: `label value of "site" "berlin mitte"`},
	{name: "labels put comma in value", op: CtlLabelsPut, body: `{"labels":{"site":"a,b"}}`, code: CtlCodeBadRequest, message: `character ','`},
	{name: "labels put equals in key", op: CtlLabelsPut, body: `{"labels":{"a=b":"c"}}`, code: CtlCodeBadRequest, message: `label key "a=b"`},
	{name: "labels put empty key", op: CtlLabelsPut, body: `{"labels":{"":"c"}}`, code: CtlCodeBadRequest, message: `label key ""`},
	{name: "labels put dot first", op: CtlLabelsPut, body: `{"labels":{".x":"c"}}`, code: CtlCodeBadRequest, message: "letter or digit first"},
	{name: "labels put value not string", op: CtlLabelsPut, body: `{"labels":{"site":1}}`, code: CtlCodeBadRequest, message: "labels: JSON number where a string is expected"},
	{name: "labels put flat", op: CtlLabelsPut, body: `{"site":"berlin"}`, code: CtlCodeBadRequest, message: `unknown field "site"`},
	{name: "labels put too many", op: CtlLabelsPut, body: manyLabels(MaxLabels + 1), code: CtlCodeBadRequest, message: "want at most 64"},

	{name: "labels delete", op: CtlLabelsDelete, body: `{"labels":{"site":"","model":"anything goes here"}}`,
		message: "2 labels deleted", call: "DeleteLabels model,site"},
	{name: "labels delete bad key", op: CtlLabelsDelete, body: `{"labels":{"a b":""}}`, code: CtlCodeBadRequest, message: `label key "a b"`},
	{name: "labels delete keys form", op: CtlLabelsDelete, body: `{"keys":["site"]}`, code: CtlCodeBadRequest, message: `unknown field "keys"`},
}

func manyLabels(n int) string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	b, _ := json.Marshal(Labels{Labels: m})
	return string(b)
}

const testHostID = "NHOSTONE"

func serveTestControl(t *testing.T, nc *nats.Conn, hostID, name string) (*Control, *fakeHost) {
	t.Helper()
	h := newFakeHost(hostID, name)
	c, err := ServeControl(nc, "default", hostID, "dev", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	return c, h
}

// rawRequest sends body and returns the Reply (response kept raw) and the
// micro error code header.
func rawRequest(t *testing.T, nc *nats.Conn, subject string, body []byte) (Reply, json.RawMessage, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, subject, body)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	var raw json.RawMessage
	reply := Reply{Response: &raw}
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		t.Fatalf("reply %q is not a Reply: %v", msg.Data, err)
	}
	return reply, raw, msg.Header.Get(micro.ErrorCodeHeader)
}

func TestControlEndpoints(t *testing.T) {
	s := ctlTestServer(t, 0)
	nc := ctlConn(t, s)
	_, h := serveTestControl(t, nc, testHostID, "pi-one")

	for _, tt := range ctlCases {
		t.Run(tt.name, func(t *testing.T) {
			h.mu.Lock()
			h.calls, h.fail = nil, nil
			if tt.hostFail {
				h.fail = errors.New("boom: disk full")
			}
			h.mu.Unlock()

			reply, raw, code := rawRequest(t, nc, HostCtlSubject("default", testHostID, tt.op), []byte(tt.body))
			if reply.Success != (tt.code == "") || code != tt.code {
				t.Fatalf("reply = %+v, code %q; want success %v, code %q", reply, code, tt.code == "", tt.code)
			}
			if !strings.Contains(reply.Message, tt.message) {
				t.Errorf("message %q does not contain %q", reply.Message, tt.message)
			}
			var want []string
			if tt.call != "" {
				want = []string{tt.call}
			}
			if got := h.Calls(); !slices.Equal(got, want) {
				t.Errorf("host calls = %q; want %q", got, want)
			}
			if tt.op == CtlInventory && tt.code == "" {
				var inv Inventory
				if err := json.Unmarshal(raw, &inv); err != nil || inv.Host.ID != testHostID || len(inv.Actors) != 1 {
					t.Errorf("inventory = %s (%v)", raw, err)
				}
			}
		})
	}
}

func TestControlOversized(t *testing.T) {
	s := ctlTestServer(t, 32<<20)
	nc := ctlConn(t, s)
	_, h := serveTestControl(t, nc, testHostID, "pi-one")

	body := make([]byte, MaxControlRequest+1)
	copy(body, `{"name":"echo","module":"`)
	for i := 25; i < len(body); i++ {
		body[i] = 'A'
	}
	for _, op := range []string{CtlActorStart, CtlInventory, CtlLabelsPut} {
		reply, _, code := rawRequest(t, nc, HostCtlSubject("default", testHostID, op), body)
		if reply.Success || code != CtlCodeTooLarge || !strings.Contains(reply.Message, "exceeds the limit of 16777216 bytes") {
			t.Errorf("%s: reply %+v, code %q; want too large", op, reply, code)
		}
	}
	if calls := h.Calls(); len(calls) != 0 {
		t.Errorf("host called: %q", calls)
	}
}

// TestControlNoReply checks that a message without a reply subject does
// nothing.
func TestControlNoReply(t *testing.T) {
	s := ctlTestServer(t, 0)
	nc := ctlConn(t, s)
	_, h := serveTestControl(t, nc, testHostID, "pi-one")
	subject := HostCtlSubject("default", testHostID, CtlActorStop)
	if err := nc.Publish(subject, []byte(`{"name":"first"}`)); err != nil {
		t.Fatal(err)
	}
	// One subscription delivers in order: once this is answered, the
	// publish above has been handled.
	if err := ControlRequest(t.Context(), nc, subject, StopActor{Name: "second"}, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := h.Calls(), []string{"StopActor second"}; !slices.Equal(got, want) {
		t.Errorf("host calls = %q; want %q", got, want)
	}
}

func TestControlClient(t *testing.T) {
	s := ctlTestServer(t, 0)
	nc := ctlConn(t, s)
	_, h := serveTestControl(t, nc, testHostID, "pi-one")
	ctx := t.Context()

	inv, err := HostInventory(ctx, nc, "default", testHostID)
	if err != nil || inv.Host.ID != testHostID || inv.Host.Name != "pi-one" || inv.Host.Labels["site"] != "lab" {
		t.Fatalf("HostInventory = %+v, %v", inv, err)
	}

	start := StartActor{Name: "echo", Module: wasmModule, Limits: ActorLimits{MaxInstances: 2, CallTimeout: Duration(time.Second)}}
	if err := ControlRequest(ctx, nc, HostCtlSubject("default", testHostID, CtlActorStart), start, nil); err != nil {
		t.Fatal(err)
	}
	if err := ControlRequest(ctx, nc, HostCtlSubject("default", testHostID, CtlActorScale), ScaleActor{Name: "echo", MaxInstances: 3}, nil); err != nil {
		t.Fatal(err)
	}
	if err := ControlRequest(ctx, nc, HostCtlSubject("default", testHostID, CtlLabelsDelete), Labels{Labels: map[string]string{"site": ""}}, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"StartActor echo 8 bytes max=2", "ScaleActor echo 3", "DeleteLabels site"}
	if got := h.Calls(); !slices.Equal(got, want) {
		t.Errorf("host calls = %q; want %q", got, want)
	}

	err = ControlRequest(ctx, nc, HostCtlSubject("default", testHostID, CtlActorScale), ScaleActor{Name: "echo", MaxInstances: 0}, nil)
	var ce *ControlError
	if !errors.As(err, &ce) || ce.Code != CtlCodeBadRequest || !strings.Contains(ce.Message, "max_instances 0") {
		t.Fatalf("scale 0: err = %v; want a ControlError 400", err)
	}
	if !strings.Contains(err.Error(), HostCtlSubject("default", testHostID, CtlActorScale)) {
		t.Errorf("error %q does not name the subject", err)
	}

	h.mu.Lock()
	h.fail = errors.New("actor \"echo\" not running")
	h.mu.Unlock()
	err = ControlRequest(ctx, nc, HostCtlSubject("default", testHostID, CtlActorStop), StopActor{Name: "echo"}, nil)
	if !errors.As(err, &ce) || ce.Code != CtlCodeFailed || ce.Message != `actor "echo" not running` {
		t.Fatalf("stop: err = %v; want a ControlError 500", err)
	}

	_, err = HostInventory(ctx, nc, "default", "NOSUCHHOST")
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("HostInventory of a missing host: %v; want ErrNoResponders", err)
	}

	// A reply that is not a Reply, from something else on the subject.
	sub, err := nc.Subscribe("not.trellis", func(m *nats.Msg) { m.Respond([]byte("nope")) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := ControlRequest(ctx, nc, "not.trellis", nil, nil); err == nil || errors.As(err, &ce) {
		t.Fatalf("garbage reply: err = %v; want a decode error", err)
	}
}

func TestPingAndDiscovery(t *testing.T) {
	s := ctlTestServer(t, 0)
	client := ctlConn(t, s)
	serveTestControl(t, ctlConn(t, s), "NHOSTB", "pi-b")
	serveTestControl(t, ctlConn(t, s), "NHOSTA", "pi-a")
	// Another lattice on the same server answers its own pings only.
	other := newFakeHost("NHOSTC", "pi-c")
	c, err := ServeControl(ctlConn(t, s), "prod", "NHOSTC", "v1.4.0", other, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	invs, err := Ping(ctx, client, "default", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, inv := range invs {
		ids = append(ids, inv.Host.ID+"/"+inv.Host.Name)
	}
	if want := []string{"NHOSTA/pi-a", "NHOSTB/pi-b"}; !slices.Equal(ids, want) {
		t.Fatalf("Ping = %q; want %q", ids, want)
	}

	// micro discovery: $SRV.INFO.trellis-agent is answered by every agent.
	infos := scatter[micro.Info](t, client, "$SRV.INFO."+ControlServiceName, 3)
	byHost := map[string]micro.Info{}
	for _, info := range infos {
		byHost[info.Metadata["host_id"]] = info
	}
	a, ok := byHost["NHOSTA"]
	if !ok || a.Name != ControlServiceName || a.Version != "0.0.0-dev" || a.Metadata["trellis_version"] != "dev" ||
		a.Metadata["host_name"] != "pi-a" || a.Metadata["lattice"] != "default" {
		t.Fatalf("info of NHOSTA = %+v", a)
	}
	if c := byHost["NHOSTC"]; c.Version != "1.4.0" || c.Metadata["lattice"] != "prod" {
		t.Errorf("info of NHOSTC = %+v", c)
	}
	queues := map[string]string{}
	for _, ep := range a.Endpoints {
		queues[ep.Subject] = ep.QueueGroup
	}
	wantEndpoints := map[string]string{
		"trellis.default.ctl.ping":                      "",
		"trellis.default.ctl.host.NHOSTA.inventory":     "q",
		"trellis.default.ctl.host.NHOSTA.actor.start":   "q",
		"trellis.default.ctl.host.NHOSTA.actor.update":  "q",
		"trellis.default.ctl.host.NHOSTA.actor.stop":    "q",
		"trellis.default.ctl.host.NHOSTA.actor.scale":   "q",
		"trellis.default.ctl.host.NHOSTA.labels.put":    "q",
		"trellis.default.ctl.host.NHOSTA.labels.delete": "q",
	}
	if !maps.Equal(queues, wantEndpoints) {
		t.Errorf("endpoints (subject → queue group) = %v; want %v", queues, wantEndpoints)
	}
	pings := scatter[micro.Ping](t, client, "$SRV.PING."+ControlServiceName, 3)
	if len(pings) != 3 {
		t.Errorf("$SRV.PING answered by %d services; want 3", len(pings))
	}
}

// scatter publishes an empty request on subject and decodes the first n
// replies.
func scatter[T any](t *testing.T, nc *nats.Conn, subject string, n int) []T {
	t.Helper()
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var out []T
	for len(out) < n {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			t.Fatalf("%s: %d replies, then %v", subject, len(out), err)
		}
		var v T
		if err := json.Unmarshal(msg.Data, &v); err != nil {
			t.Fatalf("%s: reply %q: %v", subject, msg.Data, err)
		}
		out = append(out, v)
	}
	return out
}

func TestPingNoHosts(t *testing.T) {
	s := ctlTestServer(t, 0)
	nc := ctlConn(t, s)
	// With no responder Ping must return at once, long before ctx or wait.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	invs, err := Ping(ctx, nc, "default", 2*time.Minute)
	if err != nil || len(invs) != 0 {
		t.Fatalf("Ping = %v, %v; want none, nil", invs, err)
	}
}

func TestPingBadReply(t *testing.T) {
	s := ctlTestServer(t, 0)
	nc := ctlConn(t, s)
	serveTestControl(t, ctlConn(t, s), "NHOSTA", "pi-a")
	sub, err := nc.Subscribe(CtlSubject("default", CtlPing), func(m *nats.Msg) { m.Respond([]byte("garbage")) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	invs, err := Ping(t.Context(), nc, "default", time.Second)
	if err == nil || len(invs) != 1 || invs[0].Host.ID != "NHOSTA" {
		t.Fatalf("Ping = %+v, %v; want NHOSTA and an error", invs, err)
	}
}

func TestPingContextEnds(t *testing.T) {
	s := ctlTestServer(t, 0)
	nc := ctlConn(t, s)
	serveTestControl(t, ctlConn(t, s), "NHOSTA", "pi-a")
	// The reply arrives at once; ctx ends long before wait.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	invs, err := Ping(ctx, nc, "default", time.Hour)
	if !errors.Is(err, context.DeadlineExceeded) || len(invs) != 1 {
		t.Fatalf("Ping = %+v, %v; want one inventory and context.DeadlineExceeded", invs, err)
	}
}

func TestControlStop(t *testing.T) {
	s := ctlTestServer(t, 0)
	nc := ctlConn(t, s)
	h := newFakeHost(testHostID, "pi-one")
	entered := make(chan struct{})
	h.block = func(ctx context.Context) error {
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	}
	c, err := ServeControl(ctlConn(t, s), "default", testHostID, "dev", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	subject := HostCtlSubject("default", testHostID, CtlActorStop)
	done := make(chan error, 1)
	go func() { done <- ControlRequest(t.Context(), nc, subject, StopActor{Name: "echo"}, nil) }()
	select {
	case <-entered:
	case err := <-done:
		t.Fatalf("request returned before the host was called: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	// Stop returned after the host call, whose context it cancelled.
	var ce *ControlError
	if err := <-done; !errors.As(err, &ce) || ce.Code != CtlCodeFailed || !strings.Contains(ce.Message, "context canceled") {
		t.Errorf("in-flight request: %v; want a ControlError with context canceled", err)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := ControlRequest(ctx, nc, subject, StopActor{Name: "echo"}, nil); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("after Stop: %v; want ErrNoResponders", err)
	}
	if got := h.Calls(); len(got) != 1 {
		t.Errorf("host calls = %q; want one", got)
	}
}

func TestServeControlInvalid(t *testing.T) {
	s := ctlTestServer(t, 0)
	nc := ctlConn(t, s)
	h := newFakeHost(testHostID, "x")
	for _, tt := range []struct {
		name            string
		nc              *nats.Conn
		lattice, hostID string
		host            Host
	}{
		{"nil conn", nil, "default", testHostID, h},
		{"nil host", nc, "default", testHostID, nil},
		{"bad lattice", nc, "a.b", testHostID, h},
		{"bad host id", nc, "default", "*", h},
		{"empty host id", nc, "default", "", h},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := ServeControl(tt.nc, tt.lattice, tt.hostID, "dev", tt.host, nil); err == nil {
				c.Stop()
				t.Fatal("ServeControl succeeded")
			}
		})
	}
}

func TestMicroVersion(t *testing.T) {
	for in, want := range map[string]string{
		"dev":                    "0.0.0-dev",
		"":                       "0.0.0-dev",
		"(devel)":                "0.0.0-dev",
		"1.2":                    "0.0.0-dev",
		"v1.2.3":                 "1.2.3",
		"1.2.3":                  "1.2.3",
		"v0.4.0-rc.1+g1a2b3c":    "0.4.0-rc.1+g1a2b3c",
		"v1.2.3-4-gabcdef-dirty": "1.2.3-4-gabcdef-dirty",
	} {
		if got := microVersion(in); got != want {
			t.Errorf("microVersion(%q) = %q; want %q", in, got, want)
		}
	}
}

// fakeRequest is a micro.Request for driving handlers without NATS.
type fakeRequest struct {
	data      []byte
	responses int
	body      []byte
	code      string
}

func (r *fakeRequest) Respond(b []byte, _ ...micro.RespondOpt) error {
	r.responses++
	r.body = b
	return nil
}

func (r *fakeRequest) RespondJSON(v any, _ ...micro.RespondOpt) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return r.Respond(b)
}

func (r *fakeRequest) Error(code, description string, data []byte, _ ...micro.RespondOpt) error {
	if code == "" || description == "" || strings.ContainsAny(description, "\r\n") {
		return errors.New("bad error reply")
	}
	r.code = code
	return r.Respond(data)
}

func (r *fakeRequest) Data() []byte           { return r.data }
func (r *fakeRequest) Headers() micro.Headers { return nil }
func (r *fakeRequest) Subject() string        { return "fuzz" }
func (r *fakeRequest) Reply() string          { return "_INBOX.fuzz" }

// FuzzControlServe drives every operation's handler with arbitrary bodies:
// one reply, always a Reply, and the Host is called only on success.
func FuzzControlServe(f *testing.F) {
	ops := []string{CtlInventory, CtlActorStart, CtlActorUpdate, CtlActorStop, CtlActorScale, CtlLabelsPut, CtlLabelsDelete}
	for _, tt := range ctlCases {
		f.Add(uint8(slices.Index(ops, tt.op)), []byte(tt.body))
	}
	h := newFakeHost(testHostID, "fuzz")
	c := &Control{host: h, log: slog.New(slog.DiscardHandler), cancel: func() {}}
	handlers := []func(context.Context, []byte) (Reply, error){
		c.inventory, c.startActor, c.updateActor, c.stopActor, c.scaleActor, c.putLabels, c.deleteLabels,
	}
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		h.mu.Lock()
		h.calls = nil
		h.mu.Unlock()
		r := &fakeRequest{data: body}
		c.serve(t.Context(), r, handlers[int(op)%len(handlers)])
		if r.responses != 1 {
			t.Fatalf("%d responses", r.responses)
		}
		var reply Reply
		if err := json.Unmarshal(r.body, &reply); err != nil {
			t.Fatalf("reply %q: %v", r.body, err)
		}
		calls := h.Calls()
		if reply.Success == (r.code != "") {
			t.Fatalf("success %v with code %q", reply.Success, r.code)
		}
		if !reply.Success && r.code == CtlCodeBadRequest && len(calls) != 0 {
			t.Fatalf("host called on a bad request: %q", calls)
		}
		if !reply.Success && reply.Message == "" {
			t.Fatal("failure without a message")
		}
	})
}

func FuzzDecodeStartActorRequest(f *testing.F) {
	for _, tt := range ctlCases {
		if tt.op == CtlActorStart || tt.op == CtlActorUpdate {
			f.Add([]byte(tt.body))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := decodeStartActorRequest(data)
		if err != nil {
			return
		}
		if checkActorName(req.Name) != nil || !strings.HasPrefix(string(req.Module), "\x00asm") || checkLimits(req.Limits) != nil {
			t.Fatalf("accepted invalid %+v", req)
		}
		b, _ := json.Marshal(req)
		again, err := decodeStartActorRequest(b)
		if err != nil || again.Name != req.Name || string(again.Module) != string(req.Module) || again.Limits != req.Limits {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, req)
		}
	})
}

func FuzzDecodeStopActorRequest(f *testing.F) {
	for _, tt := range ctlCases {
		if tt.op == CtlActorStop {
			f.Add([]byte(tt.body))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := decodeStopActorRequest(data)
		if err != nil {
			return
		}
		if checkActorName(req.Name) != nil {
			t.Fatalf("accepted invalid %+v", req)
		}
	})
}

func FuzzDecodeScaleActorRequest(f *testing.F) {
	for _, tt := range ctlCases {
		if tt.op == CtlActorScale {
			f.Add([]byte(tt.body))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := decodeScaleActorRequest(data)
		if err != nil {
			return
		}
		if checkActorName(req.Name) != nil || req.MaxInstances < 1 || req.MaxInstances > MaxActorInstances {
			t.Fatalf("accepted invalid %+v", req)
		}
	})
}

func FuzzDecodeLabelsRequest(f *testing.F) {
	for _, tt := range ctlCases {
		if tt.op == CtlLabelsPut || tt.op == CtlLabelsDelete {
			f.Add([]byte(tt.body), tt.op == CtlLabelsPut)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, put bool) {
		req, err := decodeLabelsRequest(data, put)
		if err != nil {
			return
		}
		if len(req.Labels) == 0 || len(req.Labels) > MaxLabels {
			t.Fatalf("accepted %d labels", len(req.Labels))
		}
		for k, v := range req.Labels {
			if k == "" || strings.ContainsAny(k, "=, \t\r\n*>") || put && strings.ContainsAny(v, "=,/ \t\r\n*>") {
				t.Fatalf("accepted label %q=%q", k, v)
			}
		}
	})
}

func FuzzDecodeEmptyRequest(f *testing.F) {
	for _, tt := range ctlCases {
		if tt.op == CtlInventory {
			f.Add([]byte(tt.body))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = decodeEmptyRequest(data)
	})
}
