package seal_test

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/lethe-privacy/lethe/internal/seal"
)

func testKeyring(t *testing.T, b byte) *seal.Keyring {
	t.Helper()
	k, err := seal.New(bytes.Repeat([]byte{b}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealRoundTripAndBinding(t *testing.T) {
	t.Parallel()
	k := testKeyring(t, 1)
	ct := k.Seal([]byte("ada@example.com"), []byte("req-1"))
	if bytes.Contains(ct, []byte("ada@example.com")) {
		t.Fatal("ciphertext contains the plaintext")
	}
	pt, err := k.Open(ct, []byte("req-1"))
	if err != nil || string(pt) != "ada@example.com" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := k.Open(ct, []byte("req-2")); err != seal.ErrOpen {
		t.Errorf("Open with other aad: err = %v, want ErrOpen", err)
	}
	if _, err := testKeyring(t, 2).Open(ct, []byte("req-1")); err != seal.ErrOpen {
		t.Errorf("Open with other key: err = %v, want ErrOpen", err)
	}
	ct[len(ct)-1] ^= 1
	if _, err := k.Open(ct, []byte("req-1")); err != seal.ErrOpen {
		t.Errorf("Open tampered: err = %v, want ErrOpen", err)
	}
	if _, err := k.Open([]byte("short"), nil); err != seal.ErrOpen {
		t.Errorf("Open short: err = %v, want ErrOpen", err)
	}
	if bytes.Equal(k.Seal([]byte("x"), nil), k.Seal([]byte("x"), nil)) {
		t.Error("two seals of one value are equal: nonce reused")
	}
}

func TestHashIsKeyedAndDomainSeparated(t *testing.T) {
	t.Parallel()
	a, b := testKeyring(t, 1), testKeyring(t, 2)
	if a.Hash("identity", "v") != a.Hash("identity", "v") {
		t.Error("hash is not deterministic")
	}
	if a.Hash("identity", "v") == b.Hash("identity", "v") {
		t.Error("hash does not depend on the key")
	}
	if a.Hash("identity", "v") == a.Hash("api_key", "v") {
		t.Error("hash is not domain-separated")
	}
	if a.Hash("ab", "c") == a.Hash("a", "bc") {
		t.Error("domain and value run together")
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	hex := "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	if k, err := seal.ParseKey(hex); err != nil || k[31] != 0x1f {
		t.Errorf("hex: %v", err)
	}
	if _, err := seal.ParseKey("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="); err != nil {
		t.Errorf("base64: %v", err)
	}
	for _, bad := range []string{"", "short", hex[:62]} {
		if _, err := seal.ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func TestLoadOrCreateKeyFileConcurrent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "lethe.key")
	const n = 8
	keys := make([][]byte, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, c, err := seal.LoadOrCreateKeyFile(path)
			if err != nil {
				t.Error(err)
			}
			keys[i], created[i] = k, c
		}()
	}
	wg.Wait()
	var made int
	for i := range n {
		if created[i] {
			made++
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("process %d got another key", i)
		}
	}
	if made != 1 {
		t.Errorf("%d callers created the key, want 1", made)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
}
