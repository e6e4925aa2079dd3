package httpserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/trellis-edge/trellis/capabilities/wasmcloud"
)

// ErrorCodeHeader carries the stable code of an error the host answered
// for the actor (no route, body too large, the invocation failed, the
// actor's answer was not an HttpResponse). Responses the actor wrote never
// carry it.
const ErrorCodeHeader = "Trellis-Error-Code"

// Codes of the errors the host answers itself. A failed invocation carries
// the runtime's code instead (overloaded, timeout, not_found, limit,
// guest_error, trap, ...).
const (
	CodeNoRoute     = "no_route"     // 404: no route for the path
	CodeBadRequest  = "bad_request"  // 400: the request could not be read or passed on
	CodeTooLarge    = "too_large"    // 413: the body is over MaxBody
	CodeBadResponse = "bad_response" // 502: the actor's answer is not a valid HttpResponse
	CodeUnavailable = "unavailable"  // 503: no invoker
	CodeInternal    = "internal"     // 500: a failure without a code of its own
)

// Invocation error codes that map to a status other than 500.
const (
	codeOverloaded = "overloaded"
	codeTimeout    = "timeout"
	codeNotFound   = "not_found"
	codeLimit      = "limit"
	codeCanceled   = "canceled"
)

// maxErrorText bounds the error message written in an error response.
const maxErrorText = 1024

// handle serves one request on listener l.
func (s *Server) handle(l *listener, w http.ResponseWriter, r *http.Request) {
	s.active.enter()
	defer s.active.leave()
	s.requests.Add(1)
	answered := false // the actor's response is being written: too late for an error response
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.failed.Add(1)
			s.logf(logLine{"handler panicked", "path", r.URL.Path, "panic", fmt.Sprint(p)})
			if !answered {
				s.fail(w, http.StatusInternalServerError, CodeInternal, "internal error")
			}
		}
	}()

	path := r.URL.EscapedPath()
	rt := l.match(path)
	if rt == nil {
		s.noRoute.Add(1)
		s.fail(w, http.StatusNotFound, CodeNoRoute, fmt.Sprintf("no route for %s", path))
		return
	}
	if r.ContentLength > s.opts.MaxBody {
		s.tooLarge.Add(1)
		w.Header().Set("Connection", "close")
		s.fail(w, http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("request body of %d bytes is over the limit of %d", r.ContentLength, s.opts.MaxBody))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.opts.MaxBody+1))
	if err != nil {
		s.badRequest.Add(1)
		s.fail(w, http.StatusBadRequest, CodeBadRequest, "reading the request body failed")
		return
	}
	if int64(len(body)) > s.opts.MaxBody {
		s.tooLarge.Add(1)
		w.Header().Set("Connection", "close")
		s.fail(w, http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("request body is over the limit of %d bytes", s.opts.MaxBody))
		return
	}
	if !utf8.ValidString(r.URL.RawQuery) {
		// msgpack strings are UTF-8: a guest's decoder would refuse the request.
		s.badRequest.Add(1)
		s.fail(w, http.StatusBadRequest, CodeBadRequest, "the query string is not UTF-8")
		return
	}
	payload, err := wasmcloud.EncodeHTTPRequest(rt.era, wasmcloud.HTTPRequest{
		Method:      r.Method,
		Path:        path,
		QueryString: r.URL.RawQuery,
		Header:      requestHeader(r),
		Body:        body,
	})
	if err != nil {
		s.failed.Add(1)
		s.fail(w, http.StatusInternalServerError, CodeInternal, "encoding the request failed")
		return
	}
	if s.opts.Invoke == nil {
		s.unavailable.Add(1)
		s.fail(w, http.StatusServiceUnavailable, CodeUnavailable, "no actor runtime")
		return
	}
	out, err := s.opts.Invoke(r.Context(), rt.Actor, rt.Operation, payload)
	if err != nil {
		s.invokeFailed(w, r, rt, err, len(body) > 0)
		return
	}
	resp, err := wasmcloud.DecodeHTTPResponse(rt.era, out)
	if err != nil {
		s.badResponse.Add(1)
		s.logf(logLine{"actor response is not an HttpResponse", "actor", rt.Actor, "operation", rt.Operation, "err", err})
		s.fail(w, http.StatusBadGateway, CodeBadResponse, fmt.Sprintf("actor %s: %s: the response is not an HttpResponse: %v", rt.Actor, rt.Operation, err))
		return
	}
	if resp.StatusCode < 200 || resp.StatusCode > 599 {
		// 1xx are informational: they cannot end a response.
		s.badResponse.Add(1)
		s.fail(w, http.StatusBadGateway, CodeBadResponse, fmt.Sprintf("actor %s: %s: the response is not a valid HttpResponse: statusCode %d is not a final HTTP status (200 to 599)", rt.Actor, rt.Operation, resp.StatusCode))
		return
	}
	answered = true
	writeResponse(w, resp, s.opts.WriteTimeout)
}

// requestHeader returns the request's header as wasmCloud's providers pass
// it: lower-case names (as the http crate spells them), every value, the
// Host field included, values that are not UTF-8 left out (a guest's
// msgpack decoder would refuse them).
func requestHeader(r *http.Request) map[string][]string {
	h := make(map[string][]string, len(r.Header)+1)
	for k, vs := range r.Header {
		name := strings.ToLower(k)
		for _, v := range vs {
			if utf8.ValidString(v) {
				h[name] = append(h[name], v)
			}
		}
	}
	if r.Host != "" && utf8.ValidString(r.Host) {
		h["host"] = []string{r.Host}
	}
	return h
}

// hopByHop are response fields the actor may not set: the server frames
// the response itself (a wrong Content-Length would corrupt it), and
// Trellis-Error-Code means the host answered.
var hopByHop = map[string]bool{
	"connection":         true,
	"content-length":     true,
	"keep-alive":         true,
	"proxy-connection":   true,
	"te":                 true,
	"trailer":            true,
	"transfer-encoding":  true,
	"upgrade":            true,
	"trellis-error-code": true,
}

// writeResponse writes the actor's response: fields with invalid names or
// values are left out, and the body is not sniffed for a Content-Type (the
// actor says what it is, or nothing does).
func writeResponse(w http.ResponseWriter, resp wasmcloud.HTTPResponse, timeout time.Duration) {
	h := w.Header()
	h["Content-Type"] = nil
	for k, vs := range resp.Header {
		if !validFieldName(k) || hopByHop[strings.ToLower(k)] {
			continue
		}
		for _, v := range vs {
			if validFieldValue(v) {
				h.Add(k, v)
			}
		}
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout))
	w.WriteHeader(int(resp.StatusCode))
	_, _ = w.Write(resp.Body) // a 204, 304 or HEAD has no body: the error says so
}

// validFieldName reports whether name is an RFC 9110 token.
func validFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validFieldValue reports whether v is an RFC 9110 field value: no control
// characters but tab, no leading or trailing whitespace.
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return strings.TrimSpace(v) == v
}

// invokeFailed answers a failed invocation with the status its code maps to.
func (s *Server) invokeFailed(w http.ResponseWriter, r *http.Request, rt *route, err error, large bool) {
	code := errorCode(err)
	status := statusOf(code, large)
	switch status {
	case http.StatusServiceUnavailable:
		s.unavailable.Add(1)
	case http.StatusGatewayTimeout:
		s.timeout.Add(1)
	case http.StatusRequestEntityTooLarge:
		s.tooLarge.Add(1)
	default:
		s.failed.Add(1)
	}
	if r.Context().Err() == nil { // a client that went away is not worth a log line
		s.logf(logLine{"invocation failed", "actor", rt.Actor, "operation", rt.Operation, "code", code, "status", status, "err", err})
	}
	s.fail(w, status, code, err.Error())
}

// errorCode returns the stable code an invocation error carries through an
// ErrorCode() string method, or one derived from a context error.
func errorCode(err error) string {
	var c interface{ ErrorCode() string }
	switch {
	case errors.As(err, &c) && c.ErrorCode() != "":
		return c.ErrorCode()
	case errors.Is(err, context.DeadlineExceeded):
		return codeTimeout
	case errors.Is(err, context.Canceled):
		return codeCanceled
	}
	return CodeInternal
}

// statusOf maps an invocation error code to an HTTP status. A limit hit on
// a request with a body is taken to be the actor's request limit: 413. The
// runtime's limit code also covers memory and host-call limits, which a
// request without a body can only have hit: 500.
func statusOf(code string, large bool) int {
	switch code {
	case codeOverloaded, codeNotFound:
		return http.StatusServiceUnavailable
	case codeTimeout:
		return http.StatusGatewayTimeout
	case codeLimit:
		if large {
			return http.StatusRequestEntityTooLarge
		}
	}
	return http.StatusInternalServerError
}

// fail writes an error the host answers: plain text, with the code in
// ErrorCodeHeader.
func (s *Server) fail(w http.ResponseWriter, status int, code, msg string) {
	if len(msg) > maxErrorText {
		msg = strings.ToValidUTF8(msg[:maxErrorText], "") + "…"
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set(ErrorCodeHeader, code)
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

// logLine is one log line: a message and its attributes.
type logLine []any

// logf writes a warning unless too many have been written lately: a
// client can make every request fail.
func (s *Server) logf(line logLine) {
	ok, suppressed := s.logLimit.allow(time.Now())
	if !ok {
		return
	}
	args := line[1:]
	if suppressed > 0 {
		args = append(args[:len(args):len(args)], "suppressed", suppressed)
	}
	s.log.Warn(line[0].(string), args...)
}

// errorLog is the http.Server's log (connection-level errors such as a
// failed accept), rate-limited with the Server's own lines.
func (s *Server) errorLog(addr string) *log.Logger {
	return log.New(writerFunc(func(p []byte) (int, error) {
		s.logf(logLine{"http listener", "addr", addr, "err", strings.TrimSpace(string(p))})
		return len(p), nil
	}), "", 0)
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// logLimiter lets logBurst lines through per logWindow and counts the rest.
type logLimiter struct {
	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

const (
	logWindow = 10 * time.Second
	logBurst  = 10
)

// allow reports whether a line may be written now, and how many were
// suppressed since the last one that was.
func (l *logLimiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= logWindow || now.Before(l.start) {
		l.start, l.n = now, 0
	}
	if l.n >= logBurst {
		l.suppressed++
		return false, 0
	}
	l.n++
	suppressed := l.suppressed
	l.suppressed = 0
	return true, suppressed
}
