//go:build !wasip1

package messaging_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	vm "github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/sdk/internal/calltest"
	"github.com/trellis-edge/trellis/sdk/messaging"
	"github.com/trellis-edge/trellis/sdk/sdktest"
)

type m = map[string]any

func TestCalls(t *testing.T) {
	calltest.Run(t, messaging.Namespace, []calltest.Case{
		{
			Name:    "publish",
			Call:    func() (any, error) { return nil, messaging.Publish("a.b", []byte("hi")) },
			Op:      "Publish",
			Payload: "82a77375626a656374a3612e62a4626f6479c4026869", // {subject, body: bin}: no replyTo
		},
		{
			Name: "publish with a reply subject",
			Call: func() (any, error) {
				return nil, messaging.PublishMessage(messaging.Message{Subject: "a.b", ReplyTo: "r", Body: []byte("hi")})
			},
			Op:      "Publish",
			Payload: "83a77375626a656374a3612e62a77265706c79546fa172a4626f6479c4026869",
		},
		{
			Name:      "publish denied",
			Call:      func() (any, error) { return nil, messaging.Publish("a.b", []byte("hi")) },
			AnswerErr: errors.New(`denied: actor a may not publish on "a.b"`),
			Op:        "Publish",
			Payload:   "82a77375626a656374a3612e62a4626f6479c4026869",
			WantErr:   `sdk: host call trellis:messaging/Publish: denied: actor a may not publish on "a.b"`,
		},
		{
			Name:    "request",
			Call:    func() (any, error) { return messaging.Request("a.b", []byte("hi"), 1500*time.Millisecond) },
			Answer:  marshal(m{"subject": "_INBOX.x", "body": []byte("yo")}),
			Op:      "Request",
			Payload: "83a77375626a656374a3612e62a4626f6479c4026869a974696d656f75744d73cd05dc", // timeoutMs: u16 1500
			Want:    messaging.Message{Subject: "_INBOX.x", Body: []byte("yo")},
		},
		{
			Name:    "request, sub-millisecond timeout rounds up",
			Call:    func() (any, error) { return messaging.Request("a.b", []byte("hi"), time.Microsecond) },
			Answer:  marshal(m{"subject": "s", "replyTo": nil, "body": nil}),
			Op:      "Request",
			Payload: "83a77375626a656374a3612e62a4626f6479c4026869a974696d656f75744d7301",
			Want:    messaging.Message{Subject: "s"},
		},
		{
			Name:    "request, huge timeout saturates",
			Call:    func() (any, error) { return messaging.Request("a.b", []byte("hi"), 1<<62) },
			Answer:  marshal(m{"subject": "s"}),
			Op:      "Request",
			Payload: "83a77375626a656374a3612e62a4626f6479c4026869a974696d656f75744d73ceffffffff",
			Want:    messaging.Message{Subject: "s"},
		},
		{
			Name:    "request, no subject in the reply",
			Call:    func() (any, error) { return messaging.Request("a.b", []byte("hi"), 0) },
			Answer:  marshal(m{"body": []byte("x")}),
			Op:      "Request",
			Payload: "83a77375626a656374a3612e62a4626f6479c4026869a974696d656f75744d7300",
			WantErr: "sdk/messaging: Request response: no subject",
		},
		{
			Name:    "subscribe",
			Call:    func() (any, error) { return messaging.Subscribe("a.*", "Op", "") },
			Answer:  marshal(m{"id": "7"}),
			Op:      "Subscribe",
			Payload: "82a77375626a656374a3612e2aa96f7065726174696f6ea24f70", // no queue
			Want:    "7",
		},
		{
			Name:    "subscribe with a queue",
			Call:    func() (any, error) { return messaging.Subscribe("a.*", "Op", "q") },
			Answer:  marshal(m{"id": "7"}),
			Op:      "Subscribe",
			Payload: "83a77375626a656374a3612e2aa96f7065726174696f6ea24f70a57175657565a171",
			Want:    "7",
		},
		{
			Name:    "subscribe, no id",
			Call:    func() (any, error) { return messaging.Subscribe("a.*", "Op", "") },
			Answer:  marshal(m{}),
			Op:      "Subscribe",
			Payload: "82a77375626a656374a3612e2aa96f7065726174696f6ea24f70",
			WantErr: "no id",
		},
		{
			Name:    "unsubscribe",
			Call:    func() (any, error) { return messaging.Unsubscribe("7") },
			Answer:  marshal(m{"existed": true}),
			Op:      "Unsubscribe",
			Payload: "81a26964a137",
			Want:    true,
		},
	})
}

func TestHandleMessage(t *testing.T) {
	h := sdktest.New(t)
	var got []messaging.Message
	messaging.HandleMessage("Ping", func(msg messaging.Message) ([]byte, error) {
		got = append(got, msg)
		if string(msg.Body) == "fail" {
			return nil, errors.New("no")
		}
		return append([]byte("pong "), msg.Body...), nil
	})
	tests := []struct {
		name    string
		payload []byte
		want    messaging.Message
		resp    string
		wantErr string
	}{
		{name: "wasmbus", payload: marshal(m{"subject": "ping", "replyTo": "_INBOX.1", "body": []byte("a")}),
			want: messaging.Message{Subject: "ping", ReplyTo: "_INBOX.1", Body: []byte("a")}, resp: "pong a"},
		{name: "no reply subject", payload: marshal(m{"subject": "ping", "body": []byte("b")}),
			want: messaging.Message{Subject: "ping", Body: []byte("b")}, resp: "pong b"},
		{name: "legacy nil reply subject, body as str", payload: marshal(m{"subject": "ping", "replyTo": nil, "body": "c"}),
			want: messaging.Message{Subject: "ping", Body: []byte("c")}, resp: "pong c"},
		{name: "handler error", payload: marshal(m{"subject": "ping", "body": []byte("fail")}),
			want: messaging.Message{Subject: "ping", Body: []byte("fail")}, wantErr: "no"},
		{name: "no subject", payload: marshal(m{"body": []byte("x")}), wantErr: "sdk/messaging: message: no subject"},
		{name: "bad body", payload: marshal(m{"subject": "ping", "body": 5}), wantErr: `key "body": msgpack: want bin or str, got int`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			resp, err := h.Invoke("Ping", tt.payload)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
			} else if err != nil || string(resp) != tt.resp {
				t.Fatalf("response %q, error %v; want %q", resp, err, tt.resp)
			}
			if tt.want.Subject == "" {
				if len(got) != 0 {
					t.Errorf("handler called with %+v for a payload that does not decode", got)
				}
				return
			}
			if len(got) != 1 || got[0].Subject != tt.want.Subject || got[0].ReplyTo != tt.want.ReplyTo || string(got[0].Body) != string(tt.want.Body) {
				t.Errorf("handler saw %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(marshal(m{"subject": "ping", "replyTo": "_INBOX.1", "body": []byte("a")}))
	f.Add(marshal(m{"subject": "ping", "reply_to": nil, "body": "a", "x": []any{m{"y": 1.5}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		messaging.DecodeMessage(b)
	})
}

// marshal encodes v as the host does, with its msgpack library.
func marshal(v any) []byte {
	b, err := vm.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
