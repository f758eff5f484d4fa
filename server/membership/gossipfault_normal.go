//go:build !faultinject

package membership

import "github.com/hashicorp/memberlist"

// injectGossipFaults is the fault-injection hook of gossipfault_faultinject.go; normal
// builds leave memberlist's own transport alone.
func injectGossipFaults(*memberlist.Config) error { return nil }
