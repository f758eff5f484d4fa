// Package netproxy is the harness's TCP proxy for one directed link: everything a node
// sends to a peer through it can be cut (black-holed), delayed or made lossy
// independently of every other link.
//
// A cut link behaves like a network partition, not like a refused connection: bytes
// are read and thrown away and new connections are accepted and never answered, so
// the peer sees timeouts. When the cut heals, every connection that lived through it
// is closed (its stream has lost bytes) and the peers reconnect. A lossy link resets a
// connection with the given probability per forwarded chunk (TCP does not lose single
// bytes; a reset connection is what loss looks like to an application).
package netproxy

import (
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// State is a link's fault state; the zero State is a healthy link.
type State struct {
	Cut   bool
	Delay time.Duration // added before each forwarded chunk
	Drop  float64       // probability per chunk that the connection is reset
}

// Proxy forwards connections from its listen address to Target.
type Proxy struct {
	Name   string
	Target string
	ln     net.Listener

	mu     sync.Mutex
	state  State
	gen    uint64 // incremented by each cut; a connection alive during a cut is closed at heal
	conns  map[*pair]struct{}
	closed bool
	wg     sync.WaitGroup
}

type pair struct {
	client, server net.Conn
	cutGen         uint64 // gen at which this pair saw a cut (0: none)
	once           sync.Once
}

func (p *pair) close() {
	p.once.Do(func() {
		_ = p.client.Close()
		if p.server != nil {
			_ = p.server.Close()
		}
	})
}

// Start listens on 127.0.0.1 (an ephemeral port unless listen is given) and forwards to
// target.
func Start(name, listen, target string) (*Proxy, error) {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	p := &Proxy{Name: name, Target: target, ln: ln, conns: map[*pair]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address peers dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// State returns the link's current state.
func (p *Proxy) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Set changes the link's state. Leaving a cut closes every connection that saw it.
func (p *Proxy) Set(s State) {
	p.mu.Lock()
	was := p.state.Cut
	p.state = s
	var stale []*pair
	switch {
	case s.Cut && !was:
		p.gen++
		for c := range p.conns {
			c.cutGen = p.gen
		}
	case !s.Cut && was:
		for c := range p.conns {
			if c.cutGen != 0 {
				stale = append(stale, c)
			}
		}
	}
	p.mu.Unlock()
	for _, c := range stale {
		c.close()
	}
}

// Heal makes the link healthy again.
func (p *Proxy) Heal() { p.Set(State{}) }

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	all := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		all = append(all, c)
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, c := range all {
		c.close()
	}
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return
		}
		pr := &pair{client: conn}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = conn.Close()
			return
		}
		if p.state.Cut {
			pr.cutGen = p.gen
		}
		p.conns[pr] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(pr)
	}
}

func (p *Proxy) serve(pr *pair) {
	defer p.wg.Done()
	defer func() {
		pr.close()
		p.mu.Lock()
		delete(p.conns, pr)
		p.mu.Unlock()
	}()
	if pr.cutGen != 0 {
		// Accepted during a cut: never dial; hold the connection until the heal
		// (or Close) closes it, throwing away what the client sends.
		_, _ = io.Copy(io.Discard, pr.client)
		return
	}
	server, err := net.DialTimeout("tcp", p.Target, 5*time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	pr.server = server
	closed := p.closed
	p.mu.Unlock()
	if closed {
		_ = server.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { p.pump(pr, server, pr.client); done <- struct{}{} }()
	go func() { p.pump(pr, pr.client, server); done <- struct{}{} }()
	<-done
	pr.close()
	<-done
}

// pump copies src to dst chunk by chunk, applying the link's state to each chunk.
func (p *Proxy) pump(pr *pair, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			s := p.State()
			switch {
			case s.Cut:
				// black hole: the bytes are lost, the connection stays open
			case s.Drop > 0 && rand.Float64() < s.Drop:
				pr.close()
				return
			default:
				if s.Delay > 0 {
					time.Sleep(s.Delay)
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return // EOF or error: serve closes both sides (Raft and gRPC never half-close)
		}
	}
}
