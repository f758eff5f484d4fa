package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/snapkeep/snapkeep/server"
)

// The operations endpoint: Prometheus metrics, health and pprof over HTTP
// (server/http.go, docs/OPERATIONS.md).

// devHTTPOffset: dev node i serves HTTP on base+devHTTPOffset+i.
const devHTTPOffset = 31

// addHTTPFlags adds the flags of the node's HTTP endpoint to `snapkeep server`.
func addHTTPFlags(cmd *cobra.Command, cfg *server.Config) {
	fl := cmd.Flags()
	fl.StringVar(&cfg.HTTP.Addr, "http-addr", "", "address of the HTTP endpoint serving /metrics (Prometheus) and /health, e.g. 127.0.0.1:7021 (empty: off)")
	fl.BoolVar(&cfg.HTTP.EnablePprof, "enable-pprof", false, "also serve Go profiles on /debug/pprof/ of --http-addr")
	fl.Uint64Var(&cfg.HealthMaxLag, "health-max-lag", 1000, "log entries a node may be behind the leader's commit index and still be healthy; further behind it answers client calls Unavailable at once")
}

// printHTTPAddr tells where a node serves metrics, when it does.
func printHTTPAddr(out io.Writer, node *server.Node) {
	if addr := node.HTTPAddr(); addr != "" {
		fmt.Fprintf(out, "node %s serves metrics on http://%s/metrics and health on http://%s/health\n", node.ID(), addr, addr)
	}
}

// devHTTP is dev node i's HTTP endpoint.
func devHTTP(basePort, i int) server.HTTPConfig {
	return server.HTTPConfig{Addr: fmt.Sprintf("127.0.0.1:%d", basePort+devHTTPOffset+i)}
}

// devHTTPAddrs lists the dev nodes' HTTP addresses, for the "http:" ready line.
func devHTTPAddrs(nodes []*server.Node) string {
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.HTTPAddr()
	}
	return strings.Join(addrs, ",")
}
