package agent_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/trellis-edge/trellis/agent"
	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/store"
)

const wcCounterWasm = "../examples/actors/wasmcloud-kvcounter/wasmcloud-kvcounter.wasm"

// wcCounterGrants bind the wasmCloud-style kvcounter as a wasmCloud link
// definition would: both eras' HTTP routes, its subscriptions, its kv.
var wcCounterGrants = capabilities.Grants{
	KV: true,
	HTTP: []capabilities.HTTPGrant{
		{Listen: "127.0.0.1:0", PathPrefix: "/"},
		{Listen: "127.0.0.1:0", PathPrefix: "/", Operation: "HandleRequest", Format: capabilities.FormatLegacy},
	},
	Publish:   []string{"wc.>"},
	Subscribe: []string{"wc.in", "legacy.in"},
	Subscriptions: []capabilities.Subscription{
		{Subject: "wc.in"},
		{Subject: "legacy.in", Format: capabilities.FormatLegacy},
	},
}

// routeURLs returns the base URL of the agent's wasmbus and legacy routes.
func routeURLs(t *testing.T, a *testAgent) (wasmbus, legacy string) {
	t.Helper()
	for _, r := range a.agent.HTTPRoutes() {
		switch r.Format {
		case capabilities.FormatLegacy:
			legacy = "http://" + r.Addr
		default:
			wasmbus = "http://" + r.Addr
		}
	}
	if wasmbus == "" || legacy == "" {
		t.Fatalf("routes %+v: want a wasmbus and a legacy one", a.agent.HTTPRoutes())
	}
	return wasmbus, legacy
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestWasmCloudActorUnmodified: a wasmCloud 0.x-style actor (built here
// from wasmCloud's interface definitions, speaking only waPC and
// wasmCloud's msgpack shapes) answers HTTP in both eras with its counter
// in bbolt, and answers messages through wasmcloud:messaging.
func TestWasmCloudActorUnmodified(t *testing.T) {
	data := t.TempDir()
	cfg := agent.Config{Name: "wc", DataDir: data, Actors: []agent.ActorConfig{{Name: "kvcounter", Module: wcCounterWasm, Grants: wcCounterGrants}}}
	a := startAgentConfig(t, cfg)
	wasmbus, legacy := routeURLs(t, a)

	for i, want := range []string{`{"counter":1}`, `{"counter":2}`} {
		if code, body := httpGet(t, wasmbus+"/api/counter/x"); code != 200 || body != want {
			t.Fatalf("wasmbus GET %d: %d %q, want 200 %s", i, code, body, want)
		}
	}
	if code, body := httpGet(t, wasmbus+"/api/counter/x?amount=5"); code != 200 || body != `{"counter":7}` {
		t.Fatalf("wasmbus GET with amount=5: %d %q", code, body)
	}
	for i, want := range []string{`{"counter":1}`, `{"counter":2}`} {
		if code, body := httpGet(t, legacy+"/api/counter/x"); code != 200 || body != want {
			t.Fatalf("0.18 GET %d: %d %q, want 200 %s", i, code, body, want)
		}
	}

	// Messaging: a message with a reply subject is answered there (the actor
	// publishes to its replyTo), in both eras; without one, on wc.echo.
	nc := connect(t, a.url)
	for _, tc := range []struct{ subject, reply string }{{"wc.in", "wc.reply.1"}, {"legacy.in", "wc.reply.2"}} {
		sub, err := nc.SubscribeSync(tc.reply)
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.PublishMsg(&nats.Msg{Subject: tc.subject, Reply: tc.reply, Data: []byte("ping")}); err != nil {
			t.Fatal(err)
		}
		msg, err := sub.NextMsg(10 * time.Second)
		if err != nil || string(msg.Data) != "ping" {
			t.Fatalf("%s: reply on %s: %v, %v", tc.subject, tc.reply, msg, err)
		}
		if extra, err := sub.NextMsg(200 * time.Millisecond); err == nil {
			t.Fatalf("%s: a second reply %q (the host must not answer for the actor too)", tc.subject, extra.Data)
		}
	}
	// A plain NATS request (an _INBOX reply subject) is answered too: the
	// actor may publish to the reply subject of the message it is handling.
	if msg, err := nc.Request("wc.in", []byte("req"), 10*time.Second); err != nil || string(msg.Data) != "req" {
		t.Fatalf("nats request to the actor: %v, %v", msg, err)
	}
	echo, err := nc.SubscribeSync("wc.echo")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("wc.in", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if msg, err := echo.NextMsg(10 * time.Second); err != nil || string(msg.Data) != "hello" {
		t.Fatalf("wc.echo: %v, %v", msg, err)
	}
	a.stop()

	// The counters are in the device's bbolt store, in the actor's bucket.
	st, err := store.Open(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"counter::api:counter:x": "7", ":api:counter:x": "2"} {
		if v, ok, err := st.KVGet("kvcounter", []byte(key)); err != nil || !ok || string(v) != want {
			t.Errorf("store: %s = %q, %v, %v; want %s", key, v, ok, err, want)
		}
	}
	_ = st.Close()

	// Restarted, the counter goes on; without a kv grant the request fails
	// with 500 and the error code, and nothing is counted.
	a = startAgentConfig(t, cfg)
	wasmbus, _ = routeURLs(t, a)
	if code, body := httpGet(t, wasmbus+"/api/counter/x"); code != 200 || body != `{"counter":8}` {
		t.Fatalf("after a restart: %d %q", code, body)
	}
	a.stop()
	noKV := wcCounterGrants
	noKV.KV = false
	cfg.Actors[0].Grants = noKV
	a = startAgentConfig(t, cfg)
	wasmbus, _ = routeURLs(t, a)
	if code, body := httpGet(t, wasmbus+"/api/counter/x"); code != 500 || !strings.Contains(body, "denied") {
		t.Fatalf("without a kv grant: %d %q, want 500 naming the denial", code, body)
	}
}
