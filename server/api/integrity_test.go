package api

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/server/scrub"
)

// A verification's error reaches the client with a code saying whether to retry: a
// failed read or listing recorded nothing (Unavailable), never Unknown or Internal.
func TestVerifyErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want codes.Code
	}{
		{"undecided read", fmt.Errorf("snapshot s (id 3): data-read-error k: %w", scrub.ErrUndecided), codes.Unavailable},
		{"listing failed", fmt.Errorf("verify snapshots [3]: list \"c/\": %w", errors.New("503 SlowDown")), codes.Unavailable},
		{"object missing while listing", fmt.Errorf("verify snapshots [3]: %w", objstore.ErrNotFound), codes.Unavailable},
		{"proposal refused", status.Error(codes.FailedPrecondition, "not the leader"), codes.FailedPrecondition},
		{"fsm refused", fmt.Errorf("record: %w", &fsm.Error{Code: fsmpb.ErrorCode_ERROR_CODE_NOT_FOUND, Message: "gone"}), codes.NotFound},
		{"caller gave up", fmt.Errorf("verify snapshots [3]: list: %w", context.Canceled), codes.Canceled},
		{"deadline", fmt.Errorf("verify snapshots [3]: list: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := status.Code(Status(verifyError(tc.err), ""))
			require.Equal(t, tc.want, got, "%v", verifyError(tc.err))
		})
	}
}
