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
func (n *Node) leaderHeaderInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if addr, _ := n.leaderGRPCAddr(); addr != "" {
		_ = grpc.SetHeader(ctx, metadata.Pairs(LeaderMetadataKey, addr))
	}
	resp, err := handler(ctx, req)
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
