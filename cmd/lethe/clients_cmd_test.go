package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestClientsCommands drives `lethe clients` on a real database (--db) and
// checks each change through a running server's S2S endpoint: created
// credentials work, a rotated secret overlaps with the old one for
// --overlap, and a disabled client is refused at once.
func TestClientsCommands(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			testClientsCommands(t, newCLIDB(t, dialect))
		})
	}
}

type createdOut struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	APIKey       string `json:"api_key"`
	Secret       string `json:"shared_secret"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

type clientRow struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Disabled bool   `json:"disabled"`
}

func testClientsCommands(t *testing.T, d cliDB) {
	db := []string{"--db", d.db}
	clients := func(args ...string) []string { return append(append([]string{"clients"}, args...), db...) }

	var acme, given createdOut
	mustRunLethe(t, d, &acme, clients("create", "--name", "acme")...)
	if acme.ID == "" || acme.Name != "acme" || acme.APIKey == "" || acme.Secret == "" || acme.ClientID == "" || acme.ClientSecret == "" {
		t.Fatalf("create printed %+v; want every credential generated", acme)
	}
	mustRunLethe(t, d, &given, clients("create", "--name", "globex", "--api-key", "globex-key-0123456789abcdef", "--secret", "globex-secret-0123456789abcdefghij")...)
	if given.APIKey != "globex-key-0123456789abcdef" || given.Secret != "globex-secret-0123456789abcdefghij" {
		t.Errorf("create with given credentials printed %+v", given)
	}
	if _, err := runLethe(t, d, clients("create", "--name", "acme")...); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second create of acme: err = %v; want already exists", err)
	}
	if _, err := runLethe(t, d, clients("create", "--name", "other", "--api-key", "globex-key-0123456789abcdef")...); err == nil {
		t.Error("create with another client's API key succeeded")
	}
	var rows []clientRow
	mustRunLethe(t, d, &rows, clients("list")...)
	if len(rows) != 2 || rows[0].Name != "acme" || rows[0].ID != acme.ID || rows[0].Disabled || rows[1].Name != "globex" {
		t.Errorf("list = %+v; want acme and globex, enabled", rows)
	}
	if out := mustRunLethe(t, d, nil, clients("list")...); strings.Contains(out, acme.Secret) || strings.Contains(out, acme.APIKey) {
		t.Error("list printed a credential")
	}

	url := startCLIServer(t, d)
	var n atomic.Int64
	s2s := func(apiKey, secret string) int {
		t.Helper()
		body := fmt.Appendf(nil, `{"user_id":"user-%d"}`, n.Add(1))
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		req, err := http.NewRequest(http.MethodPost, url+"/user_deletion_requests", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-KEY", apiKey)
		req.Header.Set("Authorization", hex.EncodeToString(m.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ok := func(code int) bool { return code >= 200 && code < 300 }

	if code := s2s(acme.APIKey, acme.Secret); !ok(code) {
		t.Fatalf("s2s with created credentials: %d", code)
	}
	if code := s2s(given.APIKey, given.Secret); !ok(code) {
		t.Errorf("s2s with given credentials: %d", code)
	}

	// Rotation with an overlap: old and new secrets both work.
	var rot struct {
		Secret        string    `json:"shared_secret"`
		ClientSecret  string    `json:"client_secret"`
		OldValidUntil time.Time `json:"old_valid_until"`
	}
	before := time.Now()
	mustRunLethe(t, d, &rot, clients("rotate-secret", "acme", "--overlap", "1h")...)
	if rot.Secret == "" || rot.Secret == acme.Secret || rot.ClientSecret == "" || rot.ClientSecret == acme.ClientSecret {
		t.Fatalf("rotate-secret printed %+v; want new secrets", rot)
	}
	if d := rot.OldValidUntil.Sub(before); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("old secrets valid for %s, want 1h", d)
	}
	if code := s2s(acme.APIKey, rot.Secret); !ok(code) {
		t.Errorf("s2s with the new secret: %d", code)
	}
	if code := s2s(acme.APIKey, acme.Secret); !ok(code) {
		t.Errorf("s2s with the old secret within the overlap: %d", code)
	}

	// Rotation without overlap ends the previous secrets now.
	var rot2 struct {
		Secret string `json:"shared_secret"`
	}
	mustRunLethe(t, d, &rot2, clients("rotate-secret", "acme", "--overlap", "0")...)
	if code := s2s(acme.APIKey, rot.Secret); code != http.StatusForbidden {
		t.Errorf("s2s with a secret rotated out: %d, want 403", code)
	}
	if code := s2s(acme.APIKey, rot2.Secret); !ok(code) {
		t.Errorf("s2s with the newest secret: %d", code)
	}

	// Disabling takes effect at once on the running server.
	if out := mustRunLethe(t, d, nil, clients("disable", "acme")...); !strings.Contains(out, "disabled") {
		t.Errorf("disable printed %q", out)
	}
	if code := s2s(acme.APIKey, rot2.Secret); code != http.StatusForbidden {
		t.Errorf("s2s of a disabled client: %d, want 403", code)
	}
	if code := s2s(given.APIKey, given.Secret); !ok(code) {
		t.Errorf("s2s of another client after a disable: %d", code)
	}
	rows = nil
	mustRunLethe(t, d, &rows, clients("list")...)
	if len(rows) != 2 || !rows[0].Disabled || rows[1].Disabled {
		t.Errorf("list after disable = %+v; want acme disabled only", rows)
	}

	// Enabling lets the client's current credentials in again.
	if out := mustRunLethe(t, d, nil, clients("enable", "acme")...); !strings.Contains(out, "enabled") {
		t.Errorf("enable printed %q", out)
	}
	if code := s2s(acme.APIKey, rot2.Secret); !ok(code) {
		t.Errorf("s2s of a re-enabled client: %d", code)
	}
	rows = nil
	mustRunLethe(t, d, &rows, clients("list")...)
	if len(rows) != 2 || rows[0].Disabled || rows[1].Disabled {
		t.Errorf("list after enable = %+v; want both enabled", rows)
	}

	// Weak given secrets are refused, and nothing is created.
	for _, weak := range [][]string{
		{"--secret", "a"},
		{"--secret", "globex-secret"},
		{"--secret", strings.Repeat("ab", 20)},
		{"--client-secret", "0123456789abcdef0123456789abcde"}, // 31 characters
	} {
		out, err := runLethe(t, d, clients(append([]string{"create", "--name", "weak"}, weak...)...)...)
		if err == nil || !strings.Contains(err.Error(), "too weak") || (len(weak[1]) > 8 && strings.Contains(err.Error(), weak[1])) {
			t.Errorf("create with %s %q: err = %v, printed %q; want refused as too weak, without the value", weak[0], weak[1], err, out)
		}
	}
	rows = nil
	mustRunLethe(t, d, &rows, clients("list")...)
	if len(rows) != 2 {
		t.Errorf("list after weak creates = %+v; want nothing added", rows)
	}

	for _, c := range []struct {
		name string
		args []string
	}{
		{"rotate unknown", clients("rotate-secret", "nobody")},
		{"disable unknown", clients("disable", "nobody")},
		{"enable unknown", clients("enable", "nobody")},
		{"create without name", clients("create")},
		{"negative overlap", clients("rotate-secret", "globex", "--overlap", "-1h")},
	} {
		if out, err := runLethe(t, d, c.args...); err == nil {
			t.Errorf("%s: succeeded, printed %q", c.name, out)
		}
	}
}
