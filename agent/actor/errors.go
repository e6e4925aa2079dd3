package actor

import (
	"errors"
	"fmt"
)

// Code classifies why a call failed. Codes are stable: they cross the lattice
// in headers and are what callers branch on, so they are never renamed.
type Code string

// The call failure codes.
const (
	CodeGuestError Code = "guest_error" // the guest returned an error; the instance is kept
	CodeTrap       Code = "trap"        // the guest trapped, exited or broke the ABI; the instance is discarded
	CodeTimeout    Code = "timeout"     // the call ran past its deadline; the instance is discarded
	CodeCanceled   Code = "canceled"    // the caller gave up; the instance is discarded
	CodeLimit      Code = "limit"       // a payload, memory or host-call limit was hit
	CodeOverloaded Code = "overloaded"  // no instance became free before the deadline
	CodeNotFound   Code = "not_found"   // no such actor
	CodeDenied     Code = "denied"      // the host refused a capability call
)

// Sentinels for errors.Is on a *CallError; each matches every CallError of its code.
var (
	ErrGuest      = &CallError{Code: CodeGuestError}
	ErrTrap       = &CallError{Code: CodeTrap}
	ErrTimeout    = &CallError{Code: CodeTimeout}
	ErrCanceled   = &CallError{Code: CodeCanceled}
	ErrLimit      = &CallError{Code: CodeLimit}
	ErrOverloaded = &CallError{Code: CodeOverloaded}
	ErrNotFound   = &CallError{Code: CodeNotFound}
	ErrDenied     = &CallError{Code: CodeDenied}
)

// Other sentinel errors.
var (
	// ErrInvalidModule is a module that is not valid wasm or not a waPC guest.
	ErrInvalidModule = errors.New("invalid actor module")
	// ErrStart is a module whose start sequence failed.
	ErrStart = errors.New("actor failed to start")
	// ErrExists is an actor name already in use.
	ErrExists = errors.New("actor already running")
	// ErrClosed is a runtime or actor that has been closed.
	ErrClosed = errors.New("closed")
)

// CallError is a failed actor call. Its Message is safe to show a remote
// caller or a guest: it never holds host paths.
type CallError struct {
	Code      Code
	Actor     string
	Operation string
	Message   string
	Err       error // underlying cause, for logs; may be nil
}

func (e *CallError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = string(e.Code)
	}
	if e.Actor == "" {
		return msg
	}
	return fmt.Sprintf("actor %s: %s: %s", e.Actor, e.Operation, msg)
}

// Unwrap returns the underlying cause.
func (e *CallError) Unwrap() error { return e.Err }

// Is matches a sentinel of the same code.
func (e *CallError) Is(target error) bool {
	t, ok := target.(*CallError)
	return ok && t.Actor == "" && t.Message == "" && t.Err == nil && t.Code == e.Code
}

// ErrorCode returns the stable code as a string, for transports that carry it.
func (e *CallError) ErrorCode() string { return string(e.Code) }

// CodeOf returns the code of err, or "" if it is not a *CallError.
func CodeOf(err error) Code {
	var ce *CallError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return ""
}
