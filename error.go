// Package tally holds the types every part of Tally shares: the domain error
// with its code, and the clock that domain code reads time from.
package tally

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. Each adapter maps a code once: the admin API to an HTTP status,
// the chat router to a localized message.
const (
	EINVALID      = "invalid"
	EUNAUTHORIZED = "unauthorized"
	EFORBIDDEN    = "forbidden"
	ENOTFOUND     = "not_found"
	ECONFLICT     = "idempotency_conflict"
	EINSUFFICIENT = "insufficient_points"
	EINTERNAL     = "internal"
)

// Error is a failure the caller can act on: a code from the list above and a
// message safe to show to the person who made the request.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the *Error in err's chain, EINTERNAL for any
// other error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of the *Error in err's chain;
// internal errors get a generic text (their details belong in the log).
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// Clock tells the time. Domain code takes one so tests can control time.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns the current time.
func (SystemClock) Now() time.Time { return time.Now() }
