package timer_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/trellis-edge/trellis/capabilities"
	"github.com/trellis-edge/trellis/capabilities/timer"
	"github.com/trellis-edge/trellis/store"
)

// t0 is when the fake clocks start.
var t0 = time.Unix(1_700_000_000, 0)

const (
	actor   = "thermostat"
	wait    = 10 * time.Second // a generous deadline for an event, never an assertion
	pollGap = time.Millisecond
)

var granted = capabilities.Grants{Timers: true}

// invocation is one call the handler made to an actor.
type invocation struct {
	actor, op string
	payload   []byte
	deadline  time.Time
}

// rig is a Handler on a real store in a temp dir, with a fake clock and an
// invoker that records every call.
type rig struct {
	t     *testing.T
	dir   string
	st    *store.Store
	clock *clockwork.FakeClock
	h     *timer.Handler
	calls chan invocation
	// hook, when set, runs inside each invocation (to block or fail it).
	hook func(ctx context.Context, op string) error
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, dir: t.TempDir(), calls: make(chan invocation, 1024)}
	r.open(t0)
	t.Cleanup(r.close)
	return r
}

// open opens the store and a new Handler with the clock at now.
func (r *rig) open(now time.Time) {
	r.t.Helper()
	st, err := store.Open(r.dir, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	r.st, r.clock = st, clockwork.NewFakeClockAt(now)
	hook := r.hook
	r.h = timer.New(timer.Options{Store: st, Clock: r.clock, Invoke: func(ctx context.Context, a, op string, payload []byte) ([]byte, error) {
		d, _ := ctx.Deadline()
		r.calls <- invocation{actor: a, op: op, payload: payload, deadline: d}
		if hook != nil {
			return nil, hook(ctx, op)
		}
		return nil, nil
	}})
}

// close closes the Handler (waiting for its invocations) and the store,
// as a device going down does.
func (r *rig) close() {
	if r.h != nil {
		r.h.Close()
		r.h = nil
		noLeaks(r.t)
	}
	if r.st != nil {
		r.st.Close()
		r.st = nil
	}
}

// restart closes everything and opens again with the clock at now.
func (r *rig) restart(now time.Time) {
	r.t.Helper()
	r.close()
	r.open(now)
}

func (r *rig) call(op string, payload []byte) ([]byte, error) {
	r.t.Helper()
	return r.h.Handle(r.t.Context(), capabilities.Call{Actor: actor, Contract: capabilities.Timer, Operation: op, Payload: payload, Grants: granted})
}

func (r *rig) mustCall(op string, req map[string]any) []byte {
	r.t.Helper()
	out, err := r.call(op, enc(r.t, req))
	if err != nil {
		r.t.Fatalf("%s %v: %v", op, req, err)
	}
	return out
}

func (r *rig) bind(g capabilities.Grants) {
	r.t.Helper()
	if err := r.h.Bind(actor, g); err != nil {
		r.t.Fatal(err)
	}
}

// next returns the next invocation, failing after a generous deadline.
func (r *rig) next() invocation {
	r.t.Helper()
	select {
	case inv := <-r.calls:
		return inv
	case <-time.After(wait):
		r.t.Fatal("no invocation")
		return invocation{}
	}
}

// none checks that no invocation is left. Call it after close, which
// waits for every invocation.
func (r *rig) none() {
	r.t.Helper()
	select {
	case inv := <-r.calls:
		r.t.Fatalf("unexpected invocation %s %q", inv.op, inv.payload)
	default:
	}
}

// settled waits until n invocations have returned: a periodic timer's next
// tick is skipped while the previous invocation runs.
func (r *rig) settled(n uint64) {
	r.t.Helper()
	eventually(r.t, strconv.FormatUint(n, 10)+" invocations to return", func() bool { return r.h.Stats().Fired >= n })
}

// armed waits until the fake clock has n timers armed.
func (r *rig) armed(n int) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), wait)
	defer cancel()
	if err := r.clock.BlockUntilContext(ctx, n); err != nil {
		r.t.Fatalf("waiting for %d armed timers: %v", n, err)
	}
}

// stored returns the ids of the actor's stored timers.
func (r *rig) stored() []string {
	r.t.Helper()
	recs, err := r.st.CapStateList(timer.StoreKind)
	if err != nil {
		r.t.Fatal(err)
	}
	var ids []string
	for _, rec := range recs {
		if rec.Actor == actor {
			ids = append(ids, rec.ID)
		}
	}
	return ids
}

// noLeaks checks that no goroutine of a closed Handler is left.
func noLeaks(t *testing.T) {
	t.Helper()
	var stacks []byte
	eventually(t, "the Handler's goroutines to end", func() bool {
		buf := make([]byte, 1<<20)
		stacks = buf[:runtime.Stack(buf, true)]
		return !bytes.Contains(stacks, []byte("capabilities/timer.(*Handler)"))
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(pollGap)
	}
}

func enc(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type m = map[string]any

// u64 is the msgpack uint64 encoding of a Unix-nanosecond time.
func u64(tm time.Time) string {
	var b [9]byte
	b[0] = 0xcf
	binary.BigEndian.PutUint64(b[1:], uint64(tm.UnixNano()))
	return string(b[:])
}

// tick is the exact payload of a firing.
func tick(name string, due time.Time, payload []byte) string {
	p := "\xc0"
	if payload != nil {
		p = string([]byte{0xc4, byte(len(payload))}) + string(payload)
	}
	return "\x83\xa4name" + fixstr(name) + "\xa4time" + u64(due) + "\xa7payload" + p
}

func fixstr(s string) string { return string([]byte{byte(0xa0 + len(s))}) + s }

// listEntry is the exact encoding of one timer in a List response.
func listEntry(name, op string, next time.Time, everyMS byte) string {
	return "\x84\xa4name" + fixstr(name) + "\xa9operation" + fixstr(op) + "\xa4next" + u64(next) + "\xa5every" + string([]byte{everyMS})
}

func TestSetListCancel(t *testing.T) {
	r := newRig(t)
	r.bind(granted)
	if out := r.mustCall(timer.OpSet, m{"name": "t1", "operation": "Tick", "after": 1000, "every": 0, "payload": []byte{1}}); out != nil {
		t.Fatalf("Set answered %q, want nothing", out)
	}
	r.mustCall(timer.OpSet, m{"name": "t0", "operation": "Poll", "every": 20})
	out := r.mustCall(timer.OpList, m{})
	want := "\x81\xa6timers\x92" + listEntry("t0", "Poll", t0.Add(20*time.Millisecond), 20) + listEntry("t1", "Tick", t0.Add(time.Second), 0)
	if string(out) != want {
		t.Fatalf("List:\n got %q\nwant %q", out, want)
	}
	if got := r.stored(); len(got) != 2 {
		t.Fatalf("stored %v, want t0 and t1", got)
	}
	if out := r.mustCall(timer.OpCancel, m{"name": "t1"}); string(out) != "\x81\xa7existed\xc3" {
		t.Fatalf("Cancel: %q", out)
	}
	if out := r.mustCall(timer.OpCancel, m{"name": "t1"}); string(out) != "\x81\xa7existed\xc2" {
		t.Fatalf("Cancel again: %q", out)
	}
	r.mustCall(timer.OpCancel, m{"name": "t0"})
	for _, empty := range [][]byte{nil, {0xc0}, {0x80}} {
		out, err := r.call(timer.OpList, empty)
		if err != nil || string(out) != "\x81\xa6timers\x90" {
			t.Fatalf("List %x: %q, %v", empty, out, err)
		}
	}
	if got := r.stored(); len(got) != 0 {
		t.Fatalf("stored after Cancel: %v", got)
	}
	if s := r.h.Stats(); s.Timers != 0 {
		t.Fatalf("stats after Cancel: %+v", s)
	}
	r.clock.Advance(time.Hour)
	r.close()
	r.none()
}

func TestBadPayloads(t *testing.T) {
	long := strings.Repeat("n", timer.MaxName+1)
	set := func(kv ...any) []byte {
		req := m{"name": "t", "operation": "Tick"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(req, kv[i].(string))
				continue
			}
			req[kv[i].(string)] = kv[i+1]
		}
		return enc(t, req)
	}
	deep := bytes.Repeat([]byte{0x91}, 100)
	cases := []struct {
		name    string
		op      string
		payload []byte
		want    string // in the error
	}{
		{"not a map", timer.OpSet, []byte{0x90}, "want a map"},
		{"no bytes", timer.OpSet, nil, "empty"},
		{"truncated", timer.OpSet, []byte{0x81, 0xa4, 'n'}, "truncated"},
		{"short map", timer.OpSet, []byte{0x82, 0xa4, 'n'}, "claims 4 items"},
		{"deep", timer.OpSet, deep, "deeper"},
		{"trailing", timer.OpSet, append(set(), 0xc0), "trailing"},
		{"unknown field", timer.OpSet, set("bogus", 1), `"bogus": unknown field`},
		{"repeated", timer.OpSet, []byte("\x82\xa4name\xa1a\xa4name\xa1b"), "name: repeated"},
		{"non-string key", timer.OpSet, []byte("\x81\x01\x01"), "map key"},
		{"no name", timer.OpSet, set("name", nil), "name: missing"},
		{"empty name", timer.OpSet, set("name", ""), "name: empty"},
		{"long name", timer.OpSet, set("name", long), "name: longer than 128"},
		{"name with NUL", timer.OpSet, set("name", "a\x00b"), "name: want no control"},
		{"name not UTF-8", timer.OpSet, set("name", "\xff"), "name: not UTF-8"},
		{"name not a string", timer.OpSet, set("name", 7), "name: want a string"},
		{"no operation", timer.OpSet, set("operation", nil), "operation: missing"},
		{"empty operation", timer.OpSet, set("operation", ""), "operation: empty"},
		{"operation with space", timer.OpSet, set("operation", "Do It"), "operation: want no spaces"},
		{"every below 10 ms", timer.OpSet, set("every", 5), "every: want 0 (a one-shot timer) or at least 10 ms, got 5"},
		{"negative every", timer.OpSet, set("every", -1), "every: want 0 or more"},
		{"negative after", timer.OpSet, set("after", -20), "after: want 0 or more"},
		{"float after", timer.OpSet, set("after", 1.5), "after: want an integer"},
		{"huge after", timer.OpSet, set("after", int64(1)<<50), "after: want at most"},
		{"every past int64", timer.OpSet, set("every", uint64(1)<<63), "every: integer 9223372036854775808 out of range"},
		{"payload not bytes", timer.OpSet, set("payload", 3), "payload: want binary"},
		{"payload too long", timer.OpSet, set("payload", make([]byte, timer.MaxPayload+1)), "payload: longer than"},
		{"cancel without name", timer.OpCancel, enc(t, m{}), "name: missing"},
		{"cancel empty name", timer.OpCancel, enc(t, m{"name": ""}), "name: empty"},
		{"list with a field", timer.OpList, enc(t, m{"x": 1}), `"x": unknown field`},
		{"list not a map", timer.OpList, []byte{0x01}, "want a map"},
	}
	r := newRig(t)
	r.bind(granted)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := r.call(c.op, c.payload)
			if !errors.Is(err, capabilities.ErrBadPayload) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %v containing %q", err, capabilities.ErrBadPayload, c.want)
			}
		})
	}
	if _, err := r.call("Sleep", nil); !errors.Is(err, capabilities.ErrUnknownOperation) {
		t.Fatalf("unknown operation: %v", err)
	}
	if got := r.stored(); len(got) != 0 {
		t.Fatalf("bad payloads stored %v", got)
	}
	// Accepted forms: nil for the optional fields, str for the payload.
	r.mustCall(timer.OpSet, m{"name": "ok", "operation": "Tick", "after": nil, "every": nil, "payload": nil})
	r.mustCall(timer.OpSet, m{"name": "ok2", "operation": "Tick", "after": 5, "payload": "text"})
}

func TestOneShotFires(t *testing.T) {
	r := newRig(t)
	r.bind(granted)
	r.mustCall(timer.OpSet, m{"name": "once", "operation": "Wake", "after": 50, "payload": []byte("hi")})
	r.armed(1)
	r.clock.Advance(50 * time.Millisecond)
	inv := r.next()
	if inv.actor != actor || inv.op != "Wake" || string(inv.payload) != tick("once", t0.Add(50*time.Millisecond), []byte("hi")) {
		t.Fatalf("invocation %s %s %q", inv.actor, inv.op, inv.payload)
	}
	// The record goes once the invocation returned.
	eventually(t, "the fired one-shot to be forgotten", func() bool { return len(r.stored()) == 0 && r.h.Stats().Timers == 0 })
	if out := r.mustCall(timer.OpList, nil); string(out) != "\x81\xa6timers\x90" {
		t.Fatalf("List after firing: %q", out)
	}
	r.clock.Advance(time.Hour)
	r.close()
	r.none()
}

func TestOneShotAfterZeroFiresAtOnce(t *testing.T) {
	r := newRig(t)
	r.bind(granted)
	r.mustCall(timer.OpSet, m{"name": "now", "operation": "Wake"})
	if inv := r.next(); string(inv.payload) != tick("now", t0, nil) {
		t.Fatalf("payload %q", inv.payload)
	}
}

func TestPeriodicFiresRepeatedly(t *testing.T) {
	r := newRig(t)
	r.bind(granted)
	r.mustCall(timer.OpSet, m{"name": "p", "operation": "Poll", "every": 20}) // first tick one period on
	for k := 1; k <= 3; k++ {
		r.armed(1)
		r.clock.Advance(20 * time.Millisecond)
		if inv := r.next(); string(inv.payload) != tick("p", t0.Add(time.Duration(k)*20*time.Millisecond), nil) {
			t.Fatalf("tick %d: %q", k, inv.payload)
		}
		r.settled(uint64(k))
	}
	r.mustCall(timer.OpSet, m{"name": "q", "operation": "Poll", "after": 5, "every": 20}) // first tick after 5 ms
	r.armed(2)
	r.clock.Advance(5 * time.Millisecond)
	if inv := r.next(); string(inv.payload) != tick("q", t0.Add(65*time.Millisecond), nil) {
		t.Fatalf("q: %q", inv.payload)
	}
	eventually(t, "four firings", func() bool { return r.h.Stats().Fired == 4 })
	if s := r.h.Stats(); s.Skipped != 0 || s.Timers != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPeriodicFailuresDoNotStopIt(t *testing.T) {
	r := newRig(t)
	r.hook = func(context.Context, string) error { return errors.New("trap") }
	r.restart(t0)
	r.bind(granted)
	r.mustCall(timer.OpSet, m{"name": "p", "operation": "Poll", "every": 10})
	for k := range 3 {
		r.armed(1)
		r.clock.Advance(10 * time.Millisecond)
		r.next()
		r.settled(uint64(k + 1))
	}
	eventually(t, "three failures", func() bool { return r.h.Stats().Failed == 3 })
	if got := r.stored(); len(got) != 1 {
		t.Fatalf("stored %v", got)
	}
}

func TestSkipWhenBusy(t *testing.T) {
	r := newRig(t)
	release := make(chan struct{})
	r.hook = func(ctx context.Context, op string) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}
	r.restart(t0)
	r.bind(granted)
	r.mustCall(timer.OpSet, m{"name": "slow", "operation": "Work", "every": 10})
	r.armed(1)
	r.clock.Advance(10 * time.Millisecond)
	r.next() // running, and blocked until released
	r.armed(1)
	r.clock.Advance(10 * time.Millisecond)
	eventually(t, "a skipped tick", func() bool { return r.h.Stats().Skipped == 1 })
	r.armed(1)
	r.clock.Advance(10 * time.Millisecond)
	eventually(t, "a second skipped tick", func() bool { return r.h.Stats().Skipped == 2 })
	close(release)
	eventually(t, "the first invocation to return", func() bool { return r.h.Stats().Fired == 1 })
	r.armed(1)
	r.clock.Advance(10 * time.Millisecond)
	if inv := r.next(); string(inv.payload) != tick("slow", t0.Add(40*time.Millisecond), nil) {
		t.Fatalf("after release: %q", inv.payload)
	}
	eventually(t, "two firings", func() bool { return r.h.Stats().Fired == 2 })
	if s := r.h.Stats(); s.Skipped != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFellBehindSkipsToTheGrid(t *testing.T) {
	r := newRig(t)
	r.bind(granted)
	r.mustCall(timer.OpSet, m{"name": "p", "operation": "Poll", "every": 10})
	r.armed(1)
	r.clock.Advance(55 * time.Millisecond) // one tick at 10 ms runs with the clock at 55 ms
	if inv := r.next(); string(inv.payload) != tick("p", t0.Add(10*time.Millisecond), nil) {
		t.Fatalf("first: %q", inv.payload)
	}
	out := r.mustCall(timer.OpList, nil)
	if want := "\x81\xa6timers\x91" + listEntry("p", "Poll", t0.Add(60*time.Millisecond), 10); string(out) != want {
		t.Fatalf("List:\n got %q\nwant %q", out, want)
	}
	if s := r.h.Stats(); s.Skipped != 4 { // 20, 30, 40 and 50 ms
		t.Fatalf("stats %+v", s)
	}
}

func TestSetReplaces(t *testing.T) {
	r := newRig(t)
	r.bind(granted)
	r.mustCall(timer.OpSet, m{"name": "t", "operation": "Old", "after": 10})
	r.mustCall(timer.OpSet, m{"name": "t", "operation": "New", "after": 20, "every": 30})
	out := r.mustCall(timer.OpList, nil)
	if want := "\x81\xa6timers\x91" + listEntry("t", "New", t0.Add(20*time.Millisecond), 30); string(out) != want {
		t.Fatalf("List:\n got %q\nwant %q", out, want)
	}
	r.armed(1)
	r.clock.Advance(20 * time.Millisecond)
	if inv := r.next(); inv.op != "New" {
		t.Fatalf("fired %s", inv.op)
	}
	r.close()
	r.none()
}

func TestPersistence(t *testing.T) {
	r := newRig(t)
	r.bind(granted)
	r.mustCall(timer.OpSet, m{"name": "p", "operation": "Poll", "every": 100, "payload": []byte{7}})
	r.mustCall(timer.OpSet, m{"name": "later", "operation": "Wake", "after": 1000})

	// The device is off from 0 to 250 ms.
	r.restart(t0.Add(250 * time.Millisecond))
	if s := r.h.Stats(); s.Timers != 0 {
		t.Fatalf("timers before Bind: %+v", s)
	}
	r.bind(granted)
	r.bind(granted) // idempotent: nothing doubles
	out := r.mustCall(timer.OpList, nil)
	want := "\x81\xa6timers\x92" + listEntry("later", "Wake", t0.Add(time.Second), 0) + listEntry("p", "Poll", t0.Add(300*time.Millisecond), 100)
	if string(out) != want {
		t.Fatalf("List after restart:\n got %q\nwant %q", out, want)
	}
	if s := r.h.Stats(); s.Timers != 2 {
		t.Fatalf("stats %+v", s)
	}
	r.armed(2)
	r.clock.Advance(50 * time.Millisecond)
	if inv := r.next(); inv.op != "Poll" || string(inv.payload) != tick("p", t0.Add(300*time.Millisecond), []byte{7}) {
		t.Fatalf("after restart: %s %q", inv.op, inv.payload)
	}
	r.settled(1)
	r.armed(2)
	r.clock.Advance(700 * time.Millisecond)
	inv := r.next() // ticks of p may come first (400 ms, then 1 s: it fell behind)
	for inv.op == "Poll" {
		inv = r.next()
	}
	if inv.op != "Wake" || string(inv.payload) != tick("later", t0.Add(time.Second), nil) {
		t.Fatalf("one-shot after restart: %s %q", inv.op, inv.payload)
	}
}

func TestPersistenceWithoutBind(t *testing.T) {
	r := newRig(t)
	r.bind(granted)
	r.mustCall(timer.OpSet, m{"name": "p", "operation": "Poll", "every": 100})
	r.restart(t0)
	// A call before Bind (a Handler used without a dispatcher) reads the store.
	if out := r.mustCall(timer.OpList, nil); !bytes.Contains(out, []byte("Poll")) {
		t.Fatalf("List: %q", out)
	}
	r.bind(granted)
	if s := r.h.Stats(); s.Timers != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestOneShotDueDuringDowntimeFiresOnceLate(t *testing.T) {
	r := newRig(t)
	r.bind(granted)
	r.mustCall(timer.OpSet, m{"name": "once", "operation": "Wake", "after": 1000, "payload": []byte("x")})
	r.restart(t0.Add(time.Hour))
	r.bind(granted)
	if inv := r.next(); string(inv.payload) != tick("once", t0.Add(time.Second), []byte("x")) {
		t.Fatalf("late one-shot: %q", inv.payload)
	}
	eventually(t, "the fired one-shot to be forgotten", func() bool { return len(r.stored()) == 0 })
	r.restart(t0.Add(2 * time.Hour))
	r.bind(granted)
	r.clock.Advance(time.Hour)
	r.close()
	r.none()
}

func TestCloseKeepsAnInterruptedOneShot(t *testing.T) {
	r := newRig(t)
	r.hook = func(ctx context.Context, op string) error {
		<-ctx.Done() // runs until Close cancels it
		return ctx.Err()
	}
	r.restart(t0)
	r.bind(granted)
	r.mustCall(timer.OpSet, m{"name": "once", "operation": "Wake"})
	r.next()
	r.h.Close() // returns: the invocation honoured its cancelled ctx
	if got := r.stored(); len(got) != 1 {
		t.Fatalf("stored %v: an interrupted one-shot fires again after a restart", got)
	}
	r.hook = nil
	r.restart(t0)
	r.bind(granted)
	if inv := r.next(); inv.op != "Wake" {
		t.Fatalf("fired %s", inv.op)
	}
}

func TestScheduleBindings(t *testing.T) {
	r := newRig(t)
	g := capabilities.Grants{Schedule: []capabilities.ScheduleEntry{{Name: "tick", Every: capabilities.Duration(20 * time.Millisecond), Operation: "Tick"}}}
	r.bind(g)
	r.armed(1)
	r.clock.Advance(20 * time.Millisecond)
	if inv := r.next(); inv.op != "Tick" || string(inv.payload) != tick("tick", t0.Add(20*time.Millisecond), nil) {
		t.Fatalf("schedule: %s %q", inv.op, inv.payload)
	}
	r.settled(1)
	r.armed(1)
	r.clock.Advance(5 * time.Millisecond)
	r.bind(g) // the same grants: the schedule goes on, on its grid, once
	if s := r.h.Stats(); s.Timers != 1 {
		t.Fatalf("stats after rebinding %+v", s)
	}
	r.armed(1)
	r.clock.Advance(15 * time.Millisecond)
	if inv := r.next(); string(inv.payload) != tick("tick", t0.Add(40*time.Millisecond), nil) {
		t.Fatalf("after rebinding: %q", inv.payload)
	}
	r.settled(2)
	// A changed period restarts it, one period after Bind.
	g.Schedule[0].Every = capabilities.Duration(30 * time.Millisecond)
	r.bind(g)
	r.armed(1)
	r.clock.Advance(30 * time.Millisecond)
	if inv := r.next(); string(inv.payload) != tick("tick", t0.Add(70*time.Millisecond), nil) {
		t.Fatalf("after changing: %q", inv.payload)
	}
	// Schedules are not the actor's timers, and need no timers grant.
	if _, err := r.call(timer.OpList, nil); err != nil {
		t.Fatal(err)
	}
	if got := r.stored(); len(got) != 0 {
		t.Fatalf("a schedule was stored: %v", got)
	}
	r.bind(capabilities.Grants{})
	if s := r.h.Stats(); s.Timers != 0 {
		t.Fatalf("stats after unbinding the schedule %+v", s)
	}
	r.clock.Advance(time.Hour)
	r.close()
	r.none()
}

func TestUnbindStopsAndDeletes(t *testing.T) {
	r := newRig(t)
	r.bind(capabilities.Grants{Timers: true, Schedule: []capabilities.ScheduleEntry{{Name: "s", Every: capabilities.Duration(time.Second), Operation: "S"}}})
	r.mustCall(timer.OpSet, m{"name": "a", "operation": "A", "after": 50})
	r.mustCall(timer.OpSet, m{"name": "b", "operation": "B", "every": 20})
	r.h.Unbind(actor)
	if s := r.h.Stats(); s.Timers != 0 {
		t.Fatalf("stats after Unbind %+v", s)
	}
	if got := r.stored(); len(got) != 0 {
		t.Fatalf("stored after Unbind: %v", got)
	}
	r.clock.Advance(time.Hour)
	r.close()
	r.none()
}

func TestUnbindCancelsRunningInvocations(t *testing.T) {
	r := newRig(t)
	ended := make(chan error, 1)
	r.hook = func(ctx context.Context, op string) error {
		<-ctx.Done()
		ended <- ctx.Err()
		return ctx.Err()
	}
	r.restart(t0)
	r.bind(granted)
	r.mustCall(timer.OpSet, m{"name": "once", "operation": "Wake"})
	r.next()
	r.h.Unbind(actor)
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("invocation ended with %v", err)
		}
	case <-time.After(wait):
		t.Fatal("the invocation was not cancelled")
	}
}

func TestGrantWithdrawn(t *testing.T) {
	r := newRig(t)
	r.bind(granted)
	r.mustCall(timer.OpSet, m{"name": "p", "operation": "Poll", "every": 20})
	r.bind(capabilities.Grants{}) // the timers stop, and stay stored
	if s := r.h.Stats(); s.Timers != 0 {
		t.Fatalf("stats %+v", s)
	}
	if got := r.stored(); len(got) != 1 {
		t.Fatalf("stored %v", got)
	}
	r.clock.Advance(110 * time.Millisecond)
	r.bind(granted) // and start again on their grid
	r.armed(1)
	r.clock.Advance(10 * time.Millisecond)
	if inv := r.next(); string(inv.payload) != tick("p", t0.Add(120*time.Millisecond), nil) {
		t.Fatalf("first tick after the grant came back: %q (an earlier tick means it never stopped)", inv.payload)
	}
}

func TestDenied(t *testing.T) {
	r := newRig(t)
	for _, op := range []string{timer.OpSet, timer.OpCancel, timer.OpList, "Other"} {
		_, err := r.h.Handle(t.Context(), capabilities.Call{Actor: actor, Contract: capabilities.Timer, Operation: op,
			Payload: enc(t, m{"name": "t", "operation": "X"}), Grants: capabilities.Grants{KV: true}})
		if !errors.Is(err, capabilities.ErrDenied) {
			t.Fatalf("%s without the timers grant: %v", op, err)
		}
	}
	if got := r.stored(); len(got) != 0 {
		t.Fatalf("stored %v", got)
	}
}

func TestThroughDispatcher(t *testing.T) {
	r := newRig(t)
	d := capabilities.NewDispatcher(capabilities.DispatcherOptions{})
	d.Register(capabilities.Timer, r.h)
	g := capabilities.Grants{Timers: true, Schedule: []capabilities.ScheduleEntry{{Name: "s", Every: capabilities.Duration(10 * time.Millisecond), Operation: "S"}}}
	if err := d.SetGrants(actor, g); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Dispatch(t.Context(), capabilities.Call{Actor: actor, Contract: capabilities.Timer, Operation: timer.OpSet,
		Payload: enc(t, m{"name": "t", "operation": "T", "after": 1000})}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Dispatch(t.Context(), capabilities.Call{Actor: "other", Contract: capabilities.Timer, Operation: timer.OpList}); !errors.Is(err, capabilities.ErrDenied) {
		t.Fatalf("an actor without grants: %v", err)
	}
	if s := r.h.Stats(); s.Timers != 2 {
		t.Fatalf("stats %+v", s)
	}
	d.RemoveGrants(actor)
	if s := r.h.Stats(); s.Timers != 0 || len(r.stored()) != 0 {
		t.Fatalf("after RemoveGrants: %+v, stored %v", s, r.stored())
	}
}

func TestPerActorLimit(t *testing.T) {
	r := newRig(t)
	r.bind(granted)
	for i := range timer.MaxTimers {
		r.mustCall(timer.OpSet, m{"name": "t" + string(rune('A'+i/26)) + string(rune('a'+i%26)), "operation": "T", "after": 1000})
	}
	_, err := r.call(timer.OpSet, enc(t, m{"name": "one-more", "operation": "T"}))
	if !errors.Is(err, timer.ErrTooManyTimers) || !errors.Is(err, capabilities.ErrBadPayload) || !strings.Contains(err.Error(), "256") {
		t.Fatalf("past the limit: %v", err)
	}
	r.mustCall(timer.OpSet, m{"name": "tAa", "operation": "Replaced", "after": 1000}) // replacing is not adding
	r.mustCall(timer.OpCancel, m{"name": "tAb"})
	r.mustCall(timer.OpSet, m{"name": "one-more", "operation": "T", "after": 1000})
	if got := r.stored(); len(got) != timer.MaxTimers {
		t.Fatalf("%d stored", len(got))
	}
	// Another actor has a limit of its own.
	if _, err := r.h.Handle(t.Context(), capabilities.Call{Actor: "other", Operation: timer.OpSet, Grants: granted,
		Payload: enc(t, m{"name": "x", "operation": "T", "after": 1000})}); err != nil {
		t.Fatal(err)
	}
}

func TestContext(t *testing.T) {
	r := newRig(t)
	r.bind(granted)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := r.h.Handle(ctx, capabilities.Call{Actor: actor, Operation: timer.OpSet, Grants: granted, Payload: enc(t, m{"name": "t", "operation": "T"})})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	if got := r.stored(); len(got) != 0 {
		t.Fatalf("a cancelled Set stored %v", got)
	}
	// A firing's invocation has a deadline.
	r.mustCall(timer.OpSet, m{"name": "t", "operation": "T"})
	inv := r.next()
	if inv.deadline.IsZero() || time.Until(inv.deadline) > timer.InvokeTimeout {
		t.Fatalf("invocation deadline %v", inv.deadline)
	}
}

func TestClosed(t *testing.T) {
	r := newRig(t)
	r.h.Close()
	if _, err := r.call(timer.OpList, nil); !errors.Is(err, capabilities.ErrUnavailable) {
		t.Fatalf("call after Close: %v", err)
	}
	if err := r.h.Bind(actor, granted); !errors.Is(err, capabilities.ErrUnavailable) {
		t.Fatalf("Bind after Close: %v", err)
	}
	r.h.Close() // twice is fine
}

func TestBindRefusesBadSchedules(t *testing.T) {
	r := newRig(t)
	for _, s := range []capabilities.ScheduleEntry{
		{Name: "fast", Every: capabilities.Duration(time.Millisecond), Operation: "T"},
		{Name: "", Every: capabilities.Duration(time.Second), Operation: "T"},
		{Name: "noop", Every: capabilities.Duration(time.Second)},
	} {
		if err := r.h.Bind(actor, capabilities.Grants{Schedule: []capabilities.ScheduleEntry{s}}); err == nil {
			t.Fatalf("schedule %+v was bound", s)
		}
	}
	if s := r.h.Stats(); s.Timers != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestRealClock runs timers on wall time, with short periods.
func TestRealClock(t *testing.T) {
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	calls := make(chan string, 1024)
	h := timer.New(timer.Options{Store: st, Invoke: func(ctx context.Context, a, op string, payload []byte) ([]byte, error) {
		calls <- op
		return nil, nil
	}})
	defer h.Close()
	call := func(op string, req m) {
		t.Helper()
		if _, err := h.Handle(t.Context(), capabilities.Call{Actor: actor, Operation: op, Grants: granted, Payload: enc(t, req)}); err != nil {
			t.Fatal(err)
		}
	}
	call(timer.OpSet, m{"name": "p", "operation": "Poll", "every": 10})
	call(timer.OpSet, m{"name": "once", "operation": "Once", "after": 20})
	seen := map[string]int{}
	for seen["Poll"] < 3 || seen["Once"] < 1 {
		select {
		case op := <-calls:
			seen[op]++
		case <-time.After(wait):
			t.Fatalf("saw %v", seen)
		}
	}
	call(timer.OpCancel, m{"name": "p"})
	h.Close()
	noLeaks(t)
	close(calls)
	for op := range calls {
		seen[op]++
	}
	if seen["Once"] != 1 {
		t.Fatalf("the one-shot fired %d times", seen["Once"])
	}
}

func FuzzHandle(f *testing.F) {
	for _, seed := range []struct {
		op      string
		payload []byte
	}{
		{timer.OpSet, enc(f, m{"name": "t", "operation": "T", "after": 10, "every": 20, "payload": []byte{1}})},
		{timer.OpSet, enc(f, m{"name": "t", "operation": "T", "every": 5})},
		{timer.OpSet, []byte("\x82\xa4name\xa1a\xa4name\xa1b")},
		{timer.OpSet, bytes.Repeat([]byte{0x91}, 100)},
		{timer.OpCancel, enc(f, m{"name": "t"})},
		{timer.OpList, nil},
		{timer.OpList, enc(f, m{})},
		{"Other", nil},
	} {
		f.Add(seed.op, seed.payload)
	}
	st, err := store.Open(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	h := timer.New(timer.Options{Store: st, Clock: clockwork.NewFakeClockAt(t0)})
	f.Cleanup(func() { h.Close(); st.Close() })
	f.Fuzz(func(t *testing.T, op string, payload []byte) {
		_, err := h.Handle(context.Background(), capabilities.Call{Actor: actor, Contract: capabilities.Timer, Operation: op, Payload: payload, Grants: granted})
		if err != nil && !errors.Is(err, capabilities.ErrBadPayload) && !errors.Is(err, capabilities.ErrUnknownOperation) {
			t.Fatalf("%s %x: error %v wraps no sentinel a guest expects", op, payload, err)
		}
	})
}

func TestStoreFailure(t *testing.T) {
	r := newRig(t)
	r.bind(granted)
	r.st.Close() // the store goes away under the Handler
	_, err := r.call(timer.OpSet, enc(t, m{"name": "t", "operation": "T", "after": 1000}))
	if !errors.Is(err, capabilities.ErrUnavailable) {
		t.Fatalf("Set on a closed store: %v", err)
	}
	if s := r.h.Stats(); s.Timers != 0 {
		t.Fatalf("a timer that was not stored runs: %+v", s)
	}
	if err := r.h.Bind("other", granted); !errors.Is(err, capabilities.ErrUnavailable) {
		t.Fatalf("Bind on a closed store: %v", err)
	}
}

// Release (an actor whose start failed) stops its timers but keeps them
// stored; its next Bind starts them again. Unbind forgets them.
func TestReleaseKeepsStoredTimers(t *testing.T) {
	r := newRig(t)
	r.bind(granted)
	r.mustCall(timer.OpSet, m{"name": "p", "operation": "Poll", "every": 100})
	r.h.Release(actor)
	if s := r.h.Stats(); s.Timers != 0 {
		t.Fatalf("timers running after Release: %+v", s)
	}
	if ids := r.stored(); len(ids) != 1 {
		t.Fatalf("stored after Release: %q, want the timer kept", ids)
	}
	r.bind(granted)
	if s := r.h.Stats(); s.Timers != 1 {
		t.Fatalf("after Release and Bind: %+v, want the timer back", s)
	}
	r.h.Unbind(actor)
	if ids := r.stored(); len(ids) != 0 {
		t.Fatalf("stored after Unbind: %q", ids)
	}
}
