package route

import (
	"errors"
	"strings"
)

// Sentinel errors returned (wrapped) by Table.Match. The gateway translates
// them: ErrBadRequest → 400, ErrNoRoute → deny (404-style reason).
var (
	// ErrBadRequest is matched by every error for a request whose method or
	// path is malformed or unsafe. Such a request is rejected before any
	// route is consulted.
	ErrBadRequest = errors.New("route: malformed or unsafe request")
	// ErrNoRoute is matched when no route covers the request. Unmatched
	// requests are always denied; configure a catch-all route
	// ("/{path...}") to send them to the policy instead.
	ErrNoRoute = errors.New("route: no route matches the request")
	// ErrMethodNotAllowed is matched (in addition to ErrNoRoute) when routes
	// exist for the path but none for the method.
	ErrMethodNotAllowed = errors.New("route: method not allowed for this path")
)

// Codes for BadRequestError. They are stable identifiers for logs, metrics
// and problem+json bodies; docs/routes.md explains each rule.
const (
	CodeBadMethod        = "bad_method"
	CodeNotAbsolute      = "not_absolute"
	CodeTooLong          = "path_too_long"
	CodeTooManySegments  = "too_many_segments"
	CodeEmptySegment     = "empty_segment"
	CodeDotSegment       = "dot_segment"
	CodeEncodedSlash     = "encoded_slash"
	CodeEncodedBackslash = "encoded_backslash"
	CodeBackslash        = "backslash"
	CodeControl          = "control_character"
	CodeSemicolon        = "semicolon"
	CodeInvalidChar      = "invalid_character"
	CodeBadPercent       = "bad_percent_encoding"
	CodeDoubleEncoding   = "double_encoding"
	CodeInvalidUTF8      = "invalid_utf8"
)

// BadRequestError describes why a request method or path was rejected. It
// matches ErrBadRequest with errors.Is. The message never echoes the path,
// which is attacker-controlled and may be up to MaxPathBytes long.
type BadRequestError struct {
	// Code is one of the Code* constants.
	Code string
	// Segment is the zero-based index of the offending path segment, or -1
	// when the method or the path as a whole is at fault.
	Segment int
	// Message is a human-readable explanation.
	Message string
}

func (e *BadRequestError) Error() string { return "route: " + e.Message }

// Is reports whether target is ErrBadRequest.
func (e *BadRequestError) Is(target error) bool { return target == ErrBadRequest }

// NoRouteError reports that no route matched. It matches ErrNoRoute, and
// also ErrMethodNotAllowed when Allowed is not empty.
type NoRouteError struct {
	// Method is the request method.
	Method string
	// Allowed lists, sorted, the methods that routes accept for this path
	// (HEAD included when GET is). Empty when no route matches the path at
	// all.
	Allowed []string
}

func (e *NoRouteError) Error() string {
	if len(e.Allowed) > 0 {
		return "route: no " + e.Method + " route for this path (allowed: " + strings.Join(e.Allowed, ", ") + ")"
	}
	return "route: no route matches " + e.Method + " on this path"
}

// Is reports whether target is ErrNoRoute, or ErrMethodNotAllowed when
// other methods are allowed on the path.
func (e *NoRouteError) Is(target error) bool {
	return target == ErrNoRoute || (target == ErrMethodNotAllowed && len(e.Allowed) > 0)
}
