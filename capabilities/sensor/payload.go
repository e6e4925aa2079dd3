package sensor

import (
	"bytes"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/trellis-edge/trellis/capabilities"
)

// The operations of trellis:sensor and their msgpack payloads. Map keys
// are lower case and exactly as written here:
//
//	Read   request   {"sensor": "greenhouse"}
//	       response  {"measurements": [
//	                     {"sensor": "greenhouse", "kind": "temperature",
//	                      "value": 21.5, "unit": "°C", "time": 1700000000000000000},
//	                     ...]}
//
// value is a float64 (a decoder also accepts an integer), time an integer
// of Unix nanoseconds, 0 when unknown.
//
// The request decoder is for untrusted guest memory, and as strict as the
// other native contracts: sensor is required, unknown and repeated keys
// are errors, trailing bytes too. The response decoder (for guests and
// tests) skips unknown keys, so that a host can add fields. Both never
// panic and bound how deep they descend: decode payloads with them, not
// with msgpack.Unmarshal, whose skipping of unknown values recurses
// without limit (a few MB of nested arrays overflow a goroutine's stack
// on 32-bit ARM, which kills the process).
const (
	// OpRead reads every measurement of one named sensor.
	OpRead = "Read"
)

// MaxSensorName is the longest sensor name a request may carry, in bytes.
const MaxSensorName = 128

// maxDepth bounds the nesting of values a decoder skips. msgpack's own Skip
// recurses without a limit, and a goroutine that overflows its stack kills
// the process, so unknown values are skipped here, at a bounded depth.
const maxDepth = 16

// ReadRequest is the payload of OpRead.
type ReadRequest struct {
	Sensor string `msgpack:"sensor"` // the configured name of the sensor
}

// ReadResponse is the response of OpRead.
type ReadResponse struct {
	Measurements []Measurement `msgpack:"measurements"`
}

// DecodeReadRequest parses the payload of an OpRead call, which comes from
// a guest and is untrusted. It never panics; any error wraps
// capabilities.ErrBadPayload.
func DecodeReadRequest(b []byte) (ReadRequest, error) {
	var req ReadRequest
	seen := false
	err := decodeAll(b, func(dec *msgpack.Decoder) error {
		return decodeMap(dec, func(key string) error {
			switch {
			case key != "sensor":
				return errors.New("unknown key")
			case seen:
				return errors.New("repeated key")
			}
			seen = true
			c, err := dec.PeekCode()
			if err != nil {
				return err
			}
			if !msgpcode.IsString(c) {
				return fmt.Errorf("want a string, got msgpack code %#x", c)
			}
			req.Sensor, err = dec.DecodeString()
			return err
		})
	})
	if err != nil {
		return ReadRequest{}, fmt.Errorf("sensor: Read request: %w: %v", capabilities.ErrBadPayload, err)
	}
	if err := validName(req.Sensor); err != nil {
		return ReadRequest{}, fmt.Errorf("sensor: Read request: %w: %v", capabilities.ErrBadPayload, err)
	}
	return req, nil
}

// EncodeReadRequest returns the payload of an OpRead call (for guests and
// tests).
func EncodeReadRequest(req ReadRequest) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := errors.Join(enc.EncodeMapLen(1), enc.EncodeString("sensor"), enc.EncodeString(req.Sensor)); err != nil {
		return nil, fmt.Errorf("sensor: encode Read request: %w", err)
	}
	return buf.Bytes(), nil
}

// EncodeReadResponse returns the response payload of an OpRead call.
func EncodeReadResponse(resp ReadResponse) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	err := errors.Join(enc.EncodeMapLen(1), enc.EncodeString("measurements"), enc.EncodeArrayLen(len(resp.Measurements)))
	for i := 0; err == nil && i < len(resp.Measurements); i++ {
		err = resp.Measurements[i].EncodeMsgpack(enc)
	}
	if err != nil {
		return nil, fmt.Errorf("sensor: encode Read response: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeReadResponse parses the response of an OpRead call (for guests and
// tests). It never panics; any error wraps capabilities.ErrBadPayload.
func DecodeReadResponse(b []byte) (ReadResponse, error) {
	var resp ReadResponse
	err := decodeAll(b, func(dec *msgpack.Decoder) error {
		return decodeMap(dec, func(key string) error {
			if key != "measurements" {
				return skipValue(dec, 1)
			}
			n, err := dec.DecodeArrayLen()
			if err != nil {
				return err
			}
			// n is what the payload claims; the slice grows with what it has.
			resp.Measurements = make([]Measurement, 0, min(max(n, 0), 16))
			for range n {
				var m Measurement
				if err := m.decode(dec, 2); err != nil {
					return err
				}
				resp.Measurements = append(resp.Measurements, m)
			}
			return nil
		})
	})
	if err != nil {
		return ReadResponse{}, fmt.Errorf("sensor: Read response: %w: %v", capabilities.ErrBadPayload, err)
	}
	return resp, nil
}

// EncodeMsgpack implements msgpack.CustomEncoder, so that a Measurement
// has its documented wire shape wherever it is encoded.
func (m Measurement) EncodeMsgpack(enc *msgpack.Encoder) error {
	var ns int64
	if !m.Time.IsZero() {
		ns = m.Time.UnixNano()
	}
	return errors.Join(
		enc.EncodeMapLen(5),
		enc.EncodeString("sensor"), enc.EncodeString(m.Sensor),
		enc.EncodeString("kind"), enc.EncodeString(string(m.Kind)),
		enc.EncodeString("value"), enc.EncodeFloat64(m.Value),
		enc.EncodeString("unit"), enc.EncodeString(m.Unit),
		enc.EncodeString("time"), enc.EncodeInt(ns),
	)
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (m *Measurement) DecodeMsgpack(dec *msgpack.Decoder) error {
	return m.decode(dec, 1)
}

func (m *Measurement) decode(dec *msgpack.Decoder, depth int) error {
	*m = Measurement{}
	if depth > maxDepth {
		return errTooDeep
	}
	return decodeMap(dec, func(key string) error {
		var err error
		switch key {
		case "sensor":
			m.Sensor, err = dec.DecodeString()
		case "kind":
			var k string
			k, err = dec.DecodeString()
			m.Kind = Kind(k)
		case "value":
			m.Value, err = dec.DecodeFloat64()
		case "unit":
			m.Unit, err = dec.DecodeString()
		case "time":
			var ns int64
			ns, err = dec.DecodeInt64()
			if ns != 0 {
				m.Time = time.Unix(0, ns).UTC()
			} else {
				m.Time = time.Time{}
			}
		default:
			err = skipValue(dec, depth+1)
		}
		return err
	})
}

var errTooDeep = errors.New("values nested too deep")

// decodeAll runs decode over b and requires it to consume all of b.
func decodeAll(b []byte, decode func(*msgpack.Decoder) error) error {
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	if err := decode(dec); err != nil {
		return err
	}
	if r.Len() != 0 {
		return fmt.Errorf("%d trailing bytes", r.Len())
	}
	return nil
}

// decodeMap decodes a map with string keys, calling field for each key to
// decode its value. A nil or a value of any other type is an error.
func decodeMap(dec *msgpack.Decoder, field func(key string) error) error {
	c, err := dec.PeekCode()
	if err != nil {
		return err
	}
	if !msgpcode.IsFixedMap(c) && c != msgpcode.Map16 && c != msgpcode.Map32 {
		return fmt.Errorf("want a map, got msgpack code %#x", c)
	}
	n, err := dec.DecodeMapLen()
	if err != nil {
		return err
	}
	for range n {
		key, err := dec.DecodeString()
		if err != nil {
			return fmt.Errorf("map key: %w", err)
		}
		if err := field(key); err != nil {
			return fmt.Errorf("key %.32q: %w", key, err)
		}
	}
	return nil
}

// skipValue skips one value, recursing into maps and arrays no deeper than
// maxDepth.
func skipValue(dec *msgpack.Decoder, depth int) error {
	if depth > maxDepth {
		return errTooDeep
	}
	c, err := dec.PeekCode()
	if err != nil {
		return err
	}
	var n int
	switch {
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		n, err = dec.DecodeMapLen()
		n *= 2
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		n, err = dec.DecodeArrayLen()
	default:
		return dec.Skip() // a scalar, string, bin or ext: no recursion
	}
	for i := 0; err == nil && i < n; i++ {
		err = skipValue(dec, depth+1)
	}
	return err
}

// validName accepts the names a configuration can give a sensor: 1 to
// MaxSensorName bytes of UTF-8 with no control characters.
func validName(s string) error {
	switch {
	case s == "":
		return errors.New("no sensor name")
	case len(s) > MaxSensorName:
		return fmt.Errorf("sensor name of %d bytes, more than %d", len(s), MaxSensorName)
	case !utf8.ValidString(s):
		return errors.New("sensor name is not UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("sensor name %q has a control character", s)
		}
	}
	return nil
}
