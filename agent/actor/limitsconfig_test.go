package actor

import (
	"strings"
	"testing"
	"time"
)

var limitsCases = []struct {
	name string
	in   string
	want Limits
	err  string // part of the error; "" for success
}{
	{"empty", "", Limits{}, ""},
	{"all fields", "max_instances: 8\nmemory_pages: 256\ncall_timeout: 1500ms\nmax_request: 64KiB\nmax_response: 1MB\nmax_host_payload: 4096\nmax_host_calls: 100\n",
		Limits{MaxInstances: 8, MemoryPages: 256, CallTimeout: 1500 * time.Millisecond, MaxRequest: 64 << 10, MaxResponse: 1000000, MaxHostPayload: 4096, MaxHostCalls: 100}, ""},
	{"json", `{"max_instances": 2, "call_timeout": "2s", "max_request": "1MiB"}`,
		Limits{MaxInstances: 2, CallTimeout: 2 * time.Second, MaxRequest: 1 << 20}, ""},
	{"unknown field", "max_instance: 3\n", Limits{}, `line 1: unknown field "max_instance" (known: max_instances,`},
	{"bad duration", "call_timeout: soon\n", Limits{}, `call_timeout "soon"`},
	{"bad size", "max_request: 12 parsecs\n", Limits{}, `max_request "12 parsecs"`},
	{"size not scalar", "max_request: [1]\n", Limits{}, "max_request"},
	{"huge size", "max_request: 9999GiB\n", Limits{}, "max_request"},
	{"out of range", "memory_pages: 70000\n", Limits{}, "memory_pages 70000"},
	{"negative", "max_instances: -2\n", Limits{}, "max_instances -2"},
	{"wrong type", "max_instances: many\n", Limits{}, "max_instances"},
}

func TestParseLimits(t *testing.T) {
	for _, tt := range limitsCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLimits([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzParseLimits: any input either decodes to valid limits or is an error;
// it never panics.
func FuzzParseLimits(f *testing.F) {
	for _, tt := range limitsCases {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLimits(data)
		if err != nil {
			return
		}
		if err := l.Validate(); err != nil {
			t.Fatalf("decoded invalid limits %+v: %v", l, err)
		}
	})
}
