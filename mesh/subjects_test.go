package mesh

import (
	"errors"
	"testing"
)

var rpcCases = []struct {
	name    string
	subject string
	want    RPCAddress
	bad     bool
}{
	{"plain", "trellis.default.rpc.echo.echo", RPCAddress{Lattice: "default", Actor: "echo", Operation: "echo"}, false},
	{"dotted operation", "trellis.prod.rpc.kv.KeyValue.Increment", RPCAddress{Lattice: "prod", Actor: "kv", Operation: "KeyValue.Increment"}, false},
	{"pinned", "trellis.default.host.NABC.rpc.echo.say.hi", RPCAddress{Lattice: "default", Host: "NABC", Actor: "echo", Operation: "say.hi"}, false},
	{"no operation", "trellis.default.rpc.echo", RPCAddress{}, true},
	{"wrong root", "nats.default.rpc.echo.op", RPCAddress{}, true},
	{"ctl", "trellis.default.ctl.ping.x", RPCAddress{}, true},
	{"pinned without rpc", "trellis.default.host.NABC.ctl.echo.op", RPCAddress{}, true},
	{"wildcard", "trellis.default.rpc.*.op", RPCAddress{}, true},
	{"empty token", "trellis.default.rpc..op", RPCAddress{}, true},
	{"garbage", "\x00\xff", RPCAddress{}, true},
}

func TestParseRPC(t *testing.T) {
	for _, tt := range rpcCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRPC(tt.subject)
			if tt.bad {
				if !errors.Is(err, ErrBadSubject) {
					t.Fatalf("ParseRPC(%q) = %+v, %v; want ErrBadSubject", tt.subject, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseRPC(%q) = %+v, %v; want %+v", tt.subject, got, err, tt.want)
			}
		})
	}
}

func TestSubjectsRoundTrip(t *testing.T) {
	a, err := ParseRPC(RPCSubject("l1", "echo", "a.b"))
	if err != nil || a != (RPCAddress{Lattice: "l1", Actor: "echo", Operation: "a.b"}) {
		t.Fatalf("%+v %v", a, err)
	}
	a, err = ParseRPC(PinnedRPCSubject("l1", "H1", "echo", "op"))
	if err != nil || a != (RPCAddress{Lattice: "l1", Host: "H1", Actor: "echo", Operation: "op"}) {
		t.Fatalf("%+v %v", a, err)
	}
}

func FuzzParseRPC(f *testing.F) {
	for _, tt := range rpcCases {
		f.Add(tt.subject)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseRPC(s)
		if err != nil {
			return
		}
		if a.Actor == "" || a.Operation == "" || a.Lattice == "" {
			t.Fatalf("accepted %q as %+v", s, a)
		}
	})
}
