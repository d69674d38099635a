package s2s_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/profile/s2s"
)

func FuzzVerifySignature(f *testing.F) {
	f.Add(seedSecret, seedBody, seedSignature)
	f.Add(seedSecret, seedBody, strings.ToUpper(seedSignature))
	f.Add("", "", "")
	f.Add("k", "{}", "zz")
	f.Fuzz(func(t *testing.T, secret, body, sig string) {
		secrets := [][]byte{[]byte(secret)}
		want := s2s.Sign([]byte(body), []byte(secret))
		if s2s.VerifySignature([]byte(body), sig, secrets) && !strings.EqualFold(sig, want) {
			t.Fatalf("accepted %q for a body whose signature is %s", sig, want)
		}
		if !s2s.VerifySignature([]byte(body), want, secrets) || !s2s.VerifySignature([]byte(body), strings.ToUpper(want), secrets) {
			t.Fatal("refused the correct signature")
		}
		if s2s.VerifySignature([]byte(body), sig, nil) {
			t.Fatal("accepted a signature without any secret")
		}
	})
}

func FuzzDecodeS2S(f *testing.F) {
	for _, s := range []string{
		seedBody, `{}`, `{"user_id":null}`, `{"user_id":12}`, `{"user_id":" a "}`,
		`{"user_id":"1","user_id":"2"}`, "{\"user_id\":\"\xff\"}", `{"user_id":"\u0000"}`,
		`[]`, `{"user_id":"1"} x`, `{"USER_ID":"1"}`, `{"user_id":"1","x":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := s2s.DecodeBody(data)
		if err != nil {
			if lethe.ErrorCode(err) != lethe.EINVALID {
				t.Fatalf("error code %s, want %s", lethe.ErrorCode(err), lethe.EINVALID)
			}
			return
		}
		if !utf8.Valid(data) || !json.Valid(data) {
			t.Fatal("accepted a body that is not valid UTF-8 JSON")
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil || len(m) != 1 {
			t.Fatalf("accepted a body that is not a one-member object: %v", err)
		}
		if id.Type != lethe.IdentityUserID || id.Value == "" || len(id.Value) > lethe.MaxValueLen ||
			id.Value != strings.TrimSpace(id.Value) || strings.IndexFunc(id.Value, unicode.IsControl) >= 0 {
			t.Fatalf("accepted an invalid identity %q", id.Value)
		}
		if n, err := lethe.NormalizeIdentity(id); err != nil || n != id {
			t.Fatalf("accepted identity does not normalise to itself: %v", err)
		}
		for _, v := range m {
			if s, ok := v.(string); !ok || strings.TrimSpace(s) != id.Value {
				t.Fatalf("decoded %q from a body holding %v", id.Value, v)
			}
		}
	})
}
