package route

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on request methods and paths. A path over MaxPathBytes or with more
// than MaxSegments segments is rejected, never truncated.
const (
	MaxPathBytes   = 8 << 10
	MaxSegments    = 128
	MaxMethodBytes = 32
)

// checkMethod accepts methods made of uppercase ASCII letters, '-' and '_'
// (every registered HTTP method fits). Methods are case-sensitive (RFC 9110
// §9.1), but some upstreams fold case; rejecting "delete" outright keeps it
// from slipping past a DELETE route into a "*" route.
func checkMethod(m string) error {
	if m == "" || len(m) > MaxMethodBytes {
		return &BadRequestError{Code: CodeBadMethod, Segment: -1,
			Message: fmt.Sprintf("method must be 1 to %d characters", MaxMethodBytes)}
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; (c < 'A' || c > 'Z') && c != '-' && c != '_' {
			return &BadRequestError{Code: CodeBadMethod, Segment: -1,
				Message: "method must be uppercase ASCII letters, '-' or '_'"}
		}
	}
	return nil
}

// splitPath is a request path that passed every check, with its segment
// boundaries. It lives on the caller's stack; Match allocates nothing for it.
type splitPath struct {
	path string
	n    int
	// end[i] is the offset just past segment i. Segment i starts one byte
	// after segment i-1 ends (after the '/'), segment 0 at offset 1.
	end [MaxSegments]uint16
	// pct has bit i set when segment i contains a percent-encoding.
	pct [MaxSegments / 64]uint64
}

func (sp *splitPath) start(i int) int {
	if i == 0 {
		return 1
	}
	return int(sp.end[i-1]) + 1
}

func (sp *splitPath) seg(i int) string { return sp.path[sp.start(i):sp.end[i]] }

func (sp *splitPath) encoded(i int) bool { return sp.pct[i>>6]&(1<<(i&63)) != 0 }

// value returns segment i percent-decoded.
func (sp *splitPath) value(i int) string {
	if !sp.encoded(i) {
		return sp.seg(i)
	}
	return unescape(sp.seg(i))
}

// rest returns segments i..n-1 percent-decoded and joined by '/'. Decoding
// cannot introduce a '/' because encoded slashes are rejected.
func (sp *splitPath) rest(i int) string {
	return unescape(sp.path[sp.start(i):])
}

// parse validates p and records its segments. See docs/routes.md for the rules.
func (sp *splitPath) parse(p string) error {
	switch {
	case p == "" || p[0] != '/':
		return &BadRequestError{Code: CodeNotAbsolute, Segment: -1,
			Message: `path must start with "/" (pass the escaped path without query or fragment)`}
	case len(p) > MaxPathBytes:
		return &BadRequestError{Code: CodeTooLong, Segment: -1,
			Message: fmt.Sprintf("path is %d bytes; the limit is %d", len(p), MaxPathBytes)}
	}
	sp.path, sp.n, sp.pct = p, 0, [MaxSegments / 64]uint64{}
	start := 1
	for {
		end := strings.IndexByte(p[start:], '/')
		last := end < 0
		if last {
			end = len(p)
		} else {
			end += start
		}
		if sp.n == MaxSegments {
			return &BadRequestError{Code: CodeTooManySegments, Segment: -1,
				Message: fmt.Sprintf("path has more than %d segments", MaxSegments)}
		}
		enc, code, c := checkSegment(p[start:end], last)
		if code != "" {
			return segmentError(code, sp.n, c)
		}
		sp.end[sp.n] = uint16(end)
		if enc {
			sp.pct[sp.n>>6] |= 1 << (sp.n & 63)
		}
		sp.n++
		if last {
			return nil
		}
		start = end + 1
	}
}

func segmentError(code string, seg int, c byte) *BadRequestError {
	var msg string
	switch code {
	case CodeEmptySegment:
		msg = `empty path segment ("//"); empty segments are rejected, not collapsed`
	case CodeDotSegment:
		msg = `dot segment ("." or "..", possibly percent-encoded)`
	case CodeEncodedSlash:
		msg = `percent-encoded slash ("%2F")`
	case CodeEncodedBackslash:
		msg = `percent-encoded backslash ("%5C")`
	case CodeBackslash:
		msg = "backslash"
	case CodeControl:
		msg = fmt.Sprintf("control character 0x%02X (raw or percent-encoded)", c)
	case CodeSemicolon:
		msg = `semicolon (raw or percent-encoded); some servers strip ";params" from segments`
	case CodeInvalidChar:
		msg = fmt.Sprintf("character %q must be percent-encoded", c)
	case CodeBadPercent:
		msg = `invalid percent-encoding ("%" must be followed by two hex digits)`
	case CodeDoubleEncoding:
		msg = `double percent-encoding ("%25" followed by two hex digits)`
	case CodeInvalidUTF8:
		msg = "percent-encoded bytes are not valid UTF-8"
	default:
		msg = code
	}
	return &BadRequestError{Code: code, Segment: seg,
		Message: fmt.Sprintf("path segment %d: %s", seg, msg)}
}

// checkSegment applies the per-segment rules to one raw segment. It returns
// whether the segment contains a percent-encoding, or the code of the first
// rule it breaks and the offending (decoded) byte.
func checkSegment(s string, last bool) (enc bool, code string, bad byte) {
	if s == "" {
		if last {
			return false, "", 0 // trailing slash: kept, and significant
		}
		return false, CodeEmptySegment, 0
	}
	var (
		n, dots  int
		nonASCII bool
		hexRun   = -1 // decoded hex digits seen since a decoded '%', -1 if none
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			// Fast path: a byte allowed unencoded. None of the checks on
			// decoded bytes below can fail for it.
			if !plainByte(c) {
				return enc, rawCode(c), c
			}
			if c == '.' {
				dots++
			}
			if hexRun >= 0 {
				if _, isHex := unhex(c); isHex {
					if hexRun++; hexRun == 2 {
						return enc, CodeDoubleEncoding, c
					}
				} else {
					hexRun = -1
				}
			}
			n++
			continue
		}
		if i+2 >= len(s) {
			return enc, CodeBadPercent, c
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return enc, CodeBadPercent, c
		}
		c = hi<<4 | lo
		i += 2
		enc = true
		n++
		switch {
		case c == '/':
			return enc, CodeEncodedSlash, c
		case c == '\\':
			return enc, CodeEncodedBackslash, c
		case c < 0x20 || c == 0x7f:
			return enc, CodeControl, c
		case c == ';':
			return enc, CodeSemicolon, c
		case c >= 0x80:
			nonASCII = true
		case c == '.':
			dots++
		}
		// An upstream that decodes twice would see "%2541" as "A"; reject
		// the decoded form "%XX" so that every server sees the same path.
		switch _, isHex := unhex(c); {
		case c == '%':
			hexRun = 0
		case hexRun >= 0 && isHex:
			if hexRun++; hexRun == 2 {
				return enc, CodeDoubleEncoding, c
			}
		default:
			hexRun = -1
		}
	}
	if dots == n && n <= 2 {
		return enc, CodeDotSegment, '.'
	}
	if nonASCII && !validUTF8Unescaped(s) {
		return enc, CodeInvalidUTF8, 0
	}
	return enc, "", 0
}

// Bitmaps of the bytes plainByte accepts: bit c of plainLo for c < 64,
// bit c-64 of plainHi for 64 <= c < 128. TestPlainByteMatchesRawCode keeps
// them in sync with rawCode.
const (
	plainLo uint64 = 0x27ff7fd200000000
	plainHi uint64 = 0x47fffffeafffffff
)

// plainByte reports whether c may appear unencoded in a path segment.
func plainByte(c byte) bool {
	switch {
	case c < 64:
		return plainLo&(1<<c) != 0
	case c < 128:
		return plainHi&(1<<(c-64)) != 0
	}
	return false
}

// rawCode classifies a byte that appears unencoded in a path. Allowed are
// RFC 3986 pchar characters plus '[' and ']' (the same set Go's net/url
// leaves unescaped in EscapedPath). ';' is a sub-delim but is rejected.
func rawCode(c byte) string {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return ""
	case c < 0x20 || c == 0x7f:
		return CodeControl
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', '=', ':', '@', '[', ']':
		return ""
	case '\\':
		return CodeBackslash
	case ';':
		return CodeSemicolon
	}
	return CodeInvalidChar
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// appendUnescaped appends s percent-decoded to dst. s must have passed
// checkSegment (every '%' starts a valid escape).
func appendUnescaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) {
			hi, _ := unhex(s[i+1])
			lo, _ := unhex(s[i+2])
			c = hi<<4 | lo
			i += 2
		}
		dst = append(dst, c)
	}
	return dst
}

// unescape returns s percent-decoded, without allocating when s has no
// escapes.
func unescape(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	var buf [128]byte
	return string(appendUnescaped(buf[:0], s))
}

func validUTF8Unescaped(s string) bool {
	var buf [128]byte
	return utf8.Valid(appendUnescaped(buf[:0], s))
}
