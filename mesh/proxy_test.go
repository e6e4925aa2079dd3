package mesh

import (
	"net"
	"sync"
	"testing"
)

// tcpProxy is a loopback TCP proxy in front of a hub's leafnode listener,
// for cutting a leaf's uplink without stopping either server. Leaves must be
// started with NoAdvertise, or they learn the hub's own address and go
// around the proxy.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	up       bool
	dropDown bool // drop what the hub sends
	dropUp   bool // drop what the device sends
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

// startProxy listens on a free loopback port and forwards to target
// (host:port); the test closes it.
func startProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, up: true, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

// URL is the leaf URL to give a device.
func (p *tcpProxy) URL() string { return "nats-leaf://" + p.ln.Addr().String() }

// Cut closes every connection and refuses new ones until Restore.
func (p *tcpProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = false
	p.closeConnsLocked()
}

// Restore accepts connections again, and stops dropping.
func (p *tcpProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up, p.dropDown, p.dropUp = true, false, false
}

// DropFromHub keeps the connections up but drops everything the hub sends:
// the hub stores what a device forwards, and the device never hears so.
func (p *tcpProxy) DropFromHub() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropDown = true
}

// DropToHub keeps the connections up but drops everything the device
// sends: its messages are lost on the way, unknown to it.
func (p *tcpProxy) DropToHub() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropUp = true
}

func (p *tcpProxy) dropping(downstream bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if downstream {
		return p.dropDown
	}
	return p.dropUp
}

func (p *tcpProxy) closeConnsLocked() {
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.up = false
	p.closeConnsLocked()
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *tcpProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		up := p.up
		p.mu.Unlock()
		if !up {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if !p.up { // cut meanwhile
			p.mu.Unlock()
			c.Close()
			u.Close()
			continue
		}
		p.conns[c], p.conns[u] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(u, c, false) })
		p.wg.Go(func() { p.pipe(c, u, true) })
	}
}

// pipe copies src to dst until either closes, or drops the bytes while told
// to.
func (p *tcpProxy) pipe(dst, src net.Conn, downstream bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.dropping(downstream) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
