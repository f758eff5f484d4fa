package objstore

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// transientCodes are S3 (and S3-compatible) error codes that mean "try again
// later": throttling, a server-side timeout or an internal failure.
var transientCodes = map[string]bool{
	"SlowDown":                               true,
	"SlowDownRead":                           true,
	"SlowDownWrite":                          true,
	"Throttling":                             true,
	"ThrottlingException":                    true,
	"ThrottledException":                     true,
	"RequestThrottled":                       true,
	"RequestThrottledException":              true,
	"TooManyRequestsException":               true,
	"RequestLimitExceeded":                   true,
	"BandwidthLimitExceeded":                 true,
	"ProvisionedThroughputExceededException": true,
	"RequestTimeout":                         true,
	"RequestTimeoutException":                true,
	"RequestTimeTooSkewed":                   true, // the SDK corrects its clock offset on the next attempt
	"InternalError":                          true,
	"ServiceUnavailable":                     true,
	"OperationAborted":                       true, // a conflicting operation is in progress
	"PriorRequestNotComplete":                true,
	"XMinioServerNotInitialized":             true,
}

// permanentLocal marks errors the caller caused (a Put body of the wrong
// length): repeating the call cannot help, whatever the error chain says.
type permanentLocal interface{ permanentLocal() }

// IsTransient reports whether err is worth retrying as is, after a backoff:
//
//   - throttling (SlowDown, ThrottlingException, 429, …), RequestTimeout, and
//     any 5xx response;
//   - network failures of one request: connection refused or reset, a broken
//     pipe, the server closing the connection before or in the middle of its
//     response (EOF, unexpected EOF), and I/O timeouts (a socket deadline, an
//     http.Client timeout).
//
// It is false for nil, ErrNotFound, ErrAccessDenied, other 4xx responses
// (validation errors), errors that say nothing about the network, and for the
// caller's own context ending: the context.Canceled or context.DeadlineExceeded
// values themselves anywhere in the chain. (A timeout of one request that is
// not the caller's context is transient.)
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if chainHas(err, context.Canceled) || chainHas(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrPreconditionFailed) {
		return false
	}
	var local permanentLocal
	if errors.As(err, &local) {
		return false
	}
	if transientCodes[apiErrorCode(err)] {
		return true
	}
	if status := httpStatus(err); status != 0 {
		if status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout {
			return true
		}
		if status >= 400 {
			// A 4xx with its body cut short is still a 4xx.
			return false
		}
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		// A modeled error the server sent on purpose, with no transient code
		// or status: a server-side fault is worth another try, a client fault not.
		return apiErr.ErrorFault() == smithy.FaultServer
	}
	return isNetworkError(err)
}

// isNetworkError reports a failure of the connection rather than an answer.
func isNetworkError(err error) bool {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, net.ErrClosed):
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		// "no such host" is a configuration error; a failed lookup is not.
		return !dnsErr.IsNotFound
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && (opErr.Op == "dial" || opErr.Op == "read" || opErr.Op == "write") {
		return true
	}
	return false
}

// httpStatus is the HTTP status of the response that failed, or 0.
func httpStatus(err error) int {
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		return respErr.HTTPStatusCode()
	}
	var withStatus interface{ HTTPStatusCode() int }
	if errors.As(err, &withStatus) {
		return withStatus.HTTPStatusCode()
	}
	return 0
}

// chainHas reports whether target itself (by identity, not errors.Is) is in
// err's chain. errors.Is would also match I/O timeouts, which declare
// themselves equal to context.DeadlineExceeded.
func chainHas(err, target error) bool {
	for err != nil {
		if err == target {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if chainHas(e, target) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

// accessDeniedError is ErrAccessDenied for errors.Is while keeping the backend
// error in the message and in the chain.
type accessDeniedError struct{ cause error }

func (e accessDeniedError) Error() string   { return ErrAccessDenied.Error() + ": " + e.cause.Error() }
func (e accessDeniedError) Unwrap() []error { return []error{ErrAccessDenied, e.cause} }
