//go:build !wasip1

package gpio_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	vm "github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/sdk/gpio"
	"github.com/trellis-edge/trellis/sdk/internal/calltest"
	"github.com/trellis-edge/trellis/sdk/sdktest"
)

type m = map[string]any

func TestCalls(t *testing.T) {
	calltest.Run(t, gpio.Namespace, []calltest.Case{
		{
			Name:    "read",
			Call:    func() (any, error) { return gpio.Read("RELAY") },
			Answer:  marshal(m{"level": true}),
			Op:      "Read",
			Payload: "81a46c696e65a552454c4159", // {line: "RELAY"}
			Want:    true,
		},
		{
			Name:    "read, level as an integer",
			Call:    func() (any, error) { return gpio.Read("RELAY") },
			Answer:  marshal(m{"level": 1}),
			Op:      "Read",
			Payload: "81a46c696e65a552454c4159",
			Want:    true,
		},
		{
			Name:    "read, level out of range",
			Call:    func() (any, error) { return gpio.Read("RELAY") },
			Answer:  marshal(m{"level": 2}),
			Op:      "Read",
			Payload: "81a46c696e65a552454c4159",
			WantErr: `sdk/gpio: Read response: key "level": want a bool, 0 or 1, got 2`,
		},
		{
			Name:    "read, no level",
			Call:    func() (any, error) { return gpio.Read("RELAY") },
			Answer:  marshal(m{"other": 1}),
			Op:      "Read",
			Payload: "81a46c696e65a552454c4159",
			WantErr: "sdk/gpio: Read response: no level",
		},
		{
			Name:    "write",
			Call:    func() (any, error) { return nil, gpio.Write("RELAY", true) },
			Op:      "Write",
			Payload: "82a46c696e65a552454c4159a56c6576656cc3", // {line, level: true}
		},
		{
			Name:      "write denied",
			Call:      func() (any, error) { return nil, gpio.Write("RELAY", true) },
			AnswerErr: errors.New(`denied: actor a may not write line "RELAY"`),
			Op:        "Write",
			Payload:   "82a46c696e65a552454c4159a56c6576656cc3",
			WantErr:   "denied",
		},
		{
			Name:    "pwm",
			Call:    func() (any, error) { return nil, gpio.PWM("FAN", 0.25, 1000) },
			Op:      "PWM",
			Payload: "83a46c696e65a346414ea464757479cb3fd0000000000000a466726571cb408f400000000000", // {line, duty: 0.25, freq: 1000.0}
		},
		{
			Name:    "watch",
			Call:    func() (any, error) { return nil, gpio.Watch("BUTTON", gpio.Both, "Button") },
			Op:      "Watch",
			Payload: "83a46c696e65a6425554544f4ea465646765a4626f7468a96f7065726174696f6ea6427574746f6e", // {line, edge, operation}
		},
	})
}

func TestDecodeEvent(t *testing.T) {
	at := time.Unix(1700000000, 42)
	tests := []struct {
		name    string
		payload []byte
		want    gpio.Event
		wantErr string
	}{
		{name: "rising", payload: marshal(m{"line": "BUTTON", "level": true, "time": at.UnixNano()}), want: gpio.Event{Line: "BUTTON", Level: true, Time: at}},
		{name: "no time", payload: marshal(m{"line": "BUTTON", "level": false}), want: gpio.Event{Line: "BUTTON"}},
		{name: "no line", payload: marshal(m{"level": false}), wantErr: "sdk/gpio: edge event: no line"},
		{name: "no level", payload: marshal(m{"line": "B"}), wantErr: "sdk/gpio: edge event: no level"},
		{name: "not a map", payload: marshal([]int{1}), wantErr: "want map, got array"},
		{name: "empty", payload: nil, wantErr: "payload ends early"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := gpio.DecodeEvent(tt.payload)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Line != tt.want.Line || got.Level != tt.want.Level || !got.Time.Equal(tt.want.Time) {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestHandleEdges(t *testing.T) {
	h := sdktest.New(t)
	var got []gpio.Event
	gpio.HandleEdges("Button", func(e gpio.Event) error {
		got = append(got, e)
		if !e.Level {
			return errors.New("released")
		}
		return nil
	})
	resp, err := h.Invoke("Button", marshal(m{"line": "BUTTON", "level": true, "time": 5}))
	if err != nil || len(resp) != 0 {
		t.Errorf("rising edge: response %q, error %v", resp, err)
	}
	if _, err := h.Invoke("Button", marshal(m{"line": "BUTTON", "level": false, "time": 6})); err == nil || !strings.Contains(err.Error(), "released") {
		t.Errorf("falling edge: error %v, want the handler's", err)
	}
	if _, err := h.Invoke("Button", []byte{0xc1}); err == nil || !strings.Contains(err.Error(), "edge event") {
		t.Errorf("bad payload: error %v", err)
	}
	if len(got) != 2 || got[0].Time.UnixNano() != 5 || got[1].Level {
		t.Errorf("handler saw %+v", got)
	}
}

// FuzzDecodeEvent: no payload makes the decoder panic.
func FuzzDecodeEvent(f *testing.F) {
	f.Add(marshal(m{"line": "BUTTON", "level": true, "time": 5}))
	f.Add(marshal(m{"line": "B", "level": 1, "x": []any{m{"y": nil}}}))
	f.Add([]byte{0x81, 0xa4, 't', 'i', 'm', 'e', 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		gpio.DecodeEvent(b)
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
