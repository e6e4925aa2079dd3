//go:build !wasip1

package timer_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	vm "github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/sdk/internal/calltest"
	"github.com/trellis-edge/trellis/sdk/sdktest"
	"github.com/trellis-edge/trellis/sdk/timer"
)

type m = map[string]any

func TestCalls(t *testing.T) {
	next := time.Unix(1700000000, 0)
	calltest.Run(t, timer.Namespace, []calltest.Case{
		{
			Name: "set",
			Call: func() (any, error) {
				return nil, timer.Set(timer.Spec{Name: "t", Operation: "Tick", After: time.Second, Every: 5 * time.Second, Payload: []byte("p")})
			},
			Op:      "Set",
			Payload: "85a46e616d65a174a96f7065726174696f6ea45469636ba56166746572cd03e8a56576657279cd1388a77061796c6f6164c40170", // {name, operation, after: 1000, every: 5000, payload: bin}
		},
		{
			Name: "set denied",
			Call: func() (any, error) {
				return nil, timer.Set(timer.Spec{Name: "t", Operation: "Tick", After: time.Second, Every: 5 * time.Second, Payload: []byte("p")})
			},
			AnswerErr: errors.New("denied: actor a has no grant for trellis:timer"),
			Op:        "Set",
			Payload:   "85a46e616d65a174a96f7065726174696f6ea45469636ba56166746572cd03e8a56576657279cd1388a77061796c6f6164c40170",
			WantErr:   "denied",
		},
		{
			Name:    "cancel",
			Call:    func() (any, error) { return timer.Cancel("t") },
			Answer:  marshal(m{"existed": true}),
			Op:      "Cancel",
			Payload: "81a46e616d65a174",
			Want:    true,
		},
		{
			Name: "list",
			Call: func() (any, error) { return timer.List() },
			Answer: marshal(m{"timers": []m{
				{"name": "t", "operation": "Tick", "next": next.UnixNano(), "every": 5000},
				{"name": "once", "operation": "Once", "next": next.UnixNano(), "every": 0, "new": true},
			}}),
			Op:      "List",
			Payload: "80", // {}
			Want: []timer.Timer{
				{Name: "t", Operation: "Tick", Next: next, Every: 5 * time.Second},
				{Name: "once", Operation: "Once", Next: next},
			},
		},
		{
			Name:    "list, none",
			Call:    func() (any, error) { return timer.List() },
			Answer:  marshal(m{"timers": []m{}}),
			Op:      "List",
			Payload: "80",
			Want:    []timer.Timer{},
		},
	})
}

func TestDecodeTick(t *testing.T) {
	at := time.Unix(1700000000, 7)
	tests := []struct {
		name    string
		payload []byte
		want    timer.Tick
		wantErr string
	}{
		{name: "timer", payload: marshal(m{"name": "t", "time": at.UnixNano(), "payload": []byte("p")}), want: timer.Tick{Name: "t", Time: at, Payload: []byte("p")}},
		{name: "schedule", payload: marshal(m{"name": "tick", "time": at.UnixNano(), "payload": nil}), want: timer.Tick{Name: "tick", Time: at}},
		{name: "empty payload", payload: nil, want: timer.Tick{}},
		{name: "bad time", payload: marshal(m{"name": "t", "time": "now"}), wantErr: `sdk/timer: tick: key "time": msgpack: want int, got str`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := timer.DecodeTick(tt.payload)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Name != tt.want.Name || !got.Time.Equal(tt.want.Time) || string(got.Payload) != string(tt.want.Payload) {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestHandleTicks(t *testing.T) {
	h := sdktest.New(t)
	var names []string
	timer.HandleTicks("Tick", func(tk timer.Tick) error {
		names = append(names, tk.Name)
		if tk.Name == "bad" {
			return errors.New("sensor unavailable")
		}
		return nil
	})
	if resp, err := h.Invoke("Tick", marshal(m{"name": "tick", "time": 1, "payload": nil})); err != nil || len(resp) != 0 {
		t.Errorf("tick: %q, %v", resp, err)
	}
	if _, err := h.Invoke("Tick", marshal(m{"name": "bad", "time": 1})); err == nil || !strings.Contains(err.Error(), "sensor unavailable") {
		t.Errorf("failing tick: error %v", err)
	}
	if strings.Join(names, ",") != "tick,bad" {
		t.Errorf("handler saw %q", names)
	}
}

func FuzzDecodeTick(f *testing.F) {
	f.Add(marshal(m{"name": "t", "time": 1, "payload": []byte("p")}))
	f.Add(marshal(m{"name": nil, "x": []any{[]any{m{}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		timer.DecodeTick(b)
	})
}

func FuzzList(f *testing.F) {
	f.Add(marshal(m{"timers": []m{{"name": "t", "operation": "Tick", "next": 1, "every": 5000}}}))
	f.Add(marshal(m{"timers": []m{{"every": int64(1) << 62}, {"every": -(int64(1) << 62)}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		h := sdktest.New(t)
		h.Serve(timer.Namespace, func(string, []byte) ([]byte, error) { return b, nil })
		timer.List()
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
