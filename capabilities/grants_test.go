package capabilities

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestCovers(t *testing.T) {
	tests := []struct {
		pattern, sub string
		want         bool
	}{
		{"a.b.c", "a.b.c", true},
		{"a.b.c", "a.b", false},
		{"a.*.c", "a.x.c", true},
		{"a.*.c", "a.x.y", false},
		{"a.>", "a.b", true},
		{"a.>", "a.b.c.d", true},
		{"a.>", "a", false},
		{">", "anything.at.all", true},
		{"a.*", "a.>", false},  // a narrower grant never covers a wider pattern
		{"a.>", "a.*.c", true}, // but a wider one covers a narrower
		{"a.*.c", "a.*.c", true},
		{"a.b", "a.*", false},
	}
	for _, tt := range tests {
		if got := Covers(tt.pattern, tt.sub); got != tt.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tt.pattern, tt.sub, got, tt.want)
		}
	}
}

func FuzzCovers(f *testing.F) {
	for _, s := range []string{"a.b.c", "a.*.c", "a.>", ">", "x"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, pattern, sub string) {
		got := Covers(pattern, sub)
		if ValidateSubject(sub, false) == nil {
			if !Covers(sub, sub) || !Covers(">", sub) {
				t.Fatalf("a valid subject %q must cover itself and be covered by >", sub)
			}
		}
		if got && ValidateSubject(pattern, true) == nil && ValidateSubject(sub, false) == nil && !strings.Contains(pattern, "*") && !strings.Contains(pattern, ">") && pattern != sub {
			t.Fatalf("literal %q covers different subject %q", pattern, sub)
		}
	})
}

func TestGrantsValidate(t *testing.T) {
	tests := []struct {
		name string
		g    Grants
		err  string // part of the error; "" for valid
	}{
		{"zero", Grants{}, ""},
		{"full", Grants{
			GPIO:    []GPIOGrant{{"GPIO17", DirOut}, {"GPIO27", DirIn}},
			Sensors: []string{"room"}, I2C: []I2CGrant{{"1", 0x76}}, OneWire: []string{"28-00000a1b2c3d"},
			KV: true, Publish: []string{"sensors.>"}, Subscribe: []string{"cmd.*.set"}, Telemetry: []string{"temp"},
			HTTP: []HTTPGrant{{Listen: "127.0.0.1:8080", PathPrefix: "/api/"}}, Timers: true,
		}, ""},
		{"bad direction", Grants{GPIO: []GPIOGrant{{"GPIO17", "sideways"}}}, `gpio[0] "sideways": direction`},
		{"line twice", Grants{GPIO: []GPIOGrant{{"GPIO17", DirIn}, {"GPIO17", DirOut}}}, "granted twice"},
		{"bad i2c address", Grants{I2C: []I2CGrant{{"1", 0x80}}}, `i2c[0] "0x80"`},
		{"bad i2c bus", Grants{I2C: []I2CGrant{{"one", 0x76}}}, `i2c[0] "one"`},
		{"bad onewire", Grants{OneWire: []string{"nope"}}, `onewire[0] "nope"`},
		{"bad subject", Grants{Publish: []string{"a..b"}}, `publish[0] "a..b"`},
		{"wildcard not last", Grants{Subscribe: []string{"a.>.b"}}, "'>' must be the last token"},
		{"bad listen", Grants{HTTP: []HTTPGrant{{Listen: "8080", PathPrefix: "/"}}}, `http[0] "8080"`},
		{"bad prefix", Grants{HTTP: []HTTPGrant{{Listen: "127.0.0.1:8080", PathPrefix: "api"}}}, `http[0] "api"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.g.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want one containing %q", err, tt.err)
			}
		})
	}
}

func TestValidateFleet(t *testing.T) {
	lines := []string{"GPIO17", "GPIO27"}
	tests := []struct {
		name   string
		grants map[string]Grants
		err    string
	}{
		{"fine", map[string]Grants{
			"a": {GPIO: []GPIOGrant{{"GPIO17", DirOut}}, HTTP: []HTTPGrant{{Listen: "127.0.0.1:8080", PathPrefix: "/a/"}}},
			"b": {GPIO: []GPIOGrant{{"GPIO17", DirIn}}, HTTP: []HTTPGrant{{Listen: "127.0.0.1:8080", PathPrefix: "/b/"}}},
		}, ""},
		{"unknown line", map[string]Grants{"a": {GPIO: []GPIOGrant{{"GPIO99", DirIn}}}}, `gpio line "GPIO99" does not exist`},
		{"two outputs", map[string]Grants{
			"a": {GPIO: []GPIOGrant{{"GPIO17", DirOut}}},
			"b": {GPIO: []GPIOGrant{{"GPIO17", DirPWM}}},
		}, "already an output of actor a"},
		{"overlapping routes", map[string]Grants{
			"a": {HTTP: []HTTPGrant{{Listen: "0.0.0.0:8080", PathPrefix: "/api/"}}},
			"b": {HTTP: []HTTPGrant{{Listen: "127.0.0.1:8080", PathPrefix: "/api/counter/"}}},
		}, "overlaps actor a's route"},
		{"other port", map[string]Grants{
			"a": {HTTP: []HTTPGrant{{Listen: "127.0.0.1:8080", PathPrefix: "/"}}},
			"b": {HTTP: []HTTPGrant{{Listen: "127.0.0.1:8081", PathPrefix: "/"}}},
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateFleet(tt.grants, lines)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want one containing %q", err, tt.err)
			}
		})
	}
}

// recorder is a handler that records the calls that reach it.
type recorder struct {
	mu    sync.Mutex
	calls []Call
	resp  string
}

func (r *recorder) Handle(_ context.Context, c Call) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
	return []byte(r.resp), nil
}

func TestDispatchDeniesByDefault(t *testing.T) {
	var denials []string
	d := NewDispatcher(DispatcherOptions{Denied: func(_ context.Context, c Call, reason string) { denials = append(denials, reason) }})
	kv := &recorder{resp: "v1"}
	d.Register(KV, kv)
	d.Register("wasmcloud:keyvalue", kv)
	d.Register(Log, &recorder{})
	ctx := context.Background()

	// No grant: denied, counted, reported, and the handler never sees it.
	_, err := d.Dispatch(ctx, Call{Actor: "a", Contract: KV, Operation: "Get"})
	if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "actor a has no grant for trellis:kv") {
		t.Fatalf("ungranted call: %v", err)
	}
	if len(kv.calls) != 0 || len(denials) != 1 || d.Stats().Denied != 1 {
		t.Fatalf("a denied call reached the handler (%d) or was not reported (%v)", len(kv.calls), denials)
	}
	// The compatibility namespace needs the same grant.
	if _, err := d.Dispatch(ctx, Call{Actor: "a", Contract: "wasmcloud:keyvalue"}); !errors.Is(err, ErrDenied) {
		t.Fatalf("ungranted wasmcloud:keyvalue: %v", err)
	}
	// Log needs no grant.
	if _, err := d.Dispatch(ctx, Call{Actor: "a", Contract: Log}); err != nil {
		t.Fatalf("log: %v", err)
	}
	// An unknown namespace is denied, whatever the grants.
	if _, err := d.Dispatch(ctx, Call{Actor: "a", Contract: "acme:laser"}); !errors.Is(err, ErrDenied) || d.Stats().Unknown != 1 || len(denials) != 3 {
		t.Fatalf("unknown namespace: %v (denials reported: %d)", err, len(denials))
	}

	if err := d.SetGrants("a", Grants{KV: true}); err != nil {
		t.Fatal(err)
	}
	resp, err := d.Dispatch(ctx, Call{Actor: "a", Contract: "wasmcloud:keyvalue", Operation: "Get"})
	if err != nil || string(resp) != "v1" || !kv.calls[0].Grants.KV {
		t.Fatalf("granted call: %q, %v (the handler must get the grants)", resp, err)
	}
	// Another actor still has nothing.
	if _, err := d.Dispatch(ctx, Call{Actor: "b", Contract: KV}); !errors.Is(err, ErrDenied) {
		t.Fatalf("actor b: %v", err)
	}
	// Grants are validated when set.
	if err := d.SetGrants("a", Grants{Publish: []string{""}}); err == nil {
		t.Fatal("invalid grants accepted")
	}
	d.RemoveGrants("a")
	if _, err := d.Dispatch(ctx, Call{Actor: "a", Contract: KV}); !errors.Is(err, ErrDenied) {
		t.Fatalf("after RemoveGrants: %v", err)
	}
}

func TestDispatchSwapsHandlersWhileCalling(t *testing.T) {
	d := NewDispatcher(DispatcherOptions{})
	if err := d.SetGrants("a", Grants{KV: true}); err != nil {
		t.Fatal(err)
	}
	one, two := &recorder{resp: "one"}, &recorder{resp: "two"}
	d.Register(KV, one)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 500 {
				resp, err := d.Dispatch(context.Background(), Call{Actor: "a", Contract: KV})
				if err != nil || (string(resp) != "one" && string(resp) != "two") {
					t.Errorf("during a swap: %q, %v", resp, err)
					return
				}
			}
		})
	}
	d.Register(KV, two) // a provider swap while calls run
	wg.Wait()
	if resp, _ := d.Dispatch(context.Background(), Call{Actor: "a", Contract: KV}); string(resp) != "two" {
		t.Fatalf("after the swap: %q", resp)
	}
}

func TestDispatchHonoursContext(t *testing.T) {
	d := NewDispatcher(DispatcherOptions{})
	rec := &recorder{}
	d.Register(Log, rec)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Dispatch(ctx, Call{Actor: "a", Contract: Log}); !errors.Is(err, context.Canceled) || len(rec.calls) != 0 {
		t.Fatalf("a call after its deadline reached the handler: %v", err)
	}
}
