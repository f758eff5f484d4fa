package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is an error answered by the cluster (or produced by the client for a call it
// could not complete). Code is the gRPC status code and Message the server's message,
// unchanged. Test for a kind of error with errors.Is and the sentinels below:
//
//	if errors.Is(err, client.ErrNotFound) { ... }
//
// and get at the code or message with errors.As.
type Error struct {
	Code    codes.Code
	Message string

	// cause is what Unwrap returns: the caller's context error when the call ended
	// because ctx was done, so errors.Is(err, context.DeadlineExceeded) holds.
	cause error
}

// Sentinels to match with errors.Is. Any *Error with the same Code matches.
var (
	ErrNotFound           = &Error{Code: codes.NotFound}
	ErrAlreadyExists      = &Error{Code: codes.AlreadyExists}
	ErrInvalidArgument    = &Error{Code: codes.InvalidArgument}
	ErrFailedPrecondition = &Error{Code: codes.FailedPrecondition}
	ErrResourceExhausted  = &Error{Code: codes.ResourceExhausted}
	ErrUnavailable        = &Error{Code: codes.Unavailable}
	ErrPermissionDenied   = &Error{Code: codes.PermissionDenied}
	ErrUnauthenticated    = &Error{Code: codes.Unauthenticated}
	ErrDeadlineExceeded   = &Error{Code: codes.DeadlineExceeded}
	ErrCanceled           = &Error{Code: codes.Canceled}
	ErrAborted            = &Error{Code: codes.Aborted}
	ErrInternal           = &Error{Code: codes.Internal}
	ErrUnimplemented      = &Error{Code: codes.Unimplemented}
)

// ErrClosed is returned by calls on a Client after Close.
var ErrClosed = errors.New("snapkeep client is closed")

// Error returns "<code in words>: <message>", e.g.
// `not found: collection "docs" not found in database "default"`.
func (e *Error) Error() string {
	if e.Message == "" {
		return codeText(e.Code)
	}
	return codeText(e.Code) + ": " + e.Message
}

// Is reports whether target is an *Error with the same code and either no message
// (the sentinels) or the same message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// Unwrap returns the caller's context error for calls that ended because their
// context was done, and nil otherwise.
func (e *Error) Unwrap() error { return e.cause }

// GRPCStatus lets status.FromError and status.Code see the original status.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

// Code returns the gRPC code of err: the Code of an *Error in its chain,
// codes.OK for nil, and codes.Unknown for anything else.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return codes.Unknown
}

// fromStatusError converts an error returned by a gRPC stub into an *Error, keeping
// the server's message intact.
func fromStatusError(err error) *Error {
	st := status.Convert(err)
	return &Error{Code: st.Code(), Message: st.Message()}
}

// contextError is the error for a call whose context ended. It unwraps to ctx.Err()
// and, when earlier attempts failed for another reason, says so in its message.
func contextError(ctx context.Context, attempts int, last error) *Error {
	ctxErr := ctx.Err()
	code := codes.Canceled
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		code = codes.DeadlineExceeded
	}
	msg := ctxErr.Error()
	if cause := context.Cause(ctx); cause != nil && cause != ctxErr {
		msg += " (" + cause.Error() + ")"
	}
	if last != nil {
		msg += fmt.Sprintf(" after %d attempts; last error: %v", attempts, last)
	}
	return &Error{Code: code, Message: msg, cause: ctxErr}
}

// retriable reports whether a call that failed with code may be tried again, on this
// or another node. Writes are safe to retry because they carry a request id the
// cluster deduplicates.
func retriable(code codes.Code) bool {
	return code == codes.Unavailable || code == codes.Aborted
}

// codeText spells a code in lower-case words: FailedPrecondition → "failed precondition".
func codeText(c codes.Code) string {
	name := c.String()
	if strings.HasPrefix(name, "Code(") {
		return "code " + strings.TrimSuffix(strings.TrimPrefix(name, "Code("), ")")
	}
	var b strings.Builder
	prevLower := false
	for _, r := range name {
		if unicode.IsUpper(r) && prevLower {
			b.WriteByte(' ')
		}
		prevLower = unicode.IsLower(r)
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// nilOption is the error for a method called with a nil option builder.
func nilOption(method string) *Error {
	return &Error{Code: codes.InvalidArgument, Message: method + " was called with a nil option"}
}
