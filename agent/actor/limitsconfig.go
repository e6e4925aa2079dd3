package actor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ParseLimits decodes limits from YAML (or JSON, which is YAML): durations
// as Go durations ("2s", "500ms"), sizes as bytes or with a unit ("64KiB",
// "4MiB", "1MB"). Unknown fields are errors, as are values out of range;
// each error names the field.
//
//	max_instances: 4
//	memory_pages: 256
//	call_timeout: 2s
//	max_request: 1MiB
func ParseLimits(data []byte) (Limits, error) {
	// Every field is decoded as a node first, so a type error names its field.
	var raw struct {
		MaxInstances   yaml.Node `yaml:"max_instances"`
		MemoryPages    yaml.Node `yaml:"memory_pages"`
		CallTimeout    yaml.Node `yaml:"call_timeout"`
		MaxRequest     yaml.Node `yaml:"max_request"`
		MaxResponse    yaml.Node `yaml:"max_response"`
		MaxHostPayload yaml.Node `yaml:"max_host_payload"`
		MaxHostCalls   yaml.Node `yaml:"max_host_calls"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			// "line 1: field bogus not found in type struct {...}"
			msg, _, _ := strings.Cut(te.Errors[0], " in type ")
			if line, field, ok := strings.Cut(msg, ": field "); ok {
				field = strings.TrimSuffix(field, " not found")
				return Limits{}, fmt.Errorf("limits: %s: unknown field %q (known: %s)", line, field, limitFields)
			}
			return Limits{}, fmt.Errorf("limits: %s", msg)
		}
		return Limits{}, fmt.Errorf("limits: %w", err)
	}
	var l Limits
	ints := []struct {
		name string
		node *yaml.Node
		dst  *int
		size bool // accepts units
	}{
		{"max_instances", &raw.MaxInstances, &l.MaxInstances, false},
		{"max_request", &raw.MaxRequest, &l.MaxRequest, true},
		{"max_response", &raw.MaxResponse, &l.MaxResponse, true},
		{"max_host_payload", &raw.MaxHostPayload, &l.MaxHostPayload, true},
		{"max_host_calls", &raw.MaxHostCalls, &l.MaxHostCalls, false},
	}
	for _, f := range ints {
		if f.node.Kind == 0 {
			continue
		}
		var n int
		var err error
		if f.node.Kind != yaml.ScalarNode {
			err = errors.New("not a scalar")
		} else if f.size {
			n, err = parseSize(f.node.Value)
		} else {
			n, err = strconv.Atoi(f.node.Value)
		}
		if err != nil {
			want := "an integer"
			if f.size {
				want = "bytes, or a size such as 64KiB or 4MiB"
			}
			return Limits{}, fmt.Errorf("limits: %s %q (line %d): want %s", f.name, f.node.Value, f.node.Line, want)
		}
		*f.dst = n
	}
	if n := &raw.MemoryPages; n.Kind != 0 {
		v, err := strconv.ParseUint(n.Value, 10, 32)
		if err != nil || n.Kind != yaml.ScalarNode {
			return Limits{}, fmt.Errorf("limits: memory_pages %q (line %d): want a number of 64 KiB pages", n.Value, n.Line)
		}
		l.MemoryPages = uint32(v)
	}
	if n := &raw.CallTimeout; n.Kind != 0 {
		d, err := time.ParseDuration(n.Value)
		if err != nil || n.Kind != yaml.ScalarNode {
			return Limits{}, fmt.Errorf("limits: call_timeout %q (line %d): want a duration such as 2s or 500ms", n.Value, n.Line)
		}
		l.CallTimeout = d
	}
	if err := l.Validate(); err != nil {
		return Limits{}, err
	}
	return l, nil
}

const limitFields = "max_instances, memory_pages, call_timeout, max_request, max_response, max_host_payload, max_host_calls"

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1}, {"", 1},
}

// ParseSize parses a size in bytes as the limits file writes it: "4096",
// "64KiB", "1MB" (at most 2 GiB).
func ParseSize(s string) (int, error) { return parseSize(s) }

// parseSize parses "4096", "64KiB", "1MB".
func parseSize(s string) (int, error) {
	s = strings.TrimSpace(s)
	for _, u := range sizeUnits {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
		if err != nil || v < 0 || v > math.MaxInt32/u.mult {
			return 0, fmt.Errorf("bad size %q", s)
		}
		return int(v * u.mult), nil
	}
	return 0, fmt.Errorf("bad size %q", s)
}
