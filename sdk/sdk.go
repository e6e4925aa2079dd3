package sdk

import (
	"strconv"
	"unsafe"
)

// Handler answers one operation with a response or an error.
//
// payload is only valid until the handler returns: the SDK reuses its
// memory for the next call, as bufio.Scanner does with its tokens. Copy it
// (bytes.Clone) to keep it, for instance in a package variable or for a
// goroutine. Returning payload itself, or part of it, is fine: the host
// copies the response before the call ends, which also lets a handler
// return a buffer that it reuses.
type Handler func(payload []byte) ([]byte, error)

type route struct {
	operation string
	handler   Handler
}

// routes holds the handlers in registration order. A guest is
// single-threaded and handlers are registered during initialisation, before
// the first call. A linear scan beats a map for the few operations an actor
// has: in a Go guest a map lookup costs about half a microsecond, a quarter
// of a whole echo call.
var routes []route

// maxKeptPayload bounds the payload buffer kept between calls, so that one
// large call does not pin its memory for the life of the instance.
const maxKeptPayload = 64 << 10

// Buffers reused by every call: for payloads up to maxKeptPayload the call
// path allocates nothing. An allocation costs about a microsecond in a Go
// guest.
var (
	opBuf      = make([]byte, 64)
	payloadBuf = make([]byte, 512)
	inCall     bool // a call is running; see guestCall
)

// Handle registers h for operation. Call it from an init function: the
// host's _initialize runs package initialisation but never main.main, so
// a Handle call in main is never made.
//
// Handle panics if operation is empty, h is nil or operation is already
// registered; a panic during initialisation makes the host reject the module.
func Handle(operation string, h Handler) {
	switch {
	case operation == "":
		panic("sdk: Handle: empty operation name")
	case h == nil:
		panic("sdk: Handle: nil handler for operation " + strconv.Quote(operation))
	}
	for _, r := range routes {
		if r.operation == operation {
			panic("sdk: Handle: operation " + strconv.Quote(operation) + " registered twice")
		}
	}
	routes = append(routes, route{operation: operation, handler: h})
}

// lookup returns the handler of op.
func lookup(op []byte) (Handler, bool) {
	for _, r := range routes {
		if string(op) == r.operation { // compiled without converting op
			return r.handler, true
		}
	}
	return nil, false
}

// guestCall implements __guest_call: it fetches the operation and payload
// from the host, runs the handler and reports the result. It returns 1 on
// success and 0 on error.
//
// A handler panic is not recovered. The Go runtime prints it with its stack
// trace to stderr and aborts the module (wasm "unreachable": in a c-shared
// module the runtime crashes instead of calling proc_exit), which the host
// sees as a trap. Recovering for good would leave the instance in whatever
// state the panic interrupted, and even a recover that re-panics costs a
// defer, about 0.3 µs on every call.
func guestCall(operationSize, payloadSize uint32) int32 {
	if inCall {
		// The host called the instance again from inside a host call.
		// The Go runtime cannot return from a nested export without
		// losing the outer call (it returns 0 to the host and its handler
		// never resumes), so the instance is unusable from here on: trap,
		// and the host discards it.
		const msg = "sdk: re-entrant __guest_call: the host called this instance from inside one of its host calls"
		guestError(msg)
		panic(msg)
	}
	inCall = true

	if uint32(cap(opBuf)) < operationSize {
		opBuf = make([]byte, operationSize)
	}
	op := opBuf[:operationSize]
	var payload []byte
	switch {
	case payloadSize == 0:
	case payloadSize <= uint32(cap(payloadBuf)):
		payload = payloadBuf[:payloadSize]
	case payloadSize <= maxKeptPayload:
		payloadBuf = make([]byte, payloadSize)
		payload = payloadBuf
	default:
		payload = make([]byte, payloadSize)
	}
	guestRequest(unsafe.SliceData(op), unsafe.SliceData(payload))

	h, ok := lookup(op)
	if !ok {
		inCall = false
		guestError(unknownOperation(op))
		return 0
	}
	res, err := h(payload)
	inCall = false
	if err != nil {
		msg := err.Error()
		if msg == "" {
			msg = "sdk: operation " + strconv.Quote(string(op)) + " failed with an empty error"
		}
		guestError(msg)
		return 0
	}
	guestResponse(unsafe.SliceData(res), uint32(len(res)))
	return 1
}

func unknownOperation(op []byte) string {
	msg := "sdk: unknown operation " + strconv.Quote(string(op))
	if len(routes) == 0 {
		msg += " (no handlers registered: call sdk.Handle from an init function, main.main never runs in a c-shared module)"
	}
	return msg
}

// HostError is a host call that the host answered with an error.
type HostError struct {
	Binding, Namespace, Operation string
	// Message is the host's error text, as the host sent it.
	Message string
}

func (e *HostError) Error() string {
	return "sdk: host call " + e.Namespace + "/" + e.Operation + ": " + e.Message
}

// HostCall asks the host to run operation in namespace through binding
// ("default" unless the host says otherwise) and returns the host's
// response, nil when it is empty. A refusal by the host is a *HostError.
// Call it while handling a call: the host ties host calls to the call in
// progress.
func HostCall(binding, namespace, operation string, payload []byte) ([]byte, error) {
	if hostCall(binding, namespace, operation, unsafe.SliceData(payload), uint32(len(payload))) != 1 {
		return nil, &HostError{Binding: binding, Namespace: namespace, Operation: operation, Message: hostErrorText()}
	}
	n := hostResponseLen()
	if n == 0 {
		return nil, nil
	}
	res := make([]byte, n)
	hostResponse(&res[0])
	return res, nil
}

// CallActor calls operation on the actor named actor, through the host,
// and returns its response. Errors are *HostError.
func CallActor(actor, operation string, payload []byte) ([]byte, error) {
	return HostCall("default", actor, operation, payload)
}

func hostErrorText() string {
	n := hostErrorLen()
	if n == 0 {
		return "host call failed"
	}
	b := make([]byte, n)
	hostError(&b[0])
	return unsafe.String(&b[0], len(b))
}

// Log writes msg to the host's console log (__console_log). It works at any
// time, including during initialisation.
func Log(msg string) { consoleLog(msg) }

// Debug sends msg to the Trellis host log at level debug: a host call to
// namespace "trellis:log" with the level as the operation. Info, Warn and
// Error do the same at their level. If the host refuses (a host without
// trellis:log), the line goes to Log instead, prefixed with its level.
func Debug(msg string) { logAt("debug", msg) }

// Info logs msg at level info; see Debug.
func Info(msg string) { logAt("info", msg) }

// Warn logs msg at level warn; see Debug.
func Warn(msg string) { logAt("warn", msg) }

// Error logs msg at level error; see Debug.
func Error(msg string) { logAt("error", msg) }

func logAt(level, msg string) {
	if hostCall("default", "trellis:log", level, unsafe.StringData(msg), uint32(len(msg))) != 1 {
		consoleLog(level + ": " + msg)
	}
}
