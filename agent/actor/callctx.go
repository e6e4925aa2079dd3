package actor

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellis-edge/trellis/agent/abi"
)

// A guest call needs a context that is done at its deadline (wazero closes
// the module then) and carries the invocation for the host functions.
// context.WithTimeout and WithValue cost five allocations, a timer and a
// channel per call, a fifth of the cost of a tiny call. Instead, each instance
// owns one timer and one done channel, armed per call. The channel is closed
// at most once: a fired deadline always discards its instance.

// deadline is an instance's reusable call deadline.
type deadline struct {
	done   chan struct{}
	timer  *time.Timer
	once   sync.Once
	err    atomic.Pointer[error]
	unhook func() bool // stops the caller-cancellation hook of the current call
}

func newDeadline() *deadline {
	d := &deadline{done: make(chan struct{})}
	d.timer = time.AfterFunc(time.Hour, func() { d.expire(context.DeadlineExceeded) })
	d.timer.Stop()
	return d
}

func (d *deadline) expire(err error) {
	d.once.Do(func() {
		d.err.Store(&err)
		close(d.done)
	})
}

// arm starts the deadline for one call and ties it to the caller's context.
func (d *deadline) arm(parent context.Context, at time.Time) {
	d.timer.Reset(time.Until(at))
	if parent.Done() != nil {
		d.unhook = context.AfterFunc(parent, func() { d.expire(parent.Err()) })
	}
}

// disarm stops the deadline after a call and reports whether it fired (then
// the instance must be discarded, whatever the call returned).
func (d *deadline) disarm() (fired bool) {
	if !d.timer.Stop() {
		fired = true
	}
	if d.unhook != nil {
		if !d.unhook() {
			fired = true
		}
		d.unhook = nil
	}
	return fired || d.err.Load() != nil
}

// callCtx is the context of one guest call.
type callCtx struct {
	context.Context // the caller's, for values
	d               *deadline
	at              time.Time
	inv             *abi.Invocation
}

var _ abi.Carrier = (*callCtx)(nil)

func (c *callCtx) Deadline() (time.Time, bool) { return c.at, true }
func (c *callCtx) Done() <-chan struct{}       { return c.d.done }
func (c *callCtx) Invocation() *abi.Invocation { return c.inv }

func (c *callCtx) Err() error {
	if e := c.d.err.Load(); e != nil {
		return *e
	}
	return nil
}
