package server

import (
	"log/slog"
	"net"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRoleTableCoversEveryMethod starts a node and walks every method its gRPC server
// registered: each must have an explicit entry in methodRoles (server/auth.go). A
// method without one needs admin (fail closed), which is rarely what its author meant:
// add the entry with the role it needs.
func TestRoleTableCoversEveryMethod(t *testing.T) {
	raftLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	n, err := Start(Config{
		NodeID: "n1", DataDir: t.TempDir(),
		RaftListener: raftLn, GRPCListener: grpcLn,
		Peers:  map[string]string{"n1": raftLn.Addr().String()},
		NoSync: true, GCDisabled: true,
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	defer n.Close()

	var missing []string
	seen := map[string]bool{}
	for svc, info := range n.grpcServer.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			seen[full] = true
			if _, ok := methodRoles[full]; !ok {
				missing = append(missing, full)
			}
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "RPCs without an entry in methodRoles (server/auth.go): give each its role (reader, writer, admin; internal for the Internal service) and say if it is audited")
	require.NotEmpty(t, seen)
	var stale []string
	for m := range methodRoles {
		if !seen[m] {
			stale = append(stale, m)
		}
	}
	require.Empty(t, stale, "methodRoles lists methods no service registers (renamed or removed?)")
}

func TestRuleForFailsClosed(t *testing.T) {
	r := ruleFor("/snapkeep.v1.Cluster/SomethingNew")
	require.Equal(t, RoleAdmin, r.role)
	require.True(t, r.audit)
	require.Equal(t, roleInternal, ruleFor("/snapkeep.internal.v1.Internal/SomethingNew").role)
	require.Equal(t, RoleReader, ruleFor("/snapkeep.v1.Catalog/ListCollections").role)
}
