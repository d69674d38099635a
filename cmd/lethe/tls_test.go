package main

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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir, and returns their paths and a pool trusting the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "lethe test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeTLS starts serve with --tls-cert and --tls-key: it answers
// HTTPS over HTTP/2 (and HTTP/1.1 to a client that asks for it), and a
// plain-HTTP request is not served.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	h2 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
	}}
	defer h2.CloseIdleConnections()
	d := newCLIDB(t, "sqlite")
	url := startServe(t, d, "https", h2, "--tls-cert", certFile, "--tls-key", keyFile)
	addr := strings.TrimPrefix(url, "https://")
	resp, err := h2.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("HTTPS answered over %s, want HTTP/2", resp.Proto)
	}

	h1 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}},
	}}
	defer h1.CloseIdleConnections()
	if resp, err := h1.Get("https://" + addr + "/healthz"); err != nil {
		t.Errorf("HTTPS over HTTP/1.1: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 {
			t.Errorf("HTTPS over HTTP/1.1: %s %s", resp.Proto, resp.Status)
		}
	}

	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("a plain-HTTP request was served by the HTTPS listener")
		}
	}
}

// TestServeTLSRefused: a certificate without its key, or files that do
// not hold a certificate, stop serve before it creates anything.
func TestServeTLSRefused(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir)
	for name, args := range map[string][]string{
		"cert without key":  {"--tls-cert", certFile},
		"key without cert":  {"--tls-key", keyFile},
		"key as both":       {"--tls-cert", keyFile, "--tls-key", keyFile},
		"missing cert file": {"--tls-cert", filepath.Join(dir, "nope.pem"), "--tls-key", keyFile},
	} {
		t.Run(name, func(t *testing.T) {
			work := t.TempDir()
			db := filepath.Join(work, "lethe.db")
			_, err := runLethe(t, cliDB{db: db}, append([]string{"serve", "--db", db, "--listen", "127.0.0.1:0"}, args...)...)
			if err == nil || !strings.Contains(err.Error(), "tls") {
				t.Fatalf("serve %v: %v, want a tls error", args, err)
			}
			if entries, _ := os.ReadDir(work); len(entries) != 0 {
				t.Errorf("serve %v created %d files", args, len(entries))
			}
		})
	}
}
