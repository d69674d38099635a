package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
)

// EnvSigningKey names the environment variable that may hold the receipt
// signing key: an Ed25519 seed of 32 bytes, as 64 hex characters or base64.
const EnvSigningKey = "LETHE_SIGNING_KEY"

// Signer signs receipts with one Ed25519 key.
type Signer struct {
	keyID string
	priv  ed25519.PrivateKey
}

// NewSigner returns a Signer for priv.
func NewSigner(priv ed25519.PrivateKey) *Signer {
	return &Signer{keyID: KeyID(priv.Public().(ed25519.PublicKey)), priv: priv}
}

// KeyID is the signing key's id.
func (s *Signer) KeyID() string { return s.keyID }

// Public is the signing key's public key.
func (s *Signer) Public() ed25519.PublicKey { return s.priv.Public().(ed25519.PublicKey) }

// KeyID names a public key: the lower-case hex of the first 16 bytes of
// SHA-256 over its 32 raw bytes. Anyone holding the public key can compute
// it, so a published key and a receipt's key_id can be matched offline.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}

// ParseSigningKey reads an Ed25519 seed (64 hex characters or base64 of 32
// bytes). The error never quotes the value.
func ParseSigningKey(s string) (ed25519.PrivateKey, error) {
	seed, err := seal.ParseKey(s)
	if err != nil {
		return nil, fmt.Errorf("%s: must be an Ed25519 seed of 32 bytes as 64 hex characters or base64", EnvSigningKey)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func sealAAD(keyID string) []byte { return []byte("lethe/signing_keys\x00" + keyID) }

// LoadSigner returns the key this process signs receipts with.
//
// With envKey (LETHE_SIGNING_KEY) set, that key signs; its public key is
// recorded in the database and made current, and the private key is never
// stored. Without it, the current key lethe generated is used, created on
// first start: its seed is stored sealed with the deployment's secret key,
// so every process sharing the database (SQLite or PostgreSQL) signs with
// the same key, and a rotation is one database change. Either way, every
// public key that ever signed stays in the database, so old receipts keep
// verifying. created reports a key generated now.
func LoadSigner(ctx context.Context, st store.Store, kr *seal.Keyring, envKey string, now time.Time) (s *Signer, created bool, err error) {
	if envKey != "" {
		priv, err := ParseSigningKey(envKey)
		if err != nil {
			return nil, false, err
		}
		s := NewSigner(priv)
		k := store.SigningKey{KeyID: s.keyID, PublicKey: s.Public(), CreatedAt: now}
		if err := st.MakeCurrentSigningKey(ctx, k); err != nil {
			return nil, false, fmt.Errorf("register signing key: %w", err)
		}
		return s, false, nil
	}
	for attempt := 0; ; attempt++ {
		err = st.InTx(ctx, func(tx store.Tx) error {
			keys, err := tx.SigningKeys(ctx)
			if err != nil {
				return err
			}
			if len(keys) > 0 && keys[0].Current {
				s, err = openKey(kr, keys[0])
				return err
			}
			priv, k, err := generate(kr, now)
			if err != nil {
				return err
			}
			if err := tx.MakeCurrentSigningKey(ctx, k); err != nil {
				return err
			}
			s, created = NewSigner(priv), true
			return nil
		})
		// Another process generated the first key at the same moment: use it.
		if errors.Is(err, store.ErrConflict) && attempt == 0 {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("load signing key: %w", err)
		}
		return s, created, nil
	}
}

func openKey(kr *seal.Keyring, k store.SigningKey) (*Signer, error) {
	if k.PrivateSealed == nil {
		return nil, fmt.Errorf("the current signing key %s was given in %s, which is not set now: set it again, or run `lethe keys rotate-signing` to generate a new key", k.KeyID, EnvSigningKey)
	}
	seed, err := kr.Open(k.PrivateSealed, sealAAD(k.KeyID))
	if err != nil {
		return nil, fmt.Errorf("open signing key %s (is LETHE_SECRET_KEY the one it was sealed with?): %w", k.KeyID, err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key %s: stored seed has %d bytes", k.KeyID, len(seed))
	}
	s := NewSigner(ed25519.NewKeyFromSeed(seed))
	if s.keyID != k.KeyID {
		return nil, fmt.Errorf("signing key %s: stored seed belongs to key %s", k.KeyID, s.keyID)
	}
	return s, nil
}

func generate(kr *seal.Keyring, now time.Time) (ed25519.PrivateKey, store.SigningKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, store.SigningKey{}, fmt.Errorf("generate signing key: %w", err)
	}
	id := KeyID(pub)
	return priv, store.SigningKey{
		KeyID:         id,
		PublicKey:     pub,
		PrivateSealed: kr.Seal(priv.Seed(), sealAAD(id)),
		CreatedAt:     now,
	}, nil
}

// RotateSigning generates a new signing key, stores it sealed and makes it
// current; the previous key is retired but its public key stays published.
// Running processes sign with the key they loaded until restarted.
func RotateSigning(ctx context.Context, st store.Store, kr *seal.Keyring, now time.Time) (string, error) {
	_, k, err := generate(kr, now)
	if err != nil {
		return "", err
	}
	if err := st.MakeCurrentSigningKey(ctx, k); err != nil {
		return "", fmt.Errorf("rotate signing key: %w", err)
	}
	return k.KeyID, nil
}

// PublicKey is a published signing key.
type PublicKey struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"alg"`
	PublicKey string `json:"public_key"` // standard base64 of the raw 32 bytes
	Current   bool   `json:"current"`
	CreatedAt string `json:"created_at"`
	RetiredAt string `json:"retired_at,omitempty"`
}

// PublicKeys lists every signing key's public half, current first.
func PublicKeys(ctx context.Context, st store.Proofs) ([]PublicKey, error) {
	keys, err := st.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]PublicKey, len(keys))
	for i, k := range keys {
		out[i] = PublicKey{
			KeyID: k.KeyID, Algorithm: Algorithm, PublicKey: encodeKey(k.PublicKey),
			Current: k.Current, CreatedAt: FormatTime(k.CreatedAt), RetiredAt: FormatTime(k.RetiredAt),
		}
	}
	return out, nil
}

// KeyMap returns the public keys by id, for Verify.
func KeyMap(ctx context.Context, st store.Proofs) (map[string]ed25519.PublicKey, error) {
	keys, err := st.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]ed25519.PublicKey, len(keys))
	for _, k := range keys {
		m[k.KeyID] = ed25519.PublicKey(k.PublicKey)
	}
	return m, nil
}
