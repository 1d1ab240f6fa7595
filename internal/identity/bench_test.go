package identity

import (
	"context"
	"testing"
)

func benchVerifier(b *testing.B, keyName, alg string) (*Verifier, string) {
	b.Helper()
	k := newTestKey(b, keyName, alg, "k1")
	ti := newTestIssuer(b, k)
	v := newTestVerifier(b, newClock(), ti.config())
	v.Start(context.Background())
	return v, signToken(b, k, ti.claimsAt(t0, nil), nil)
}

// BenchmarkVerifyCached measures Verify for a token seen before: the
// common case of a client reusing its access token.
func BenchmarkVerifyCached(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			v, raw := benchVerifier(b, alg, alg)
			ctx := context.Background()
			if _, err := v.Verify(ctx, raw); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := v.Verify(ctx, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyUncached measures a full verification: parse, signature,
// claims and cache insertion.
func BenchmarkVerifyUncached(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			v, raw := benchVerifier(b, alg, alg)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				v.cache.remove(raw)
				if _, err := v.Verify(ctx, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyCachedParallel measures cached verification under
// concurrency (cache shard contention).
func BenchmarkVerifyCachedParallel(b *testing.B) {
	v, raw := benchVerifier(b, "ES256", "ES256")
	ctx := context.Background()
	if _, err := v.Verify(ctx, raw); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, raw); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
