package route

import "testing"

func TestPlainByteMatchesRawCode(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := rawCode(byte(c)) == "" && c != '%'
		if got := plainByte(byte(c)); got != want {
			t.Errorf("plainByte(%q) = %v, want %v", rune(c), got, want)
		}
	}
}

func TestCheckSegmentCountsDecodedBytes(t *testing.T) {
	for seg, want := range map[string]string{
		".":         CodeDotSegment,
		"%2E":       CodeDotSegment,
		"%2e%2E":    CodeDotSegment,
		"...":       "",
		"%2e%2e%2e": "",
		"a.":        "",
		"%25":       "",
		"%2541":     CodeDoubleEncoding,
		"%25%34%31": CodeDoubleEncoding,
		"%25%2541":  CodeDoubleEncoding,
		"%254":      "",
		"%25G1":     "",
		"%E2%82%AC": "",
		"%E2%82":    CodeInvalidUTF8,
		"%ff":       CodeInvalidUTF8,
	} {
		if _, got, _ := checkSegment(seg, true); got != want {
			t.Errorf("checkSegment(%q) = %q, want %q", seg, got, want)
		}
	}
}
