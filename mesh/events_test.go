package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestEventToken(t *testing.T) {
	for _, tt := range []struct {
		typ, want string
		bad       bool
	}{
		{typ: EventHostHeartbeat, want: "heartbeat"},
		{typ: EventHostStarted, want: "host_started"},
		{typ: EventHostStopping, want: "host_stopping"},
		{typ: EventActorStarted, want: "actor_started"},
		{typ: EventActorStopped, want: "actor_stopped"},
		{typ: EventActorFailed, want: "actor_failed"},
		{typ: EventActorUpdated, want: "actor_updated"},
		{typ: "dev.trellis.deployment.applied", want: "deployment_applied"},
		{typ: "com.example.thing", bad: true},
		{typ: "dev.trellis.", bad: true},
		{typ: "dev.trellis.a b", bad: true},
		{typ: "dev.trellis.a.>", bad: true},
	} {
		got, err := EventToken(tt.typ)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("EventToken(%q) = %q, %v; want %q (error %v)", tt.typ, got, err, tt.want, tt.bad)
		}
	}
}

// nextEvent receives and decodes the next event on sub.
func nextEvent(t *testing.T, sub *nats.Subscription) (*nats.Msg, Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	msg, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := DecodeEvent(msg.Data)
	if err != nil {
		t.Fatalf("DecodeEvent(%s): %v", msg.Data, err)
	}
	return msg, ev
}

func TestEventsPublish(t *testing.T) {
	s := ctlTestServer(t, 0)
	nc := ctlConn(t, s)
	sub, err := nc.SubscribeSync(EventWildcard("default"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ev := NewEvents(nc, "default", testHostID, nil)
	fixed := time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	ev.now = func() time.Time { return fixed }

	seen := map[string]bool{}
	for _, tt := range []struct {
		typ, token string
		data       any
	}{
		{EventHostStarted, "host_started", nil},
		{EventActorStarted, "actor_started", ActorInfo{Name: "echo", MaxInstances: 2}},
		{EventActorStopped, "actor_stopped", map[string]string{"name": "echo"}},
		{EventActorFailed, "actor_failed", map[string]string{"name": "echo", "error": "trap"}},
		{EventActorUpdated, "actor_updated", map[string]string{"name": "echo"}},
		{EventHostStopping, "host_stopping", nil},
	} {
		if err := ev.Publish(t.Context(), tt.typ, tt.data); err != nil {
			t.Fatal(err)
		}
		msg, got := nextEvent(t, sub)
		if want := EventSubject("default", testHostID, tt.token); msg.Subject != want {
			t.Errorf("%s: subject %q; want %q", tt.typ, msg.Subject, want)
		}
		if got.Type != tt.typ || got.SpecVersion != "1.0" || got.Source != "trellis://default/"+testHostID {
			t.Errorf("%s: event %+v", tt.typ, got)
		}
		if !got.Time.Equal(fixed) || got.Time.Location() != time.UTC {
			t.Errorf("%s: time %v; want %v in UTC", tt.typ, got.Time, fixed)
		}
		if got.ID == "" || seen[got.ID] || msg.Header.Get(nats.MsgIdHdr) != got.ID {
			t.Errorf("%s: id %q (header %q) not unique or not in the header", tt.typ, got.ID, msg.Header.Get(nats.MsgIdHdr))
		}
		seen[got.ID] = true
		if tt.data == nil {
			if got.Data != nil || got.DataContentType != "" {
				t.Errorf("%s: data %s, %q; want none", tt.typ, got.Data, got.DataContentType)
			}
			continue
		}
		want, _ := json.Marshal(tt.data)
		if string(got.Data) != string(want) || got.DataContentType != "application/json" {
			t.Errorf("%s: data %s, %q; want %s", tt.typ, got.Data, got.DataContentType, want)
		}
		// The wire form uses the CloudEvents attribute names.
		var attrs map[string]any
		if err := json.Unmarshal(msg.Data, &attrs); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"specversion", "id", "source", "type", "time", "datacontenttype", "data"} {
			if _, ok := attrs[k]; !ok {
				t.Errorf("%s: attribute %q missing in %s", tt.typ, k, msg.Data)
			}
		}
	}

	if err := ev.Publish(t.Context(), "com.example.other", nil); err == nil {
		t.Error("Publish of a foreign type succeeded")
	}
	if err := ev.Publish(t.Context(), EventActorFailed, func() {}); err == nil {
		t.Error("Publish of unencodable data succeeded")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := ev.Publish(ctx, EventActorFailed, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a cancelled context: %v", err)
	}
}

func TestRunHeartbeat(t *testing.T) {
	s := ctlTestServer(t, 0)
	nc := ctlConn(t, s)
	sub, err := nc.SubscribeSync(EventSubject("default", testHostID, "heartbeat"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	h := newFakeHost(testHostID, "pi-one")
	ev := NewEvents(nc, "default", testHostID, nil)

	t.Run("at once", func(t *testing.T) {
		// With an hour's period only the first heartbeat can arrive.
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { ev.RunHeartbeat(ctx, time.Hour, h.Inventory); close(done) }()
		_, got := nextEvent(t, sub)
		cancel()
		<-done
		var inv Inventory
		if err := got.DecodeData(&inv); err != nil || got.Type != EventHostHeartbeat || inv.Host.ID != testHostID || inv.Host.Name != "pi-one" {
			t.Fatalf("heartbeat %+v: %+v, %v", got, inv, err)
		}
	})

	t.Run("periodic", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		calls := 0
		inventory := func(ctx context.Context) Inventory {
			calls++ // RunHeartbeat calls it from one goroutine only
			inv := h.Inventory(ctx)
			inv.Actors = make([]ActorInfo, calls)
			return inv
		}
		go func() { ev.RunHeartbeat(ctx, time.Millisecond, inventory); close(done) }()
		for i := 1; i <= 3; i++ {
			_, got := nextEvent(t, sub)
			var inv Inventory
			if err := got.DecodeData(&inv); err != nil || len(inv.Actors) != i {
				t.Fatalf("heartbeat %d: %d actors, %v", i, len(inv.Actors), err)
			}
		}
		cancel()
		<-done
	})
}

var eventCases = []struct {
	name string
	json string
	bad  string // substring of the error; "" for a valid event
}{
	{"full", `{"specversion":"1.0","id":"x1","source":"trellis://default/N1","type":"dev.trellis.actor.started","subject":"echo","time":"2025-03-01T12:00:00Z","datacontenttype":"application/json","data":{"name":"echo"}}`, ""},
	{"minimal", `{"specversion":"1.0","id":"x1","source":"/s","type":"t"}`, ""},
	{"null data", `{"specversion":"1.0","id":"x1","source":"/s","type":"t","data":null}`, ""},
	{"charset", `{"specversion":"1.0","id":"x1","source":"/s","type":"t","datacontenttype":"application/json; charset=utf-8","data":1}`, ""},
	{"spec 0.3", `{"specversion":"0.3","id":"x1","source":"/s","type":"t"}`, `specversion "0.3"`},
	{"no id", `{"specversion":"1.0","source":"/s","type":"t"}`, "id: empty"},
	{"no source", `{"specversion":"1.0","id":"x","type":"t"}`, "source: empty"},
	{"bad source", `{"specversion":"1.0","id":"x","source":"%zz","type":"t"}`, "not a URI reference"},
	{"no type", `{"specversion":"1.0","id":"x","source":"/s"}`, "type: empty"},
	{"extension", `{"specversion":"1.0","id":"x","source":"/s","type":"t","traceparent":"00-1"}`, `unknown field "traceparent"`},
	{"base64 data", `{"specversion":"1.0","id":"x","source":"/s","type":"t","data_base64":"AA=="}`, `unknown field "data_base64"`},
	{"xml", `{"specversion":"1.0","id":"x","source":"/s","type":"t","datacontenttype":"text/xml","data":"<a/>"}`, `datacontenttype "text/xml"`},
	{"bad time", `{"specversion":"1.0","id":"x","source":"/s","type":"t","time":"yesterday"}`, "yesterday"},
	{"id number", `{"specversion":"1.0","id":7,"source":"/s","type":"t"}`, "id: JSON number"},
	{"trailing", `{"specversion":"1.0","id":"x","source":"/s","type":"t"}x`, "trailing data"},
	{"array", `[{"specversion":"1.0"}]`, "want a JSON object"},
	{"empty", ``, "want a JSON object"},
	{"truncated", `{"specversion":"1.0","id":`, "truncated"},
}

func TestDecodeEvent(t *testing.T) {
	for _, tt := range eventCases {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := DecodeEvent([]byte(tt.json))
			if tt.bad == "" {
				if err != nil {
					t.Fatalf("DecodeEvent: %v", err)
				}
				if ev.SpecVersion != "1.0" || ev.ID != "x1" {
					t.Errorf("event %+v", ev)
				}
				return
			}
			if !errors.Is(err, ErrBadEvent) || !strings.Contains(err.Error(), tt.bad) {
				t.Fatalf("DecodeEvent = %+v, %v; want ErrBadEvent containing %q", ev, err, tt.bad)
			}
		})
	}
}

func FuzzDecodeEvent(f *testing.F) {
	for _, tt := range eventCases {
		f.Add([]byte(tt.json))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := DecodeEvent(data)
		if err != nil {
			if !errors.Is(err, ErrBadEvent) {
				t.Fatalf("error %v is not ErrBadEvent", err)
			}
			return
		}
		if ev.SpecVersion != "1.0" || ev.ID == "" || ev.Source == "" || ev.Type == "" {
			t.Fatalf("accepted %+v", ev)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeEvent(b)
		if err != nil || again.ID != ev.ID || again.Type != ev.Type || !again.Time.Equal(ev.Time) {
			t.Fatalf("round trip of %s: %+v, %v", b, again, err)
		}
	})
}
