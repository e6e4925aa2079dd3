package periphhost

import (
	"errors"
	"fmt"
	"sync"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"
)

// testPin is periph's gpiotest.Pin (conn v3.7.3), field for field and
// method for method, minus its Clock: gpiotest imports
// github.com/jonboulle/clockwork, which this module's go.mod does not list,
// so gpiotest does not build here. With clockwork in go.mod this file
// becomes `type testPin = gpiotest.Pin` and nothing else changes.
//
// Fake hardware events by sending levels on EdgesChan; read what the
// provider did from L, D and F under the mutex.
type testPin struct {
	N   string
	Num int
	Fn  string

	sync.Mutex
	L         pgpio.Level
	P         pgpio.Pull
	EdgesChan chan pgpio.Level
	D         pgpio.Duty
	F         physic.Frequency
}

func (p *testPin) String() string             { return fmt.Sprintf("%s(%d)", p.N, p.Num) }
func (p *testPin) Halt() error                { return nil }
func (p *testPin) Name() string               { return p.N }
func (p *testPin) Number() int                { return p.Num }
func (p *testPin) Function() string           { return p.Fn }
func (p *testPin) Func() pin.Func             { return pin.Func(p.Fn) }
func (p *testPin) SupportedFuncs() []pin.Func { return []pin.Func{pgpio.IN, pgpio.OUT} }
func (p *testPin) SetFunc(pin.Func) error     { return errors.New("gpiotest: not supported") }
func (p *testPin) Pull() pgpio.Pull           { return p.P }
func (p *testPin) DefaultPull() pgpio.Pull    { return p.P }

func (p *testPin) In(pull pgpio.Pull, edge pgpio.Edge) error {
	p.Lock()
	defer p.Unlock()
	p.P = pull
	if pull == pgpio.PullDown {
		p.L = pgpio.Low
	} else if pull == pgpio.PullUp {
		p.L = pgpio.High
	}
	if edge != pgpio.NoEdge && p.EdgesChan == nil {
		return errors.New("gpiotest: please set p.EdgesChan first")
	}
	for { // flush buffered edges
		select {
		case <-p.EdgesChan:
		default:
			return nil
		}
	}
}

func (p *testPin) Read() pgpio.Level {
	p.Lock()
	defer p.Unlock()
	return p.L
}

func (p *testPin) WaitForEdge(timeout time.Duration) bool {
	if timeout == -1 {
		_ = p.Out(<-p.EdgesChan)
		return true
	}
	select {
	case <-time.After(timeout):
		return false
	case l := <-p.EdgesChan:
		_ = p.Out(l)
		return true
	}
}

func (p *testPin) Out(l pgpio.Level) error {
	p.Lock()
	defer p.Unlock()
	p.L = l
	return nil
}

func (p *testPin) PWM(duty pgpio.Duty, f physic.Frequency) error {
	p.Lock()
	defer p.Unlock()
	p.D = duty
	p.F = f
	return nil
}

var _ pgpio.PinIO = (*testPin)(nil)
