package mesh

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestTelemetrySubjects(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{TelemetrySubject("l", "h", "room1.temp"), "trellis.l.tm.h.room1.temp"},
		{TelemetryWildcard("l", "h"), "trellis.l.tm.h.>"},
		{ForwardedTelemetrySubject("l", "h", "room1.temp"), "trellis.l.tmfwd.h.room1.temp"},
		{ForwardedTelemetryWildcard("l", "h"), "trellis.l.tmfwd.h.>"},
		{ForwardedTelemetryWildcard("l", ""), "trellis.l.tmfwd.>"},
		{HubTelemetrySubjects, "trellis.*.tmfwd.>"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	for _, ok := range []string{"t", "room1.temp", "a-b_c.D9"} {
		if err := ValidateTelemetryTopic(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "a.", ".a", "a..b", "a.*", ">", "a b", "a.\tb"} {
		if err := ValidateTelemetryTopic(bad); err == nil || !strings.HasPrefix(err.Error(), "mesh: telemetry topic") {
			t.Errorf("%q: error %v", bad, err)
		}
	}
}

var msgIDCases = []struct {
	id      string
	host    string
	created int64
	seq     uint64
	ok      bool
}{
	{"dev-a.1700000000000000000.42", "dev-a", 1700000000000000000, 42, true},
	{"NABCDEF.0.1", "NABCDEF", 0, 1, true},
	{"dev-a.1.0", "", 0, 0, false},                    // sequences start at 1
	{"dev-a.-1.5", "", 0, 0, false},                   // negative time
	{"dev.a.1.5", "", 0, 0, false},                    // a dot in the host
	{".1.5", "", 0, 0, false},                         // no host
	{"dev-a.1", "", 0, 0, false},                      // too short
	{"dev-a", "", 0, 0, false},                        // no dots at all
	{"dev-a.x.5", "", 0, 0, false},                    // not a number
	{"dev-a.+1.5", "", 0, 0, false},                   // a sign
	{"dev-a.1.05", "", 0, 0, false},                   // a leading zero
	{"dev-a.1.99999999999999999999", "", 0, 0, false}, // overflows
	{"", "", 0, 0, false},
}

func TestTelemetryMsgID(t *testing.T) {
	created := time.Unix(1700000000, 123)
	id := TelemetryMsgID("dev-a", created, 7)
	if id != "dev-a.1700000000000000123.7" {
		t.Fatalf("id %q", id)
	}
	for _, tt := range msgIDCases {
		host, c, seq, err := ParseTelemetryMsgID(tt.id)
		if tt.ok != (err == nil) || host != tt.host || c != tt.created || seq != tt.seq {
			t.Errorf("%q: %q %d %d %v", tt.id, host, c, seq, err)
		}
		if err != nil && !errors.Is(err, ErrBadTelemetryMsgID) {
			t.Errorf("%q: %v is not ErrBadTelemetryMsgID", tt.id, err)
		}
	}
}

func FuzzParseTelemetryMsgID(f *testing.F) {
	for _, tt := range msgIDCases {
		f.Add(tt.id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		host, created, seq, err := ParseTelemetryMsgID(id)
		if err != nil {
			return
		}
		if again := TelemetryMsgID(host, time.Unix(0, created), seq); again != id {
			t.Fatalf("%q parsed as %q %d %d, which formats as %q", id, host, created, seq, again)
		}
	})
}

func TestTelemetryLimits(t *testing.T) {
	for _, tt := range []struct {
		name string
		l    TelemetryLimits
		want string // "" valid
	}{
		{"zero", TelemetryLimits{}, ""},
		{"reject", TelemetryLimits{WhenFull: TelemetryReject, MaxAge: time.Hour, MaxBytes: 1 << 20, Duplicates: time.Minute}, ""},
		{"negative age", TelemetryLimits{MaxAge: -1}, "max age"},
		{"negative bytes", TelemetryLimits{MaxBytes: -1}, "max bytes"},
		{"negative window", TelemetryLimits{Duplicates: -1}, "duplicate window"},
		{"policy", TelemetryLimits{WhenFull: "drop_newest"}, `when full "drop_newest"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.l.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}

	d := TelemetryLimits{}.withDefaults()
	if d.MaxAge != DefaultTelemetryMaxAge || d.MaxBytes != DefaultTelemetryMaxBytes || d.WhenFull != TelemetryDropOldest || d.Duplicates != DefaultTelemetryDuplicates {
		t.Fatalf("defaults %+v", d)
	}
	// JetStream wants the duplicate window within MaxAge.
	if d := (TelemetryLimits{MaxAge: time.Second}).withDefaults(); d.Duplicates != time.Second {
		t.Fatalf("duplicates %s with max age 1s", d.Duplicates)
	}
	c := deviceTelemetryConfig("l", "h", TelemetryLimits{WhenFull: TelemetryReject}.withDefaults())
	if c.Retention != jetstream.WorkQueuePolicy || c.Discard != jetstream.DiscardNew || c.Storage != jetstream.FileStorage ||
		len(c.Subjects) != 1 || c.Subjects[0] != "trellis.l.tm.h.>" {
		t.Fatalf("config %+v", c)
	}
	if c := deviceTelemetryConfig("l", "h", d); c.Discard != jetstream.DiscardOld {
		t.Fatalf("drop_oldest: discard %v", c.Discard)
	}
}

func TestHubTelemetryOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    HubTelemetryOptions
		want string
	}{
		{"zero", HubTelemetryOptions{}, ""},
		{"longer", HubTelemetryOptions{Duplicates: time.Hour, MaxAge: 24 * time.Hour, MaxBytes: 1 << 30, Replicas: 3}, ""},
		{"short window", HubTelemetryOptions{Duplicates: time.Minute}, "at least 10m0s"},
		{"age under window", HubTelemetryOptions{MaxAge: time.Minute}, "shorter than the duplicate window"},
		{"negative age", HubTelemetryOptions{MaxAge: -1}, "max age"},
		{"negative bytes", HubTelemetryOptions{MaxBytes: -1}, "max bytes"},
		{"replicas", HubTelemetryOptions{Replicas: 7}, "replicas"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestEnsureTelemetryStreams: both are idempotent and update limits in
// place, keeping what is stored.
func TestEnsureTelemetryStreams(t *testing.T) {
	ctx := t.Context()
	s := startServer(t, ServerOptions{Name: "ensure", DontListen: true, StoreDir: t.TempDir(), Logger: testLogger(t)})
	js, err := jetstream.New(connect(t, s))
	if err != nil {
		t.Fatal(err)
	}

	// The hub's.
	if err := EnsureHubTelemetry(ctx, js, HubTelemetryOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := EnsureHubTelemetry(ctx, js, HubTelemetryOptions{}); err != nil {
		t.Fatalf("again: %v", err)
	}
	if _, err := js.Publish(ctx, ForwardedTelemetrySubject("l", "h", "x"), nil); err != nil {
		t.Fatal(err)
	}
	if err := EnsureHubTelemetry(ctx, js, HubTelemetryOptions{Duplicates: time.Hour, MaxAge: 48 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, TelemetryStream)
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo()
	if info.Config.Duplicates != time.Hour || info.Config.MaxAge != 48*time.Hour || !info.Config.AllowDirect ||
		info.Config.Subjects[0] != HubTelemetrySubjects || info.State.Msgs != 1 {
		t.Fatalf("hub stream %+v, state %+v", info.Config, info.State)
	}
	if err := EnsureHubTelemetry(ctx, js, HubTelemetryOptions{Duplicates: time.Second}); err == nil {
		t.Fatal("a duplicate window of 1s accepted")
	}
	if err := js.DeleteStream(ctx, TelemetryStream); err != nil {
		t.Fatal(err)
	}

	// A device's.
	dev, err := EnsureDeviceTelemetry(ctx, js, "l", "h", TelemetryLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, TelemetrySubject("l", "h", "x"), nil); err != nil {
		t.Fatal(err)
	}
	dev, err = EnsureDeviceTelemetry(ctx, js, "l", "h", TelemetryLimits{WhenFull: TelemetryReject, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if info := dev.CachedInfo(); info.Config.Discard != jetstream.DiscardNew || info.Config.MaxBytes != 1<<20 || info.State.Msgs != 1 {
		t.Fatalf("device stream %+v, state %+v", info.Config, info.State)
	}
	for _, bad := range []struct{ lattice, host string }{{"a.b", "h"}, {"l", ""}, {"l", "h*"}} {
		if _, err := EnsureDeviceTelemetry(ctx, js, bad.lattice, bad.host, TelemetryLimits{}); err == nil {
			t.Fatalf("lattice %q host %q accepted", bad.lattice, bad.host)
		}
	}
	if _, err := EnsureDeviceTelemetry(ctx, js, "l", "h", TelemetryLimits{WhenFull: "x"}); err == nil {
		t.Fatal("a bad policy accepted")
	}
}

func TestIsTelemetryFull(t *testing.T) {
	ctx := t.Context()
	s := startServer(t, ServerOptions{Name: "full", DontListen: true, StoreDir: t.TempDir(), Logger: testLogger(t)})
	js, err := jetstream.New(connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureDeviceTelemetry(ctx, js, "l", "h", TelemetryLimits{WhenFull: TelemetryReject, MaxBytes: 4096}); err != nil {
		t.Fatal(err)
	}
	var full error
	for i := 0; i < 100 && full == nil; i++ {
		_, full = js.Publish(ctx, TelemetrySubject("l", "h", "x"), make([]byte, 512))
	}
	if !IsTelemetryFull(full) {
		t.Fatalf("full stream: %v", full)
	}
	for _, err := range []error{nil, errors.New("maximum bytes exceeded"), jetstream.ErrStreamNotFound, fmt.Errorf("x: %w", jetstream.ErrMsgNotFound)} {
		if IsTelemetryFull(err) {
			t.Fatalf("%v is not a full stream", err)
		}
	}
	if !IsTelemetryFull(fmt.Errorf("wrapped: %w", full)) {
		t.Fatal("wrapped")
	}
}
