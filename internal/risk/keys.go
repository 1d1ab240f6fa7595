package risk

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// maxKeyFile bounds a signing key file.
const maxKeyFile = 64 << 10

// LoadSigningKey reads a PEM private key for SETs signed with alg (RS256:
// RSA of at least 2048 bits; ES256: P-256). PKCS#8 ("PRIVATE KEY"), PKCS#1
// ("RSA PRIVATE KEY") and SEC 1 ("EC PRIVATE KEY") are accepted.
func LoadSigningKey(path, alg string) (crypto.Signer, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, fmt.Errorf("risk signing key: %w", err)
	}
	k, err := ParseSigningKey(data, alg)
	if err != nil {
		return nil, fmt.Errorf("risk signing key %s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreateSigningKey reads the key at path or, when the file does not
// exist, generates one for alg and writes it there (PKCS#8 PEM, mode 0600)
// so that the key, and the JWKS receivers cached, survive restarts.
func LoadOrCreateSigningKey(path, alg string) (crypto.Signer, error) {
	k, err := LoadSigningKey(path, alg)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if k, err = GenerateSigningKey(alg); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("risk signing key: encode: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("risk signing key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".signing-key-*")
	if err != nil {
		return nil, fmt.Errorf("risk signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("risk signing key: %w", err)
	}
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("risk signing key: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("risk signing key: write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("risk signing key: %w", err)
	}
	return k, nil
}

// GenerateSigningKey creates a key for alg: RSA 2048 for RS256, P-256 for
// ES256.
func GenerateSigningKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "RS256":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("risk signing key: generate: %w", err)
		}
		return k, nil
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("risk signing key: generate: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("risk signing key: algorithm %q is not RS256 or ES256", alg)
}

// ParseSigningKey decodes a PEM private key and checks it fits alg.
func ParseSigningKey(data []byte, alg string) (crypto.Signer, error) {
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("larger than %d bytes", maxKeyFile)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key (want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	return checkKey(key, alg)
}

// checkKey reports whether key can sign alg: RS256 needs RSA of at least
// 2048 bits, ES256 a P-256 key.
func checkKey(key any, alg string) (crypto.Signer, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if alg != "RS256" {
			return nil, fmt.Errorf("an RSA key cannot sign %s (set outbound.algorithm: RS256)", alg)
		}
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key has %d bits; at least 2048 are required", k.N.BitLen())
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if alg != "ES256" {
			return nil, fmt.Errorf("an EC key cannot sign %s (set outbound.algorithm: ES256)", alg)
		}
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("EC key on %s; ES256 needs P-256", k.Curve.Params().Name)
		}
		return k, nil
	}
	return nil, fmt.Errorf("unsupported key type %T (use RSA or P-256)", key)
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxKeyFile)
	}
	return data, nil
}
