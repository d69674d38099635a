// Package seal keeps secrets and identities unreadable at rest: AES-256-GCM
// for values that must come back (open requests' identities, HMAC shared
// secrets), and keyed HMAC-SHA256 for values that only need comparing
// (closed requests' identities, API keys, tokens).
//
// One 32-byte master key (LETHE_SECRET_KEY) feeds both; separate subkeys are
// derived for each use so a hash can never be confused with a ciphertext key.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the master key length in bytes.
const KeySize = 32

// Keyring seals and hashes with subkeys of one master key.
type Keyring struct {
	aead   cipher.AEAD
	pepper []byte
}

// New derives a Keyring from a 32-byte master key.
func New(master []byte) (*Keyring, error) {
	if len(master) != KeySize {
		return nil, fmt.Errorf("seal: master key must be %d bytes, got %d", KeySize, len(master))
	}
	block, err := aes.NewCipher(derive(master, "lethe/seal/aes-256-gcm"))
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return &Keyring{aead: aead, pepper: derive(master, "lethe/seal/hmac-pepper")}, nil
}

func derive(master []byte, label string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Seal encrypts plaintext. aad binds the ciphertext to its place (e.g. the
// request id) so a sealed value copied to another row does not open.
func (k *Keyring) Seal(plaintext, aad []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("seal: crypto/rand failed: " + err.Error())
	}
	return k.aead.Seal(nonce, nonce, plaintext, aad)
}

// ErrOpen is returned for any ciphertext that does not authenticate.
var ErrOpen = errors.New("seal: ciphertext does not authenticate (wrong key or tampered)")

// Open decrypts what Seal produced with the same aad.
func (k *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return nil, ErrOpen
	}
	pt, err := k.aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// Hash returns the hex HMAC-SHA256 of value under the deployment pepper,
// domain-separated so equal values in different roles hash differently.
func (k *Keyring) Hash(domain, value string) string {
	m := hmac.New(sha256.New, k.pepper)
	m.Write([]byte(domain))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil))
}

// Equal compares two secrets in constant time.
func Equal(a, b string) bool {
	return hmac.Equal([]byte(a), []byte(b))
}

// ParseKey accepts a master key as 64 hex characters or standard/URL base64
// of 32 bytes.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == KeySize {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KeySize {
			return b, nil
		}
	}
	return nil, errors.New("seal: key must be 32 bytes as 64 hex characters or base64")
}

// LoadOrCreateKeyFile reads a hex master key from path, creating it (mode
// 0600, 32 random bytes) when it does not exist. created reports whether it
// was made now, so the caller can say so in the log.
func LoadOrCreateKeyFile(path string) (key []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := ParseKey(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("key file %s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("read key file: %w", err)
	}
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("create key dir: %w", err)
	}
	// Write a temporary file, then hard-link it into place: the link fails if
	// another process got there first, and nobody ever reads a half-written key.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".lethe-key-*")
	if err != nil {
		return nil, false, fmt.Errorf("create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("create key file: %w", err)
	}
	if _, err := tmp.WriteString(hex.EncodeToString(k) + "\n"); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("sync key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, false, fmt.Errorf("write key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return LoadOrCreateKeyFile(path)
		}
		return nil, false, fmt.Errorf("create key file: %w", err)
	}
	return k, true, nil
}

// RandomToken returns n random bytes as lowercase hex, for generated API
// keys, secrets and tokens.
func RandomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("seal: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}
