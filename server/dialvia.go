package server

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// dialVia translates the addresses this node dials its peers at (Config.DialVia): a
// peer's Raft or gRPC address FROM is reached by connecting to TO. The addresses in the
// Raft configuration and the node registry stay the real ones, the same on every node;
// only where this node's connections go changes. It exists for fault-injection
// harnesses (a proxy per directed link) and for address translation (NAT).
type dialVia map[string]string

// target is where to connect to reach addr.
func (d dialVia) target(addr string) string {
	if to, ok := d[addr]; ok {
		return to
	}
	return addr
}

// ParseDialVia parses "FROM=TO,FROM=TO" (both host:port) into a map FROM → TO.
// Empty input gives an empty map.
func ParseDialVia(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		from, to, ok := strings.Cut(part, "=")
		from, to = strings.TrimSpace(from), strings.TrimSpace(to)
		if !ok || from == "" || to == "" {
			return nil, fmt.Errorf("%q is not FROM=TO", part)
		}
		if _, dup := out[from]; dup {
			return nil, fmt.Errorf("%s is mapped twice", from)
		}
		out[from] = to
	}
	if err := validateDialVia(out); err != nil {
		return nil, err
	}
	return out, nil
}

// validateDialVia checks every pair: both sides host:port with a port, and distinct.
func validateDialVia(m map[string]string) error {
	var errs []error
	for from, to := range m {
		for _, a := range []string{from, to} {
			if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
				errs = append(errs, fmt.Errorf("%s=%s: %q is not host:port", from, to, a))
			}
		}
		if from == to {
			errs = append(errs, fmt.Errorf("%s=%s maps an address to itself", from, to))
		}
	}
	return errors.Join(errs...)
}
