//go:build faultinject

package membership

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/snapkeep/snapkeep/internal/faultfile"
)

// GossipFaultFile names the file whose lines fault this node's gossip, in faultinject
// builds only: "block HOST:PORT" drops every packet to and from that member's gossip
// address and refuses stream dials to it (a partition, when the other side blocks this
// node too); "delay DURATION" holds every packet and dial that long. Missing or empty:
// none. Re-read every 20 ms (internal/faultfile).
const GossipFaultFile = "SNAPKEEP_FAULT_GOSSIP_FILE"

// injectGossipFaults puts the fault-injecting transport under memberlist when the
// harness asked for it.
func injectGossipFaults(mc *memberlist.Config) error {
	path := os.Getenv(GossipFaultFile)
	if path == "" {
		return nil
	}
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: mc.Logger})
	if err != nil {
		return err
	}
	mc.Transport = newFaultTransport(nt, path)
	return nil
}

// faultTransport is memberlist's network transport with the faults of a file.
type faultTransport struct {
	*memberlist.NetTransport
	file    *faultfile.File
	packets chan *memberlist.Packet
	done    chan struct{}
	once    sync.Once
}

var _ memberlist.NodeAwareTransport = (*faultTransport)(nil)

func newFaultTransport(nt *memberlist.NetTransport, path string) *faultTransport {
	t := &faultTransport{NetTransport: nt, file: faultfile.New(path), packets: make(chan *memberlist.Packet), done: make(chan struct{})}
	go t.forward()
	return t
}

// faults returns the blocked addresses and the delay the file asks for now.
func (t *faultTransport) faults() (map[string]bool, time.Duration) {
	blocked, delay := map[string]bool{}, time.Duration(0)
	for _, line := range strings.Split(t.file.Content(), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "block":
			blocked[f[1]] = true
		case len(f) == 2 && f[0] == "delay":
			if d, err := time.ParseDuration(f[1]); err == nil {
				delay = d
			}
		}
	}
	return blocked, delay
}

// forward passes the packets received from members not blocked, after the delay.
func (t *faultTransport) forward() {
	in := t.NetTransport.PacketCh()
	for {
		select {
		case <-t.done:
			return
		case p := <-in:
			blocked, delay := t.faults()
			if p.From != nil && blocked[p.From.String()] {
				continue
			}
			deliver := func() {
				select {
				case t.packets <- p:
				case <-t.done:
				}
			}
			if delay > 0 {
				time.AfterFunc(delay, deliver)
			} else {
				deliver()
			}
		}
	}
}

func (t *faultTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *faultTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	blocked, delay := t.faults()
	if blocked[addr.Addr] {
		return time.Now(), nil // lost on the way, as UDP may be
	}
	if delay > 0 {
		buf := append([]byte(nil), b...)
		time.AfterFunc(delay, func() { _, _ = t.NetTransport.WriteToAddress(buf, addr) })
		return time.Now(), nil
	}
	return t.NetTransport.WriteToAddress(b, addr)
}

func (t *faultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *faultTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	blocked, delay := t.faults()
	if blocked[addr.Addr] {
		time.Sleep(timeout)
		return nil, fmt.Errorf("dial %s: i/o timeout (gossip fault)", addr.Addr)
	}
	if delay > 0 {
		time.Sleep(min(delay, timeout))
	}
	return t.NetTransport.DialAddressTimeout(addr, timeout)
}

func (t *faultTransport) Shutdown() error {
	t.once.Do(func() { close(t.done) })
	return t.NetTransport.Shutdown()
}
