package wasmcloud

import "slices"

// LogEntry is the input of a WriteLog host call.
//
// Wire shape, per era:
//
//	wasmbus  wasmcloud:builtin:logging Logging.WriteLog  {level: str, text: str}
//	0.18     wasmcloud:logging         WriteLog          {target: str, level: str, text: str}
//	waSCC    wascc:logging             WriteLog          {level: u32, body: str}
//
// Sources: wasmCloud/interfaces logging/logging.smithy (LogEntry) and
// logging/tinygo/logging.go; wasmCloud/actor-interfaces
// logging/rust/src/generated.rs (WriteLogArgs); protochron/wascc-codec
// src/logging.rs (WriteLogRequest, level "OFF"=0 … "TRACE"=5) and
// wasmCloud/wascc-actor src/logging.rs (1 error … 5 trace).
type LogEntry struct {
	// Level is the severity as a lower-case word: "error", "warn", "info",
	// "debug" (and "trace" in 0.18, "off" and "trace" in waSCC). The waSCC
	// number is translated both ways.
	Level string
	// Text is the message (waSCC's body).
	Text string
	// Target is 0.18's log target, often empty; the other eras have none.
	Target string
}

const shapeLogEntry = "LogEntry"

// wasccLevels are waSCC's numeric levels, by number.
var wasccLevels = [...]string{"off", "error", "warn", "info", "debug", "trace"}

// EncodeLogEntry encodes l for era e. For waSCC a Level that is not one of
// its six names is an error.
func EncodeLogEntry(e Era, l LogEntry) ([]byte, error) {
	switch e {
	case EraWasmbus:
		return encodeStruct([]field{{key: "level", ptr: &l.Level}, {key: "text", ptr: &l.Text}})
	case Era018:
		return encodeStruct([]field{{key: "target", ptr: &l.Target}, {key: "level", ptr: &l.Level}, {key: "text", ptr: &l.Text}})
	case EraWaSCC:
		n := slices.Index(wasccLevels[:], l.Level)
		if n < 0 {
			return nil, &PayloadError{Shape: shapeLogEntry, Field: "level", Reason: "not a waSCC level: " + l.Level}
		}
		level := uint32(n)
		return encodeStruct([]field{{key: "level", ptr: &level}, {key: "body", ptr: &l.Text}})
	}
	return nil, errEra(shapeLogEntry, e)
}

// DecodeLogEntry decodes a WriteLog input of era e. Every field of the era
// is required. wasmbus also accepts the keys Level and Text: an early
// weld-codegen TinyGo binding wrote them capitalised (wasmCloud/interfaces
// logging/tinygo/logging.go at commit 07897b9f). The level word is passed
// through as sent; a waSCC number over 5 is an error.
func DecodeLogEntry(e Era, b []byte) (LogEntry, error) {
	var l LogEntry
	var err error
	switch e {
	case EraWasmbus:
		err = decodeStruct(shapeLogEntry, b, decodeOpts{}, []field{
			{key: "level", aliases: []string{"Level"}, required: true, ptr: &l.Level},
			{key: "text", aliases: []string{"Text"}, required: true, ptr: &l.Text},
		})
	case Era018:
		err = decodeStruct(shapeLogEntry, b, decodeOpts{}, []field{
			{key: "target", required: true, ptr: &l.Target},
			{key: "level", required: true, ptr: &l.Level},
			{key: "text", required: true, ptr: &l.Text},
		})
	case EraWaSCC:
		var level uint32
		err = decodeStruct(shapeLogEntry, b, decodeOpts{}, []field{
			{key: "level", required: true, ptr: &level},
			{key: "body", required: true, ptr: &l.Text},
		})
		if err == nil {
			if level >= uint32(len(wasccLevels)) {
				return LogEntry{}, &PayloadError{Shape: shapeLogEntry, Field: "level", Reason: "waSCC level over 5"}
			}
			l.Level = wasccLevels[level]
		}
	default:
		return LogEntry{}, errEra(shapeLogEntry, e)
	}
	if err != nil {
		return LogEntry{}, err
	}
	return l, nil
}
