package loopback

import (
	"net"
	"testing"
)

func TestFreeAddrIsFreshAndBindable(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		addr, err := FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("cannot bind %s: %v", addr, err)
		}
		_ = ln.Close()
	}
}
