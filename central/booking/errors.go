package booking

import (
	"errors"
	"fmt"
)

// Kind classifies an Error; the HTTP layer maps each kind to one status.
type Kind int

// The kinds of failure a caller can act on.
const (
	Invalid       Kind = iota + 1 // malformed input (400)
	Unauthorized                  // missing or unknown credentials (401)
	Forbidden                     // credentials that do not cover this (403)
	NotFound                      // no such spot or reservation (404)
	Conflict                      // wrong state, overlap (409)
	Unprocessable                 // well-formed but semantically invalid (422)
	Declined                      // payment declined (402)
	Unavailable                   // a dependency is down; retry later (503)
)

// Error is a failure with a stable machine word and a sentence for a person.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Err     error // the cause, if any; never shown to clients
}

// Error returns the message for a person.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func newErr(k Kind, code, format string, args ...any) *Error {
	return &Error{Kind: k, Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError returns err as an *Error if it is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
