package harness

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPickersNeverCollide runs pickers of single ports and of blocks concurrently: no
// port may be handed out twice, each must lie in PortsLow–PortsHigh and outside the
// system's ephemeral range, and each must be bindable on 127.0.0.1 for TCP and UDP.
func TestPickersNeverCollide(t *testing.T) {
	const pickers, picksEach, blockSize = 8, 25, 34
	type pick struct {
		name  string
		ports []int
		err   error
	}
	results := make([][]pick, pickers)
	var wg sync.WaitGroup
	for picker := range pickers {
		wg.Go(func() {
			for i := range picksEach {
				p := pick{name: fmt.Sprintf("picker %d pick %d", picker, i)}
				if i%5 == 0 {
					var first int
					if first, p.err = FreeBlock(blockSize); p.err == nil {
						for port := first; port < first+blockSize; port++ {
							p.ports = append(p.ports, port)
						}
					}
				} else {
					var addr string
					if addr, p.err = FreeAddr(); p.err == nil {
						p.ports = append(p.ports, portOf(t, addr))
					}
				}
				results[picker] = append(results[picker], p)
			}
		})
	}
	wg.Wait()
	owner := map[int]string{} // port → the pick that got it
	for _, picks := range results {
		for _, p := range picks {
			require.NoError(t, p.err, p.name)
			for _, port := range p.ports {
				prev, taken := owner[port]
				require.False(t, taken, "port %d handed out twice: to %s and %s", port, prev, p.name)
				owner[port] = p.name
			}
		}
	}
	low, high := EphemeralRange()
	for port := range owner {
		require.GreaterOrEqual(t, port, PortsLow)
		require.LessOrEqual(t, port, PortsHigh)
		require.False(t, port >= low && port <= high, "port %d is in the ephemeral range %d-%d", port, low, high)
	}
	// A sample is still bindable: nobody (this test included) holds what was handed out.
	n := 0
	for port := range owner {
		if n++; n > 50 {
			break
		}
		require.True(t, bindable(port), "port %d", port)
	}
}

// portOf is the port of a "127.0.0.1:PORT" address.
func portOf(t *testing.T, addr string) int {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		t.Errorf("%q is not a 127.0.0.1 address (%v)", addr, err)
		return 0
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Errorf("%q: %v", addr, err)
	}
	return p
}

func TestFreeBlock(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int
		wantErr string
	}{
		{name: "one port", size: 1},
		{name: "the dev cluster's ports", size: 34},
		{name: "empty", size: 0, wantErr: "a block of 0 ports"},
		{name: "larger than the range", size: PortsHigh - PortsLow + 2, wantErr: "does not fit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first, err := FreeBlock(tc.size)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.GreaterOrEqual(t, first, PortsLow)
			require.LessOrEqual(t, first+tc.size-1, PortsHigh)
			for port := first; port < first+tc.size; port++ {
				require.True(t, bindable(port), "port %d", port)
			}
		})
	}
}

func TestReadEphemeralRange(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		low, high     int
		wantErr       bool
	}{
		{name: "linux default", content: "32768\t60999\n", low: 32768, high: 60999},
		{name: "lowered", content: "15000 65000", low: 15000, high: 65000},
		{name: "one field", content: "32768", wantErr: true},
		{name: "not a number", content: "a b", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ip_local_port_range")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o644))
			low, high, err := readEphemeralRange(path)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, [2]int{tc.low, tc.high}, [2]int{low, high})
		})
	}
}
