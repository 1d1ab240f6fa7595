package identity

// CodeInvalidToken is the RFC 6750 error code of every verification failure.
const CodeInvalidToken = "invalid_token"

// Descriptions carried by *Error. They are fixed, contain no token data and
// no characters that need escaping in a WWW-Authenticate quoted-string, so a
// gateway may send them to the client as error_description. They also make a
// low-cardinality label for metrics.
const (
	DescMalformed      = "The access token is malformed"
	DescTooLarge       = "The access token is too large"
	DescUnsupported    = "The access token uses an unsupported format"
	DescUnknownIssuer  = "The access token issuer is not trusted"
	DescAlgorithm      = "The access token signing algorithm is not accepted"
	DescKeyNotFound    = "The access token signing key is unknown"
	DescSignature      = "The access token signature is invalid"
	DescType           = "The access token type is not accepted"
	DescIssuer         = "The access token issuer is invalid"
	DescAudience       = "The access token audience is invalid"
	DescExpired        = "The access token expired"
	DescNotYetValid    = "The access token is not yet valid"
	DescIssuedInFuture = "The access token is issued in the future"
	DescMissingClaim   = "The access token lacks a required claim"
	DescInactive       = "The access token is not active"
	DescUnavailable    = "The access token could not be verified at this time"
)

// Error is a token verification failure. Every failure denies the request.
type Error struct {
	// Code is the RFC 6750 error code, always CodeInvalidToken.
	Code string
	// Description is safe to show to the client (one of the Desc* values).
	Description string
	// Reason is the detailed cause for logs; it may name issuers, key ids
	// and claim values and must not be sent to the client.
	Reason string
	// Temporary is set when the token could not be checked because an
	// issuer endpoint (JWKS, discovery, introspection) was unreachable or
	// misbehaving; a gateway may answer 503 instead of 401. The request is
	// denied either way.
	Temporary bool
	// Err is the underlying error, if any.
	Err error
}

// Error returns the code, description and reason (for logs).
func (e *Error) Error() string {
	s := e.Code + ": " + e.Description
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

func invalid(desc, reason string) *Error {
	return &Error{Code: CodeInvalidToken, Description: desc, Reason: reason}
}

func invalidErr(desc, reason string, err error) *Error {
	return &Error{Code: CodeInvalidToken, Description: desc, Reason: reason, Err: err}
}

func unavailable(reason string, err error) *Error {
	return &Error{Code: CodeInvalidToken, Description: DescUnavailable, Reason: reason, Temporary: true, Err: err}
}
