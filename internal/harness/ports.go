package harness

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Ports come from 20000–31999, below Linux's default ephemeral range (32768–60999): an
// ephemeral port, once released, can be taken by any outgoing connection before (or
// between restarts of) the server that was to bind it.
const (
	PortsLow  = 20000
	PortsHigh = 31999
)

// pickAttempts bounds the random tries of one pick.
const pickAttempts = 1000

var ports = struct {
	mu     sync.Mutex
	given  map[int]bool // ports handed out by this process, never handed out again
	claims []*os.File   // the lock files that claim them from other processes (unix)
}{given: map[int]bool{}}

// FreeAddr picks a port on 127.0.0.1 that is free for TCP and UDP (gossip binds both)
// and returns "127.0.0.1:PORT". A port is never handed out twice by one process, so a
// server restarted by its harness can bind its port again, and concurrent callers never
// get the same port.
func FreeAddr() (string, error) {
	first, err := FreeBlock(1)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(first)), nil
}

// FreeBlock picks size consecutive ports on 127.0.0.1, each free for TCP and UDP, and
// returns the first (for `snapkeep dev --base-port`, which binds ports at fixed offsets
// from its base). Like FreeAddr, it never hands out a port twice.
func FreeBlock(size int) (int, error) {
	if size < 1 || size > PortsHigh-PortsLow+1 {
		return 0, fmt.Errorf("harness: a block of %d ports does not fit in %d-%d", size, PortsLow, PortsHigh)
	}
	ephemeralLow, ephemeralHigh := EphemeralRange()
	ports.mu.Lock()
	defer ports.mu.Unlock()
	for range pickAttempts {
		first := PortsLow + rand.IntN(PortsHigh-PortsLow+2-size)
		last := first + size - 1
		if last >= ephemeralLow && first <= ephemeralHigh {
			continue // the system's ephemeral range reaches below ours
		}
		if blockFree(first, last) && claimBlock(first, last) {
			for port := first; port <= last; port++ {
				ports.given[port] = true
			}
			return first, nil
		}
	}
	return 0, fmt.Errorf("harness: no %d free consecutive ports in %d-%d on 127.0.0.1", size, PortsLow, PortsHigh)
}

// blockFree reports whether no port of first..last was handed out and each can be
// bound on 127.0.0.1 for TCP and UDP right now. The caller holds ports.mu.
func blockFree(first, last int) bool {
	for port := first; port <= last; port++ {
		if ports.given[port] || !bindable(port) {
			return false
		}
	}
	return true
}

// claimBlock claims first..last from the other processes on this machine that pick
// ports here (claimAcrossProcesses), or reports false when another holds one of them.
// Ports it claimed before a refusal stay claimed and unused: a few, and only on a
// collision. The caller holds ports.mu.
func claimBlock(first, last int) bool {
	for port := first; port <= last; port++ {
		if !claimAcrossProcesses(port) {
			for p := first; p < port; p++ {
				ports.given[p] = true // claimed by us: never picked again
			}
			return false
		}
	}
	return true
}

func bindable(port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	_ = ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	_ = pc.Close()
	return true
}

// EphemeralRange is the system's ephemeral port range, from
// /proc/sys/net/ipv4/ip_local_port_range, or Linux's default 32768–60999 where that
// cannot be read.
func EphemeralRange() (low, high int) {
	low, high, err := readEphemeralRange("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768, 60999
	}
	return low, high
}

func readEphemeralRange(path string) (int, int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return 0, 0, fmt.Errorf("%s: want two ports, got %q", path, b)
	}
	low, errLow := strconv.Atoi(fields[0])
	high, errHigh := strconv.Atoi(fields[1])
	if err := errors.Join(errLow, errHigh); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	return low, high, nil
}
