package server

import (
	"context"
	"log/slog"
	"net"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
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
		Auth:   AuthConfig{Insecure: true},
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

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeStream) Context() context.Context { return s.ctx }

// TestStreamInterceptor: no RPC streams yet; the stream interceptor applies the same
// rules as the unary one.
func TestStreamInterceptor(t *testing.T) {
	a, err := newAuthenticator(AuthConfig{
		Tokens:        []string{TokenLine(RoleReader, "reader-token"), TokenLine(RoleAdmin, "admin-token")},
		InternalToken: "internal-secret-0123",
	}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	called := 0
	handler := func(any, grpc.ServerStream) error { called++; return nil }
	run := func(method, token string) error {
		ctx := context.Background()
		if token != "" {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+token))
		}
		return a.stream(nil, fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: method}, handler)
	}
	require.Equal(t, codes.Unauthenticated, status.Code(run("/snapkeep.v1.Catalog/ListCollections", "")))
	require.NoError(t, run("/snapkeep.v1.Catalog/ListCollections", "reader-token"))
	require.Equal(t, codes.PermissionDenied, status.Code(run("/snapkeep.v1.Future/Watch", "reader-token")), "not in the table: admin")
	require.NoError(t, run("/snapkeep.v1.Future/Watch", "admin-token"))
	require.Equal(t, codes.Unauthenticated, status.Code(run("/snapkeep.internal.v1.Internal/Propose", "admin-token")))
	require.Equal(t, 2, called)
}
