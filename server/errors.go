package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/server/api"
)

// LeaderMetadataKey is the response metadata key naming the leader's gRPC address, so
// clients can send writes straight to it.
const LeaderMetadataKey = "snapkeep-leader"

// leaderHeaderInterceptor tells every caller where the leader is, and converts
// handler errors to statuses.
//
// The header names the leader this node knew when the call came in. A failed call
// also carries the leader in its trailer as the node knows it when answering — often
// the call failed because the leader changed meanwhile — and the trailer is there even
// when it knows none (an empty value: an election is in progress). The client goes at
// once to a leader named there, waits only when none is named, and can tell a node
// that answered from one it could not reach (no metadata at all).
func (n *Node) leaderHeaderInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if addr, _ := n.leaderGRPCAddr(); addr != "" {
		_ = grpc.SetHeader(ctx, metadata.Pairs(LeaderMetadataKey, addr))
	}
	resp, err := handler(ctx, req)
	if err != nil {
		addr, _ := n.leaderGRPCAddr()
		_ = grpc.SetTrailer(ctx, metadata.Pairs(LeaderMetadataKey, addr))
	}
	return resp, api.Status(err, n.root)
}

// recoverInterceptor turns a handler panic into an Internal error instead of a crash.
func recoverInterceptor(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				logger.Error("panic in handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, fmt.Sprintf("internal error in %s; see the server log", info.FullMethod))
			}
		}()
		return handler(ctx, req)
	}
}
