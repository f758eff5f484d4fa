package fsm

import (
	"errors"
	"fmt"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// Error is a command's rejection: a code the server maps to a gRPC status, and a
// message a person can act on. Apply returns it inside the result, never panics.
type Error struct {
	Code    fsmpb.ErrorCode
	Message string
}

func (e *Error) Error() string { return e.Message }

// Is matches another *Error with the same code and no message, so the sentinels below
// work with errors.Is.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code && t.Message == ""
}

// Sentinels for errors.Is.
var (
	ErrInvalidArgument    = &Error{Code: fsmpb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT}
	ErrNotFound           = &Error{Code: fsmpb.ErrorCode_ERROR_CODE_NOT_FOUND}
	ErrAlreadyExists      = &Error{Code: fsmpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS}
	ErrFailedPrecondition = &Error{Code: fsmpb.ErrorCode_ERROR_CODE_FAILED_PRECONDITION}
	ErrResourceExhausted  = &Error{Code: fsmpb.ErrorCode_ERROR_CODE_RESOURCE_EXHAUSTED}
	ErrInternal           = &Error{Code: fsmpb.ErrorCode_ERROR_CODE_INTERNAL}
)

func newError(code fsmpb.ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalidf(format string, args ...any) *Error {
	return newError(fsmpb.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, format, args...)
}

func notFoundf(format string, args ...any) *Error {
	return newError(fsmpb.ErrorCode_ERROR_CODE_NOT_FOUND, format, args...)
}

func existsf(format string, args ...any) *Error {
	return newError(fsmpb.ErrorCode_ERROR_CODE_ALREADY_EXISTS, format, args...)
}

func preconditionf(format string, args ...any) *Error {
	return newError(fsmpb.ErrorCode_ERROR_CODE_FAILED_PRECONDITION, format, args...)
}

func exhaustedf(format string, args ...any) *Error {
	return newError(fsmpb.ErrorCode_ERROR_CODE_RESOURCE_EXHAUSTED, format, args...)
}

// ResultError turns a stored result back into an error (nil when it succeeded).
func ResultError(r *fsmpb.Result) error {
	if r == nil || r.Code == fsmpb.ErrorCode_ERROR_CODE_OK {
		return nil
	}
	return &Error{Code: r.Code, Message: r.Message}
}

// asError converts any error a handler returned into an *Error; anything that is not
// already one is an internal error (a bug), kept with its text.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return newError(fsmpb.ErrorCode_ERROR_CODE_INTERNAL, "internal error: %v", err)
}
