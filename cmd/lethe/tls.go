package main

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// loadTLS reads the certificate and key for HTTPS; both empty means plain
// HTTP (behind a TLS-terminating proxy, or on loopback). It runs before
// anything else starts, so a wrong path or a key that does not match its
// certificate stops serve at once.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls: --tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load certificate and key: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// ServeTLS adds "h2" for HTTP/2; http/1.1 stays for older clients.
		NextProtos: []string{"h2", "http/1.1"},
	}, nil
}
