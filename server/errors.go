package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
)

// LeaderMetadataKey is the response metadata key naming the leader's gRPC address, so
// clients can send writes straight to it.
const LeaderMetadataKey = "snapkeep-leader"

var fsmCodes = map[fsmpb.ErrorCode]codes.Code{
	fsmpb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT:    codes.InvalidArgument,
	fsmpb.ErrorCode_ERROR_CODE_NOT_FOUND:           codes.NotFound,
	fsmpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS:      codes.AlreadyExists,
	fsmpb.ErrorCode_ERROR_CODE_FAILED_PRECONDITION: codes.FailedPrecondition,
	fsmpb.ErrorCode_ERROR_CODE_RESOURCE_EXHAUSTED:  codes.ResourceExhausted,
	fsmpb.ErrorCode_ERROR_CODE_INTERNAL:            codes.Internal,
}

// toStatus turns any error into a gRPC status error. The FSM keeps object keys
// relative to the storage root and quotes them so in its messages; keys quotes gets
// the root back in front, so a person sees the keys they sent.
func toStatus(err error, root layout.Root) error {
	if err == nil {
		return nil
	}
	var fe *fsm.Error
	if errors.As(err, &fe) {
		code, ok := fsmCodes[fe.Code]
		if !ok {
			code = codes.Unknown
		}
		return status.Error(code, root.FullQuoted(fe.Message))
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Internal, err.Error())
}

// leaderHeaderInterceptor tells every caller where the leader is, and converts
// handler errors to statuses.
func (n *Node) leaderHeaderInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if addr, _ := n.leaderGRPCAddr(); addr != "" {
		_ = grpc.SetHeader(ctx, metadata.Pairs(LeaderMetadataKey, addr))
	}
	resp, err := handler(ctx, req)
	return resp, toStatus(err, n.root)
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
