package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/trellis-edge/trellis/agent/actor"
)

const fullConfig = `# A device in Berlin.
data: /srv/trellis
listen: 0.0.0.0:4222
hubs:
  - nats-leaf://hub1.example.com:7422
  - tls://hub2.example.com
  - nats://10.0.0.3:7422
hub_credentials: /etc/trellis/hub.creds
hub_tls:
  ca: /etc/trellis/ca.pem
  cert: /etc/trellis/cert.pem
  key: /etc/trellis/key.pem
lattice: factory-7
name: pi-berlin-01
labels:
  site: berlin
  model: pi4
  trellis.dev/role: gateway
  rack: 3
actors:
  - name: echo
    module: /opt/actors/echo.wasm
  - name: thermostat
    module: thermostat.wasm
    limits:
      max_instances: 2
      memory_pages: 64
      call_timeout: 1500ms
      max_request: 64KiB
heartbeat_interval: 30s
log_level: debug
http: 127.0.0.1:0
`

var configCases = []struct {
	name string
	in   string
	want *Config // nil: not checked
	err  []string
}{
	{name: "empty", in: "", want: &Config{}},
	{name: "comments only", in: "# nothing here\n", want: &Config{}},
	{name: "empty mapping", in: "{}\n", want: &Config{}},
	{name: "full", in: fullConfig, want: &Config{
		DataDir:        "/srv/trellis",
		Listen:         "0.0.0.0:4222",
		Hubs:           []string{"nats-leaf://hub1.example.com:7422", "tls://hub2.example.com", "nats://10.0.0.3:7422"},
		HubCredentials: "/etc/trellis/hub.creds",
		HubTLS:         TLSConfig{CA: "/etc/trellis/ca.pem", Cert: "/etc/trellis/cert.pem", Key: "/etc/trellis/key.pem"},
		Lattice:        "factory-7",
		Name:           "pi-berlin-01",
		Labels:         map[string]string{"site": "berlin", "model": "pi4", "trellis.dev/role": "gateway", "rack": "3"},
		Actors: []ActorConfig{
			{Name: "echo", Module: "/opt/actors/echo.wasm"},
			{Name: "thermostat", Module: "thermostat.wasm", Limits: actor.Limits{
				MaxInstances: 2, MemoryPages: 64, CallTimeout: 1500 * time.Millisecond, MaxRequest: 64 << 10}},
		},
		HeartbeatInterval: 30 * time.Second,
		LogLevel:          "debug",
		HTTPAddr:          "127.0.0.1:0",
	}},
	{name: "json", in: `{"listen": "127.0.0.1:0", "hubs": ["tls://hub:7422"], "actors": [{"name": "a", "module": "a.wasm", "limits": {"call_timeout": "2s"}}]}`,
		want: &Config{Listen: "127.0.0.1:0", Hubs: []string{"tls://hub:7422"},
			Actors: []ActorConfig{{Name: "a", Module: "a.wasm", Limits: actor.Limits{CallTimeout: 2 * time.Second}}}}},
	{name: "null sections", in: "hubs:\nhub_tls:\nlabels:\nactors:\nheartbeat_interval:\n", want: &Config{}},
	{name: "null limit is the default", in: "actors:\n  - name: a\n    module: a.wasm\n    limits:\n      max_request:\n",
		want: &Config{Actors: []ActorConfig{{Name: "a", Module: "a.wasm"}}}},
	{name: "http off", in: "http: off\n", want: &Config{HTTPAddr: HTTPOff}},
	{name: "http empty is off", in: "http: \"\"\n", want: &Config{HTTPAddr: HTTPOff}},
	{name: "http null is off", in: "http:\n", want: &Config{HTTPAddr: HTTPOff}},
	{name: "ipv6 listen", in: "listen: '[::1]:4222'\n", want: &Config{Listen: "[::1]:4222"}},
	{name: "anchors", in: "actors:\n  - name: a\n    module: a.wasm\n    limits: &small {max_instances: 1}\n  - name: b\n    module: b.wasm\n    limits: *small\n",
		want: &Config{Actors: []ActorConfig{
			{Name: "a", Module: "a.wasm", Limits: actor.Limits{MaxInstances: 1}},
			{Name: "b", Module: "b.wasm", Limits: actor.Limits{MaxInstances: 1}}}}},

	// Decoding.
	{name: "syntax error", in: "hubs: [\n", err: []string{"config: yaml: line"}},
	{name: "not a mapping", in: "- a\n- b\n", err: []string{"config: line 1: want a mapping of settings"}},
	{name: "unknown field with a suggestion", in: "listn: 127.0.0.1:4222\n",
		err: []string{"config: line 1: listn: unknown field; did you mean listen?"}},
	{name: "unknown field", in: "data: /x\nfrobnicate: 1\n",
		err: []string{"config: line 2: frobnicate: unknown field (known: data, listen, hubs,"}},
	{name: "unknown limit field", in: "actors:\n  - name: a\n    module: a.wasm\n  - name: b\n    module: b.wasm\n    limits:\n      max_instance: 3\n",
		err: []string{"config: line 7: actors[1].limits.max_instance: unknown field; did you mean max_instances?"}},
	{name: "unknown tls field", in: "hubs: [tls://h]\nhub_tls:\n  certificate: c.pem\n",
		err: []string{"config: line 3: hub_tls.certificate: unknown field; did you mean cert?"}},
	{name: "grants", in: "actors:\n  - name: a\n    module: a.wasm\n    grants: {kv: true, gpio: [{line: GPIO17, direction: out}], publish: [\"sensors.>\"], http: [{listen: \"127.0.0.1:8080\", path_prefix: /api/}]}\n"},
	{name: "devices", in: "devices:\n  gpio: {provider: sim, lines: [RELAY]}\n  sensors:\n    - {name: room, driver: sim, channels: {temperature: {wave: sine, offset: 20, amplitude: 2, period: 10m}}}\n    - {name: air, driver: bme280, bus: \"1\", address: 0x77}\n"},
	{name: "unknown devices key, deep", in: "devices:\n  sensors:\n    - {name: room, driver: sim, chanels: {}}\n",
		err: []string{"line 3", "chanels"}},
	{name: "bad sensor driver", in: "devices:\n  sensors:\n    - {name: room, driver: lm75}\n",
		err: []string{`driver "lm75": want sim, bme280 or ds18b20`}},
	{name: "grant of a line the device lacks", in: "devices:\n  gpio: {provider: sim, lines: [RELAY]}\nactors:\n  - name: a\n    module: a.wasm\n    grants: {gpio: [{line: FAN, direction: out}]}\n",
		err: []string{`gpio line "FAN" does not exist (lines: RELAY)`}},
	{name: "telemetry", in: "telemetry: {max_age: 24h, max_bytes: 16MiB, when_full: reject}\n"},
	{name: "telemetry policy", in: "telemetry: {when_full: block}\n",
		err: []string{`telemetry.when_full "block": want drop_oldest or reject`}},
	{name: "telemetry size", in: "telemetry: {max_bytes: lots}\n",
		err: []string{`telemetry.max_bytes`, "want a size such as 64MiB"}},
	{name: "unknown grant", in: "actors:\n  - name: a\n    module: a.wasm\n    grants: {kvv: true}\n",
		err: []string{"config: line 4: actors[0].grants.kvv: unknown field; did you mean kv?"}},
	{name: "bad grant value", in: "actors:\n  - name: a\n    module: a.wasm\n    grants: {gpio: [{line: GPIO17, direction: sideways}]}\n",
		err: []string{`gpio[0] "sideways": direction: want in, out or pwm`}},
	{name: "one output for two actors", in: "actors:\n  - name: a\n    module: a.wasm\n    grants: {gpio: [{line: GPIO17, direction: out}]}\n  - name: b\n    module: b.wasm\n    grants: {gpio: [{line: GPIO17, direction: out}]}\n",
		err: []string{`gpio line "GPIO17" is already an output of actor a`}},
	{name: "unknown actor field", in: "actors:\n  - name: a\n    path: a.wasm\n",
		err: []string{"config: line 3: actors[0].path: unknown field (known: name, module, limits, grants)"}},
	{name: "merge key", in: "base: &b {listen: ':1'}\n<<: *b\n", err: []string{"line 1: base: unknown field (known: data,", "<<: unknown field: YAML merge keys are not supported"}},
	{name: "duplicate field", in: "listen: :1\nlisten: :2\n", err: []string{"config: line 2: listen: duplicate field; first set on line 1"}},
	{name: "duplicate limit", in: "actors:\n  - name: a\n    module: a.wasm\n    limits: {max_request: 1, max_request: 2}\n",
		err: []string{"actors[0].limits.max_request: duplicate field"}},
	{name: "duplicate label", in: "labels:\n  site: a\n  site: b\n", err: []string{`config: line 3: labels "site": duplicate label; first set on line 2`}},
	{name: "second document", in: "listen: :1\n---\nlisten: :2\n", err: []string{"config: line 2: a second YAML document (after ---): want one"}},
	{name: "hubs not a list", in: "hubs: nats-leaf://hub:7422\n", err: []string{"config: line 1: hubs: want a list of hub URLs"}},
	{name: "hub not a string", in: "hubs:\n  - {url: x}\n", err: []string{"config: line 2: hubs[0]: want a string, not a mapping"}},
	{name: "labels not a mapping", in: "labels: [a, b]\n", err: []string{"labels: want a mapping of label keys to values"}},
	{name: "label not a string", in: "labels:\n  site: [a]\n", err: []string{"config: line 2: labels.site: want a label value, not a list"}},
	{name: "actors not a list", in: "actors: {name: a}\n", err: []string{"actors: want a list of actors"}},
	{name: "limits not a mapping", in: "actors:\n  - name: a\n    module: a.wasm\n    limits: 5\n", err: []string{"actors[0].limits: want a mapping of limits"}},
	{name: "limit not a scalar", in: "actors:\n  - name: a\n    module: a.wasm\n    limits:\n      max_request: [1]\n",
		err: []string{"config: line 5: actors[0].limits.max_request: want a value, not a list"}},
	{name: "limit bad duration", in: "actors:\n  - name: a\n    module: a.wasm\n    limits:\n\n      call_timeout: soon\n",
		err: []string{`config: actors[0]: limits: call_timeout "soon" (line 6): want a duration`}},
	{name: "limit bad size", in: "actors:\n  - name: a\n    module: a.wasm\n    limits: {max_request: 12 parsecs}\n",
		err: []string{`config: actors[0]: limits: max_request "12 parsecs" (line 4): want bytes`}},
	{name: "limit out of range", in: "actors:\n  - name: a\n    module: a.wasm\n    limits:\n      memory_pages: 70000\n",
		err: []string{"config: line 5: actors[0]: limits: memory_pages 70000: want 0 (default) to 65536"}},
	{name: "heartbeat not a duration", in: "heartbeat_interval: fast\n",
		err: []string{`config: line 1: heartbeat_interval "fast": want a duration such as 15s`}},
	{name: "heartbeat bare number", in: "heartbeat_interval: 15\n", err: []string{`heartbeat_interval "15": want a duration`}},
	{name: "string not a list", in: "name: [a, b]\n", err: []string{"config: line 1: name: want a string, not a list"}},
	{name: "too many problems", in: unknownFields(25), err: []string{"config: line 20: xx20: unknown field", "config: line 21: too many errors"}},
	{name: "several decoding problems", in: "listn: x\nhubs: x\n", err: []string{"line 1: listn: unknown field", "line 2: hubs: want a list"}},

	// Validation.
	{name: "bad hub scheme", in: "hubs:\n  - nats-leaf://hub1:7422\n  - http://x\n",
		err: []string{`config: line 3: hubs[1] "http://x": want nats-leaf://, tls:// or nats:// URL`}},
	{name: "hub without scheme", in: "hubs: [hub1:7422]\n", err: []string{`hubs[0] "hub1:7422": want nats-leaf://, tls:// or nats:// URL`}},
	{name: "hub without host", in: "hubs: ['nats-leaf://:7422']\n", err: []string{`hubs[0] "nats-leaf://:7422": want host:port after ://`}},
	{name: "hub bad port", in: "hubs: ['nats-leaf://hub:99999']\n", err: []string{`hubs[0] "nats-leaf://hub:99999": port "99999" is not a number from 1 to 65535`}},
	{name: "hub empty port", in: "hubs: ['nats-leaf://hub:']\n", err: []string{`hubs[0] "nats-leaf://hub:": empty port`}},
	{name: "hub with path", in: "hubs: ['nats-leaf://hub:7422/x']\n", err: []string{"without a path, query or fragment"}},
	{name: "hub bad host", in: "hubs: ['nats-leaf://hub_!:7422']\n", err: []string{`hubs[0] "nats-leaf://hub_!:7422": host "hub_!" is neither an IP address nor a hostname`}},
	{name: "hub password redacted", in: "hubs: ['http://dev:s3cret@hub:7422', 'nats-leaf://dev:s3cret@hub:7422/%zz']\n",
		err: []string{`hubs[0] "http://dev:xxxxx@hub:7422"`, `hubs[1] "nats-leaf://xxxxx@hub:7422/%zz": want nats-leaf://, tls:// or nats:// URL: invalid URL escape "%zz"`}},
	{name: "duplicate hub", in: "hubs: ['nats://hub', 'nats-leaf://hub:7422']\n",
		err: []string{`config: line 1: hubs[1] "nats-leaf://hub:7422": the same hub as hubs[0]`}},
	{name: "bad listen", in: "listen: 4222\n", err: []string{`config: line 1: listen "4222": no port; want host:port such as 127.0.0.1:4222 (port 0 picks a free port)`}},
	{name: "bad listen port", in: "listen: ':http'\n", err: []string{`listen ":http": port "http" is not a number from 0 to 65535; want host:port`}},
	{name: "bad http", in: "http: 'localhost:90000'\n", err: []string{`config: line 1: http "localhost:90000": port "90000" is not a number from 0 to 65535; want host:port such as 127.0.0.1:9422, or "off"`}},
	{name: "bad lattice", in: "lattice: prod.eu\n", err: []string{`config: line 1: lattice "prod.eu": want 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'`}},
	{name: "bad name", in: "name: my pi\n", err: []string{`config: line 1: name "my pi": has ' ' at 2`}},
	{name: "bad label key", in: "labels:\n  site: berlin\n  Model: pi4\n", err: []string{`config: line 3: labels: label "Model"="pi4": key has 'M' at 0`}},
	{name: "bad label value", in: "labels:\n  site: berlin mitte\n", err: []string{`config: line 2: labels: label "site"="berlin mitte": value has ' ' at 6`}},
	{name: "actor without name", in: "actors:\n  - module: a.wasm\n", err: []string{"config: line 2: actors[0].name: missing: every actor needs a name"}},
	{name: "actor null", in: "actors:\n  -\n", err: []string{"actors[0].name: missing", "actors[0].module: missing"}},
	{name: "bad actor name", in: "actors:\n  - name: My.Actor\n    module: a.wasm\n",
		err: []string{`config: line 2: actors[0].name "My.Actor": want 1 to 63 characters of a-z, 0-9`}},
	{name: "duplicate actor", in: "actors:\n  - {name: a, module: a.wasm}\n  - {name: a, module: b.wasm}\n",
		err: []string{`config: line 3: actors[1].name "a": the same name as actors[0]`}},
	{name: "actor without module", in: "actors:\n  - name: a\n", err: []string{"config: line 2: actors[0].module: missing"}},
	{name: "heartbeat too short", in: "heartbeat_interval: 500ms\n", err: []string{`config: line 1: heartbeat_interval "500ms": want at least 1s`}},
	{name: "heartbeat negative", in: "heartbeat_interval: -1s\n", err: []string{`heartbeat_interval "-1s": must not be negative`}},
	{name: "bad log level", in: "log_level: loud\n", err: []string{`config: line 1: log_level "loud": want debug, info, warn or error`}},
	{name: "credentials without hubs", in: "hub_credentials: /x.creds\n", err: []string{`config: line 1: hub_credentials "/x.creds": set, but there are no hubs`}},
	{name: "tls cert without key", in: "hubs: [tls://h]\nhub_tls: {cert: c.pem}\n", err: []string{`hub_tls.key: missing: hub_tls.cert "c.pem" needs its key`}},
	{name: "tls without hubs", in: "hub_tls: {ca: ca.pem}\n", err: []string{"config: line 1: hub_tls: set, but there are no hubs"}},
	{name: "several invalid values", in: "listen: x\nlattice: a b\n", err: []string{`line 1: listen "x"`, `line 2: lattice "a b"`}},
}

// unknownFields returns a config of n unknown fields, xx1 to xxN.
func unknownFields(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "xx%d: 1\n", i)
	}
	return b.String()
}

func TestParseConfig(t *testing.T) {
	for _, tt := range configCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tt.in))
			if len(tt.err) > 0 {
				if err == nil {
					t.Fatalf("ParseConfig = %+v, want an error", got)
				}
				if n := strings.Count(err.Error(), "\nconfig: ") + 1; n > maxDecodeErrors+1 && strings.Contains(err.Error(), "too many") {
					t.Errorf("%d errors reported, want at most %d", n, maxDecodeErrors+1)
				}
				for _, want := range tt.err {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error\n%v\ndoes not contain\n%s", err, want)
					}
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error %q shows a password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if tt.want != nil && !configEqual(got, *tt.want) {
				t.Errorf("ParseConfig =\n%+v\nwant\n%+v", got, *tt.want)
			}
		})
	}
}

// configEqual compares configs, treating nil and empty slices and maps alike.
func configEqual(a, b Config) bool {
	norm := func(c Config) Config {
		if len(c.Hubs) == 0 {
			c.Hubs = nil
		}
		if len(c.Labels) == 0 {
			c.Labels = nil
		}
		if len(c.Actors) == 0 {
			c.Actors = nil
		}
		return c
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// TestFieldError: every error is a *FieldError that names the field and line.
func TestFieldError(t *testing.T) {
	in := "actors:\n  - name: a\n    module: a.wasm\n  - name: b\n    module: b.wasm\n    limits:\n      max_instance: 3\n"
	_, err := ParseConfig([]byte(in))
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("ParseConfig error %v is not a *FieldError", err)
	}
	if fe.Field != "actors[1].limits.max_instance" || fe.Line != 7 {
		t.Errorf("FieldError = field %q line %d, want actors[1].limits.max_instance line 7", fe.Field, fe.Line)
	}
}

// TestValidate checks configs built in code, as the CLI builds them from
// flags: zero fields are valid, errors name the field and value.
func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    Config
		err  string // the whole message; "" for valid
	}{
		{"zero", Config{}, ""},
		{"defaults", Config{}.WithDefaults(), ""},
		{"http off", Config{HTTPAddr: HTTPOff}, ""},
		{"bad hub", Config{Hubs: []string{"http://x"}}, `config: hubs[0] "http://x": want nats-leaf://, tls:// or nats:// URL`},
		{"bad limits", Config{Actors: []ActorConfig{{Name: "a", Module: "a.wasm", Limits: actor.Limits{MaxInstances: -1}}}},
			"config: actors[0]: limits: max_instances -1: want 0 (default) to 1024"},
		{"short heartbeat", Config{HeartbeatInterval: time.Millisecond}, `config: heartbeat_interval "1ms": want at least 1s`},
		{"too many labels", Config{Labels: manyLabels(65)}, "config: labels: 65 labels, want at most 64"},
		{"two problems", Config{Listen: "x", Lattice: "a.b"},
			"config: listen \"x\": no port; want host:port such as 127.0.0.1:4222 (port 0 picks a free port)\n" +
				"config: lattice \"a.b\": want 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tt.err != "" && (err == nil || err.Error() != tt.err):
				t.Fatalf("Validate = %v\nwant %s", err, tt.err)
			}
		})
	}
}

func manyLabels(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprint("l", i)] = "v"
	}
	return m
}

func TestWithDefaults(t *testing.T) {
	got := Config{}.WithDefaults()
	name := fallbackName
	if h, err := os.Hostname(); err == nil && nameProblem(h) == "" {
		name = h
	}
	want := Config{
		DataDir:           DefaultDataDir,
		Listen:            DefaultListen,
		Lattice:           "default",
		Name:              name,
		HeartbeatInterval: 15 * time.Second,
		LogLevel:          "info",
		HTTPAddr:          DefaultHTTPAddr,
		Telemetry:         TelemetryConfig{MaxAge: DefaultTelemetryMaxAge, MaxBytes: DefaultTelemetryMaxBytes, WhenFull: TelemetryDropOldest},
	}
	if !configEqual(got, want) {
		t.Errorf("Config{}.WithDefaults() =\n%+v\nwant\n%+v", got, want)
	}
	if !got.HTTPEnabled() {
		t.Error("HTTP is off by default")
	}

	set := Config{DataDir: "/d", Listen: ":0", Lattice: "l", Name: "n", HeartbeatInterval: time.Minute,
		LogLevel: "warn", HTTPAddr: HTTPOff, Hubs: []string{"nats://h"},
		Telemetry: TelemetryConfig{MaxAge: time.Hour, MaxBytes: 1 << 20, WhenFull: TelemetryReject}}
	if got := set.WithDefaults(); !configEqual(got, set) {
		t.Errorf("WithDefaults changed set fields: %+v, want %+v", got, set)
	}
	if set.HTTPEnabled() {
		t.Error("HTTPEnabled with HTTPOff")
	}
}

func TestHubURLs(t *testing.T) {
	c := Config{Hubs: []string{"nats://hub1", "tls://hub2:7000", " nats-leaf://u:p@[::1]:7422/ ", "NATS://hub3:1"}}
	urls, err := c.HubURLs()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"nats-leaf://hub1:7422", "tls://hub2:7000", "nats-leaf://u:p@[::1]:7422", "nats-leaf://hub3:1"}
	if len(urls) != len(want) {
		t.Fatalf("HubURLs = %v, want %v", urls, want)
	}
	for i, u := range urls {
		if u.String() != want[i] {
			t.Errorf("HubURLs()[%d] = %s, want %s", i, u, want[i])
		}
	}
	if _, err := (Config{Hubs: []string{"nats://ok", "ws://no"}}).HubURLs(); err == nil || !strings.Contains(err.Error(), `hubs[1] "ws://no"`) {
		t.Errorf("HubURLs of a bad URL = %v, want an error naming hubs[1]", err)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(good, []byte(fullConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "pi-berlin-01" || len(c.Actors) != 2 {
		t.Errorf("LoadConfig = %+v", c)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("data: /d\nhubs: [http://x]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadConfig(bad)
	if want := "config: " + bad + `:2: hubs[0] "http://x": want`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("LoadConfig(bad) = %v, want %s...", err, want)
	}

	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("hubs: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(broken); err == nil || !strings.HasPrefix(err.Error(), "config: "+broken+": yaml: line") {
		t.Errorf("LoadConfig(broken) = %v, want a syntax error naming the file", err)
	}

	missing := filepath.Join(dir, "missing.yaml")
	if _, err := LoadConfig(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("LoadConfig(missing) = %v, want ErrNotExist naming the file", err)
	}
}

// FuzzParseConfig: any input decodes to a valid config or fails with a
// "config: " error; it never panics, and what decodes stays valid with the
// defaults filled in.
func FuzzParseConfig(f *testing.F) {
	for _, tt := range configCases {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("error %q does not start with \"config: \"", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted an invalid config: %v", err)
		}
		if err := c.WithDefaults().Validate(); err != nil {
			t.Fatalf("defaults made a parsed config invalid: %v", err)
		}
		if _, err := c.HubURLs(); err != nil {
			t.Fatalf("HubURLs of a valid config: %v", err)
		}
	})
}
