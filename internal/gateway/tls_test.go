package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI is a throw-away CA with a server and a client certificate.
type testPKI struct {
	dir                   string
	caFile                string
	serverCert, serverKey string
	clientCert, clientKey string
	pool                  *x509.CertPool
	client                tls.Certificate
	server                tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), pool: x509.NewCertPool()}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.pool.AddCert(ca)
	p.caFile = p.write(t, "ca.pem", "CERTIFICATE", caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string, tls.Certificate) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		cf := p.write(t, name+".pem", "CERTIFICATE", der)
		kf := p.write(t, name+"-key.pem", "EC PRIVATE KEY", kder)
		pair, err := tls.LoadX509KeyPair(cf, kf)
		if err != nil {
			t.Fatal(err)
		}
		return cf, kf, pair
	}
	p.serverCert, p.serverKey, p.server = issue("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey, p.client = issue("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func (p *testPKI) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTLSListenerAndUpstream(t *testing.T) {
	pki := newTestPKI(t)

	// An https upstream that requires the gateway's client certificate.
	up := httptest.NewUnstartedServer(upstreamHandler(t))
	up.TLS = &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientCAs: pki.pool, ClientAuth: tls.RequireAndVerifyClientCert}
	up.StartTLS()
	defer up.Close()

	h := newHarness(t, func(c *Config, _ *Options) {
		c.Upstreams[0].URL = up.URL
		c.Upstreams[0].TLS = UpstreamTLS{CA: pki.caFile, Cert: pki.clientCert, Key: pki.clientKey}
	})
	// A second gateway with the same dependencies, serving TLS with
	// required client certificates.
	cfg := h.gw.Config()
	cfg.TLS = &ListenerTLS{Cert: pki.serverCert, Key: pki.serverKey, ClientCA: pki.caFile, ClientAuth: "require"}
	gw, err := New(Options{Config: cfg, Views: h.gw.views, Auth: h.gw.auth, Router: h.gw.router})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gw.Serve(ln) }()
	defer gw.Shutdown(t.Context())
	url := "https://" + ln.Addr().String()
	tok := h.token("alice", []string{"member"}, nil)

	do := func(cert *tls.Certificate) (*http.Response, error) {
		tc := &tls.Config{RootCAs: pki.pool}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("GET", url+"/todos/1", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
		if err == nil {
			defer resp.Body.Close()
			body := make([]byte, 4096)
			n, _ := resp.Body.Read(body)
			resp.Header.Set("X-Test-Body", strings.TrimSpace(string(body[:n])))
		}
		return resp, err
	}

	t.Run("a client with a certificate is served over HTTP/2 and reaches the mTLS upstream", func(t *testing.T) {
		resp, err := do(&pki.client)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			t.Fatalf("status %d over %s: %s", resp.StatusCode, resp.Proto, resp.Header.Get("X-Test-Body"))
		}
		if !strings.Contains(resp.Header.Get("X-Test-Body"), `"x-forwarded-proto":["https"]`) &&
			!strings.Contains(resp.Header.Get("X-Test-Body"), `"X-Forwarded-Proto":["https"]`) {
			t.Errorf("upstream did not see X-Forwarded-Proto https: %s", resp.Header.Get("X-Test-Body"))
		}
	})
	t.Run("a client without a certificate is refused", func(t *testing.T) {
		if _, err := do(nil); err == nil {
			t.Fatal("request without a client certificate succeeded")
		}
	})
	t.Run("the upstream refuses the gateway without its client certificate", func(t *testing.T) {
		h2 := newHarness(t, func(c *Config, _ *Options) {
			c.Upstreams[0].URL = up.URL
			c.Upstreams[0].TLS = UpstreamTLS{CA: pki.caFile}
		})
		resp, body := h2.request(false, "GET", "/todos/1", bearerHeader(h2.token("alice", []string{"member"}, nil)))
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("status %d: %s; want 502", resp.StatusCode, body)
		}
	})
}

func TestH2C(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Options) { c.H2C = true })
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", h.url+"/todos/1", nil)
	req.Header.Set("Authorization", "Bearer "+h.token("alice", []string{"member"}, nil))
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("status %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
}
