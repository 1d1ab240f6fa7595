package risk

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/prometheus/client_golang/prometheus"
)

// setReceiver is an RFC 8935 push receiver that answers from a script.
type setReceiver struct {
	mu       sync.Mutex
	script   []int // status codes to answer, in order; then 202
	got      []string
	headers  []http.Header
	received chan struct{}
}

func newSetReceiver(t *testing.T, script ...int) (*setReceiver, *httptest.Server) {
	r := &setReceiver{script: script, received: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, string(body))
		r.headers = append(r.headers, req.Header.Clone())
		status := http.StatusAccepted
		if len(r.script) > 0 {
			status, r.script = r.script[0], r.script[1:]
		}
		r.mu.Unlock()
		if status == http.StatusBadRequest {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"err":"invalid_audience","description":"not for us"}`))
		} else {
			w.WriteHeader(status)
		}
		r.received <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *setReceiver) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-r.received:
		case <-time.After(10 * time.Second):
			t.Fatalf("receiver got %d posts, want %d", len(r.got), n)
		}
	}
}

func testTransmitter(t *testing.T, alg string, endpoint string, mutate func(*Outbound)) (*Transmitter, *prometheus.CounterVec) {
	t.Helper()
	o := Outbound{
		Issuer: "https://vigil.example", Algorithm: alg,
		Receivers:      []Receiver{{Name: "idp", Endpoint: endpoint, AuthorizationHeader: "Bearer push-secret"}},
		InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&o)
	}
	c := Config{Outbound: o}
	c.SetDefaults()
	key, err := GenerateSigningKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTransmitter(TransmitterOptions{Config: c.Outbound, Key: key, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	return tr, tr.rcv[0].outcomes
}

func runTransmitter(t *testing.T, tr *Transmitter) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

var testChange = Change{
	ID: "risk:abc", Principal: PrincipalSession, Issuer: "https://idp.example", Subject: "alice", SessionID: "s-1",
	Level: "HIGH", PreviousLevel: "LOW", Score: 85, Time: t0,
	Reasons: []string{"impossible_travel: this session moved 6385 km (DE → US) in 5m0s", "session_hijack: used from DE and US"},
}

func TestTransmitterSendsSignedCAEPRiskLevelChange(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run("a "+alg+" SET verifies with the published JWKS and carries the CAEP event", func(t *testing.T) {
			rcv, srv := newSetReceiver(t)
			tr, _ := testTransmitter(t, alg, srv.URL+"/ssf/push", nil)
			runTransmitter(t, tr)
			tr.Notify(testChange)
			rcv.wait(t, 1)

			h := rcv.headers[0]
			if h.Get("Content-Type") != "application/secevent+jwt" || h.Get("Accept") != "application/json" || h.Get("Authorization") != "Bearer push-secret" {
				t.Errorf("headers = %v", h)
			}
			rec := httptest.NewRecorder()
			tr.JWKSHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/.well-known/vigil-risk-jwks.json", nil))
			set, err := jwk.Parse(rec.Body.Bytes())
			if err != nil {
				t.Fatalf("JWKS: %v: %s", err, rec.Body)
			}
			if strings.Contains(rec.Body.String(), `"d":`) {
				t.Fatal("the JWKS leaks the private key")
			}
			msg, err := jws.Parse([]byte(rcv.got[0]))
			if err != nil {
				t.Fatal(err)
			}
			hdr := msg.Signatures()[0].ProtectedHeaders()
			if typ, _ := hdr.Type(); typ != "secevent+jwt" {
				t.Errorf("typ = %q", typ)
			}
			if kid, _ := hdr.KeyID(); kid != tr.KeyID() {
				t.Errorf("kid = %q, want %q", kid, tr.KeyID())
			}
			payload, err := jws.Verify([]byte(rcv.got[0]), jws.WithKeySet(set))
			if err != nil {
				t.Fatalf("verify with the JWKS: %v", err)
			}
			var claims map[string]any
			if err := json.Unmarshal(payload, &claims); err != nil {
				t.Fatal(err)
			}
			ev := claims["events"].(map[string]any)[EventType].(map[string]any)
			subID := claims["sub_id"].(map[string]any)
			switch {
			case claims["iss"] != "https://vigil.example" || claims["aud"] != srv.URL || claims["iat"] != float64(t0.Unix()) ||
				claims["jti"] == "" || claims["txn"] != "risk:abc":
				t.Errorf("claims = %v", claims)
			case claims["sub"] != nil || claims["exp"] != nil:
				t.Errorf("SSF forbids sub and exp: %v", claims)
			case subID["format"] != "complex" || subID["session"].(map[string]any)["id"] != "s-1" ||
				subID["user"].(map[string]any)["format"] != "iss_sub" || subID["user"].(map[string]any)["sub"] != "alice":
				t.Errorf("sub_id = %v", subID)
			case ev["principal"] != "SESSION" || ev["current_level"] != "HIGH" || ev["previous_level"] != "LOW" ||
				!strings.HasPrefix(ev["risk_reason"].(string), "impossible_travel: ") || ev["event_timestamp"] != float64(t0.Unix()):
				t.Errorf("event = %v", ev)
			}
		})
	}
}

func TestTransmitterDelivery(t *testing.T) {
	t.Run("transient failures are retried with backoff until delivered", func(t *testing.T) {
		rcv, srv := newSetReceiver(t, 503, 429, 500)
		tr, out := testTransmitter(t, "ES256", srv.URL, nil)
		runTransmitter(t, tr)
		tr.Notify(testChange)
		rcv.wait(t, 4)
		waitCounter(t, out.WithLabelValues("idp", "delivered"), 1)
		if got := counterValue(out.WithLabelValues("idp", "retried")); got != 3 {
			t.Errorf("retried = %v", got)
		}
	})
	t.Run("a 400 from the receiver is final", func(t *testing.T) {
		rcv, srv := newSetReceiver(t, 400)
		tr, out := testTransmitter(t, "ES256", srv.URL, nil)
		runTransmitter(t, tr)
		tr.Notify(testChange)
		rcv.wait(t, 1)
		waitCounter(t, out.WithLabelValues("idp", "rejected"), 1)
	})
	t.Run("delivery gives up after max_attempts", func(t *testing.T) {
		rcv, srv := newSetReceiver(t, 503, 503, 503, 503)
		tr, out := testTransmitter(t, "ES256", srv.URL, func(o *Outbound) { o.MaxAttempts = 2 })
		runTransmitter(t, tr)
		tr.Notify(testChange)
		rcv.wait(t, 2)
		waitCounter(t, out.WithLabelValues("idp", "failed"), 1)
	})
	t.Run("a full queue drops instead of blocking", func(t *testing.T) {
		_, srv := newSetReceiver(t)
		tr, out := testTransmitter(t, "ES256", srv.URL, func(o *Outbound) { o.QueueSize = 1 })
		for range 3 {
			tr.Notify(testChange) // not running: the queue holds one
		}
		if got := counterValue(out.WithLabelValues("idp", "dropped")); got != 2 {
			t.Fatalf("dropped = %v, want 2", got)
		}
	})
	t.Run("a user change names the user with iss_sub", func(t *testing.T) {
		rcv, srv := newSetReceiver(t)
		tr, _ := testTransmitter(t, "ES256", srv.URL, nil)
		runTransmitter(t, tr)
		c := testChange
		c.Principal, c.SessionID = PrincipalUser, ""
		tr.Notify(c)
		rcv.wait(t, 1)
		payload, _ := jws.Verify([]byte(rcv.got[0]), jws.WithKey(tr.alg, tr.key.Public()))
		if !strings.Contains(string(payload), `"sub_id":{"format":"iss_sub","iss":"https://idp.example","sub":"alice"}`) {
			t.Fatalf("payload = %s", payload)
		}
	})
}

func waitCounter(t *testing.T, c prometheus.Counter, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for counterValue(c) != want {
		if time.Now().After(deadline) {
			t.Fatalf("counter = %v, want %v", counterValue(c), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSigningKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, block *pem.Block) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	smallRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	pkcs8 := func(k any) []byte { b, _ := x509.MarshalPKCS8PrivateKey(k); return b }
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	tests := []struct {
		name    string
		path    string
		alg     string
		wantErr string
	}{
		{name: "a PKCS#8 RSA key signs RS256", path: write("rsa8.pem", &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8(rsaKey)}), alg: "RS256"},
		{name: "a PKCS#1 RSA key signs RS256", path: write("rsa1.pem", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), alg: "RS256"},
		{name: "a SEC 1 P-256 key signs ES256", path: write("ec.pem", &pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}), alg: "ES256"},
		{name: "an RSA key cannot sign ES256", path: write("rsa8b.pem", &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8(rsaKey)}), alg: "ES256", wantErr: "cannot sign ES256"},
		{name: "a 1024-bit RSA key is refused", path: write("small.pem", &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8(smallRSA)}), alg: "RS256", wantErr: "at least 2048"},
		{name: "a P-384 key is refused for ES256", path: write("p384.pem", &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8(p384)}), alg: "ES256", wantErr: "needs P-256"},
		{name: "a certificate is not a key", path: write("cert.pem", &pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), alg: "RS256", wantErr: "not a private key"},
		{name: "a missing file is reported", path: filepath.Join(dir, "nope.pem"), alg: "RS256", wantErr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadSigningKey(tt.path, tt.alg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatal(err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	t.Run("a generated key is written once and reused", func(t *testing.T) {
		p := filepath.Join(dir, "gen", "signing-key.pem")
		k1, err := LoadOrCreateSigningKey(p, "ES256")
		if err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(p)
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v %v", info, err)
		}
		k2, err := LoadOrCreateSigningKey(p, "ES256")
		if err != nil {
			t.Fatal(err)
		}
		if !k1.(*ecdsa.PrivateKey).Equal(k2) {
			t.Fatal("the key changed between loads")
		}
		if _, err := LoadOrCreateSigningKey(p, "RS256"); err == nil {
			t.Fatal("an existing key of the wrong type must not be replaced silently")
		}
	})
}
