package risk

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
)

// FuzzConfig decodes arbitrary YAML as the risk section: decoding,
// defaults and validation never panic, and a configuration that validates
// builds an engine.
func FuzzConfig(f *testing.F) {
	f.Add([]byte("detectors: {enumeration: {threshold: 10, high_threshold: 20}}"))
	f.Add([]byte("score: {medium: 99, high: 100, fade: 1}\nlimits: {subjects: 1}"))
	f.Add([]byte("outbound: {issuer: x, receivers: [{name: a, endpoint: 'http://[::1]:1/p'}]}"))
	f.Add([]byte("tick: -1s\nqueue_size: -5"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		var c Config
		if err := yaml.UnmarshalWithOptions(doc, &c, yaml.DisallowUnknownField()); err != nil {
			return
		}
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			return
		}
		if c.Limits.Subjects > 1000 || c.QueueSize > 1000 || c.Publish.QueueSize > 1000 {
			return // valid, but too large to build in a fuzz loop
		}
		if _, err := New(Options{Config: c, Publisher: &fakePublisher{}}); err != nil {
			t.Fatalf("a valid configuration failed to build: %v", err)
		}
	})
}

// FuzzEvents feeds arbitrary event sequences (times, outcomes, identities,
// addresses, locations, agents, resources) through every detector: the
// engine never panics, published signals are always valid (fakePublisher
// validates them), scores stay within 0-100 and tables within their
// limits.
func FuzzEvents(f *testing.F) {
	f.Add([]byte("\x00\x01alice\x00s1\x00Mozilla\x00\x00"), uint32(0))
	f.Add([]byte("\x05\x03bob\x00\x00curl\x00dev\x00\xff\xff\xff\xff"), uint32(123456))
	f.Fuzz(fuzzBody)
}

func fuzzBody(t *testing.T, data []byte, seed uint32) {
	{
		e, pub, _ := testEngine(t, func(c *Config) {
			c.Limits.Subjects, c.Limits.Sessions, c.Limits.Tokens, c.Limits.Addresses = 8, 8, 8, 8
			c.QueueSize, c.Publish.QueueSize = 16, 16
			c.Detectors.NewDevice.LearnFor = time.Second
			c.Detectors.NewCountry.LearnFor = time.Second
		})
		r := reader{b: data}
		at := t0.Add(time.Duration(seed%100000) * time.Second)
		for i := 0; i < 64 && !r.done(); i++ {
			at = at.Add(time.Duration(r.byte()) * time.Second)
			ev := Event{
				Time:       at,
				Outcome:    Outcome(r.byte() % 6),
				Issuer:     r.str(),
				Subject:    r.str(),
				SessionID:  r.str(),
				TokenID:    r.str(),
				UserAgent:  r.str(),
				DeviceID:   r.str(),
				Country:    r.str(),
				ResourceID: r.str(),
			}
			var a [16]byte
			copy(a[:], r.take(16))
			ev.IP = netip.AddrFrom16(a)
			if r.byte()%2 == 0 {
				ev.IP = ev.IP.Unmap()
			}
			if r.byte()%2 == 0 {
				ev.Located = true
				ev.Latitude = float64(int8(r.byte())) * 0.7
				ev.Longitude = float64(int8(r.byte())) * 1.4
				ev.AccuracyKM = float64(r.byte()) * 10
			}
			e.feed(ev)
		}
		e.tickAt(at.Add(time.Hour))
		for _, sig := range pub.take() {
			if s := *sig.Risk.Score; s < 0 || s > 100 {
				t.Fatalf("score %d", s)
			}
			for _, reason := range sig.Risk.Reasons {
				if !utf8.ValidString(reason) || !ours(reason) {
					t.Fatalf("reason %q", reason)
				}
			}
		}
		if e.subjects.len() > 8 || e.sessions.len() > 8 || e.tokens.len() > 8 || e.addrs.len() > 8 {
			t.Fatal("a table outgrew its limit")
		}
	}
}

// reader consumes fuzz input.
type reader struct{ b []byte }

func (r *reader) done() bool { return len(r.b) == 0 }

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) take(n int) []byte {
	n = min(n, len(r.b))
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

// str reads a length-prefixed string (length byte, up to 2000 bytes with
// the high bit set, to reach the identifier limits).
func (r *reader) str() string {
	n := int(r.byte())
	if n&0x80 != 0 {
		var b [2]byte
		copy(b[:], r.take(2))
		n = int(binary.BigEndian.Uint16(b[:]) % 2000)
	}
	return string(r.take(n))
}
