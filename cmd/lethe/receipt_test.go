package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/audit"
)

// TestReceiptVerifyReadsBothKinds: `lethe receipt verify` checks a partner
// receipt as it does a full one, says which it is, and refuses an altered
// one.
func TestReceiptVerifyReadsBothKinds(t *testing.T) {
	t.Parallel()
	s := audit.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)))
	full := &audit.Receipt{Version: audit.ReceiptVersion, RequestID: "0195f0a4-0000-7000-8000-000000000001", Status: "completed",
		Regulation: "gdpr", Identities: []audit.IdentityHash{}, Targets: []audit.TargetResult{}, Retained: []audit.RetainedItem{}}
	fullDoc, digest, err := s.Sign(full)
	if err != nil {
		t.Fatal(err)
	}
	partDoc, _, err := s.SignPartner(audit.NewPartnerReceipt(full, "partner-a", digest))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key := base64.StdEncoding.EncodeToString(s.Public())
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out, _, err := runCLI("receipt", "verify", write("full.json", fullDoc), "--public-key", key)
	if err != nil || !strings.HasPrefix(out, "ok: receipt of request") {
		t.Errorf("full receipt: %q, %v", out, err)
	}
	out, _, err = runCLI("receipt", "verify", write("partner.json", partDoc), "--public-key", key)
	if err != nil || !strings.HasPrefix(out, "ok: partner receipt of request") || !strings.Contains(out, digest) {
		t.Errorf("partner receipt: %q, %v", out, err)
	}
	bad := strings.Replace(string(partDoc), `"status":"completed"`, `"status":"failed"`, 1)
	if _, _, err := runCLI("receipt", "verify", write("bad.json", []byte(bad)), "--public-key", key); err == nil {
		t.Error("an altered partner receipt verified")
	}
}
