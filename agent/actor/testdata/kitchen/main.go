//go:build wasip1

// Command kitchen is the test actor of the actor runtime's conformance
// tests: one operation per behaviour the runtime must handle. Build it from
// the repository root with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -ldflags="-s -w -buildid=" -o agent/actor/testdata/kitchen.wasm ./agent/actor/testdata/kitchen
//
// Operations:
//
//	echo      the payload
//	fail      a guest error "fail: " + payload
//	panic     a Go panic: the runtime prints it to stderr and exits with code 2 (a trap)
//	hostcall  payload "namespace\noperation\nbody": sdk.HostCall("default", namespace, operation, body);
//	          the response, or a guest error "hostcall: " + the error
//	log       sdk.Log(payload), then the payload
//	stdout    payload + "\n" to stdout and to stderr, then the payload
//	alloc     payload is a decimal byte count N: allocates and touches N bytes, answers "ok"
//	now       time.Now().UnixNano() in decimal
//	random    32 bytes from crypto/rand
//	sandbox   JSON {"env", "args", "readErr", "dirErr"}: what the guest sees of the host
//	spin      loops forever
//	count     increments a counter kept in the instance and answers its value in decimal
package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/trellis-edge/trellis/sdk"
)

// main.main never runs in a c-shared module: handlers are registered in init.
func init() {
	sdk.Handle("echo", echo)
	sdk.Handle("fail", func(p []byte) ([]byte, error) { return nil, errors.New("fail: " + string(p)) })
	sdk.Handle("panic", func(p []byte) ([]byte, error) { panic("kitchen: " + string(p)) })
	sdk.Handle("hostcall", hostcall)
	sdk.Handle("log", func(p []byte) ([]byte, error) { sdk.Log(string(p)); return p, nil })
	sdk.Handle("stdout", func(p []byte) ([]byte, error) {
		fmt.Println(string(p))
		fmt.Fprintln(os.Stderr, string(p))
		return p, nil
	})
	sdk.Handle("alloc", alloc)
	sdk.Handle("now", func([]byte) ([]byte, error) {
		return strconv.AppendInt(nil, time.Now().UnixNano(), 10), nil
	})
	sdk.Handle("random", func([]byte) ([]byte, error) {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		return b, nil
	})
	sdk.Handle("sandbox", sandbox)
	sdk.Handle("spin", spin)
	sdk.Handle("count", func([]byte) ([]byte, error) {
		count++
		return strconv.AppendInt(nil, count, 10), nil
	})
}

func main() {}

var count int64

func echo(p []byte) ([]byte, error) { return p, nil }

func hostcall(p []byte) ([]byte, error) {
	parts := strings.SplitN(string(p), "\n", 3)
	if len(parts) != 3 {
		return nil, errors.New("hostcall: payload must be namespace\\noperation\\nbody")
	}
	res, err := sdk.HostCall("default", parts[0], parts[1], []byte(parts[2]))
	if err != nil {
		return nil, errors.New("hostcall: " + err.Error())
	}
	return res, nil
}

// sink is where alloc publishes its buffer, so that neither the allocation
// nor the writes to it can be optimised away; alloc then drops it, so the
// memory is garbage for the next call (wasm memory never shrinks, though).
var sink []byte

func alloc(p []byte) ([]byte, error) {
	n, err := strconv.Atoi(string(p))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("alloc: bad byte count %q", p)
	}
	b := make([]byte, n)
	for i := 0; i < len(b); i += 4096 { // one write per page commits it
		b[i] = 1
	}
	sink = b
	sink = nil
	return []byte("ok"), nil
}

func sandbox([]byte) ([]byte, error) {
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	_, readErr := os.ReadFile("/etc/hostname")
	_, dirErr := os.ReadDir("/")
	return json.Marshal(struct {
		Env     int    `json:"env"`
		Args    int    `json:"args"`
		ReadErr string `json:"readErr"`
		DirErr  string `json:"dirErr"`
	}{len(os.Environ()), len(os.Args), errText(readErr), errText(dirErr)})
}

// spinCounter is a package variable written on every iteration, so the loop
// has an observable effect and the compiler keeps it.
var spinCounter uint64

func spin([]byte) ([]byte, error) {
	for {
		spinCounter++
	}
}
