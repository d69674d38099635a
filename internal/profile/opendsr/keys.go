package opendsr

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/lethe-privacy/lethe/internal/store"
)

// Signer signs OpenDSR answers and callbacks (sections 4.2 and 8.6): an
// RSA (PKCS #1 v1.5) or ECDSA signature over the SHA-256 digest of the
// exact bytes sent, base64 in X-OpenDSR-Signature. The certificate of its
// public key is published at the discovery document's
// processor_certificate.
type Signer struct {
	key  crypto.Signer
	cert []byte // PEM, the leaf first
}

// Sign returns the base64 signature of body.
func (s *Signer) Sign(body []byte) (string, error) {
	sum := sha256.Sum256(body)
	sig, err := s.key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("opendsr: sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// CertificatePEM is the certificate (chain) published for the key.
func (s *Signer) CertificatePEM() []byte { return s.cert }

// keyName is the profile key's name in the store.
const keyName = "opendsr"

// generatedValidity is how long a generated certificate is valid.
const generatedValidity = 10 * 365 * 24 * time.Hour

// LoadSigner returns the profile's signer. With certFile and keyFile set
// (PEM; the certificate issued by a CA to the processor's domain, as
// section 4.1 requires), that pair signs. Without them, the key lethe
// generated is used, created on first start with a self-signed
// certificate for domain: its private key is stored sealed with the
// deployment's secret key, so every process sharing the database signs
// with it, like the receipt key (internal/audit). A self-signed
// certificate is for trying the profile out; section 4.1 forbids it in
// production. created reports a key generated now.
func LoadSigner(ctx context.Context, st store.ProfileKeys, domain, certFile, keyFile string, now time.Time) (s *Signer, created bool, err error) {
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return nil, false, errors.New("opendsr: certificate_file and key_file go together")
		}
		s, err := loadFiles(certFile, keyFile)
		return s, false, err
	}
	for attempt := 0; ; attempt++ {
		k, err := st.GetProfileKey(ctx, keyName)
		if err == nil {
			s, err := fromDER(k.Private, k.Certificate)
			return s, false, err
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, false, fmt.Errorf("opendsr: load signing key: %w", err)
		}
		priv, certDER, err := generate(domain, now)
		if err != nil {
			return nil, false, err
		}
		err = st.CreateProfileKey(ctx, store.ProfileKey{Name: keyName, Private: priv, Certificate: certDER, CreatedAt: now})
		if errors.Is(err, store.ErrConflict) && attempt == 0 {
			continue // another process generated it at the same moment
		}
		if err != nil {
			return nil, false, fmt.Errorf("opendsr: store signing key: %w", err)
		}
		s, err := fromDER(priv, certDER)
		return s, err == nil, err
	}
}

func generate(domain string, now time.Time) (privDER, certDER []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("opendsr: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: domain, Organization: []string{"lethe OpenDSR processor"}},
		DNSNames:     []string{domain},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(generatedValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	certDER, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("opendsr: certificate: %w", err)
	}
	privDER, err = x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return privDER, certDER, nil
}

func fromDER(privDER, certDER []byte) (*Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(privDER)
	if err != nil {
		return nil, fmt.Errorf("opendsr: signing key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("opendsr: signing key cannot sign")
	}
	return newSigner(signer, [][]byte{certDER})
}

func loadFiles(certFile, keyFile string) (*Signer, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("opendsr: certificate_file: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("opendsr: key_file: %w", err)
	}
	var chain [][]byte
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			chain = append(chain, b.Bytes)
		}
	}
	if len(chain) == 0 {
		return nil, errors.New("opendsr: certificate_file holds no PEM certificate")
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, errors.New("opendsr: key_file holds no PEM key")
	}
	var k any
	switch b.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		// The parser's error never holds key material.
		return nil, fmt.Errorf("opendsr: key_file: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("opendsr: key_file: not a signing key")
	}
	return newSigner(signer, chain)
}

// newSigner checks that the leaf certificate is the key's and that the key
// is one FIPS 186-4 signs with (RSA or ECDSA).
func newSigner(key crypto.Signer, chain [][]byte) (*Signer, error) {
	switch key.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey:
	default:
		return nil, errors.New("opendsr: the signing key must be RSA or ECDSA (FIPS 186-4)")
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, fmt.Errorf("opendsr: certificate: %w", err)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := key.Public().(equaler); !ok || !pub.Equal(leaf.PublicKey) {
		return nil, errors.New("opendsr: the certificate is not the signing key's")
	}
	var out []byte
	for _, der := range chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return &Signer{key: key, cert: out}, nil
}
