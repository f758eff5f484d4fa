package api

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
)

var fsmCodes = map[fsmpb.ErrorCode]codes.Code{
	fsmpb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT:    codes.InvalidArgument,
	fsmpb.ErrorCode_ERROR_CODE_NOT_FOUND:           codes.NotFound,
	fsmpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS:      codes.AlreadyExists,
	fsmpb.ErrorCode_ERROR_CODE_FAILED_PRECONDITION: codes.FailedPrecondition,
	fsmpb.ErrorCode_ERROR_CODE_RESOURCE_EXHAUSTED:  codes.ResourceExhausted,
	fsmpb.ErrorCode_ERROR_CODE_INTERNAL:            codes.Internal,
}

// Status turns any error into a gRPC status error. The FSM keeps object keys
// relative to the storage root and quotes them so in its messages; keys quotes gets
// the root back in front, so a person sees the keys they sent.
func Status(err error, root layout.Root) error {
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
