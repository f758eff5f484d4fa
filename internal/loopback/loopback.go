// Package loopback hands out free ports on 127.0.0.1 for the servers a harness starts
// (the fault-injection cluster, the benchmarks).
package loopback

import (
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

var (
	mu    sync.Mutex
	given = map[int]bool{} // ports handed out by this process
)

// FreeAddr picks a port on 127.0.0.1 that is free for TCP and UDP (gossip binds
// both) and returns "127.0.0.1:PORT". A port is never handed out twice by one process,
// so a server restarted by the harness can bind its port again. Ports come from
// 20000–31999, below Linux's ephemeral range (32768+): an ephemeral port, once
// released, can be taken by any outgoing connection before the server binds it.
func FreeAddr() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if given[port] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		_ = ln.Close()
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		_ = pc.Close()
		given[port] = true
		return addr, nil
	}
	return "", errors.New("no free port in 20000-31999 on 127.0.0.1")
}
