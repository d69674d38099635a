package signature_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/signature"
)

// The test vector docs/callbacks.md gives receivers.
const (
	vectorSecret = "whsec_example_secret"
	vectorT      = 1735689600
	vectorBody   = `{"id":"01943a7c-8b2e-7d4f-9a1b-2c3d4e5f6a7b","type":"deletion_request.status_changed","sequence":2,"request_id":"01943a7a-0000-7000-8000-000000000001","status":"completed"}`
	vectorHeader = "t=1735689600,v1=acf3646253f4dab2f0c9b84696ca6c67100443c8fc8dcc83f0450566262fc540"
)

func TestSignVector(t *testing.T) {
	t.Parallel()
	if got := signature.Sign(time.Unix(vectorT, 0), []byte(vectorBody), []byte(vectorSecret)); got != vectorHeader {
		t.Errorf("Sign = %s, want %s", got, vectorHeader)
	}
	if err := signature.Verify([]byte(vectorSecret), vectorHeader, []byte(vectorBody), time.Unix(vectorT, 0)); err != nil {
		t.Errorf("Verify(vector) = %v", err)
	}
}

// TestVectorInDocs: the vector and the tolerance receivers are told about
// are the ones this package implements.
func TestVectorInDocs(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/callbacks.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"- secret: `" + vectorSecret + "`",
		"- t: `" + strconv.Itoa(vectorT) + "`",
		"- body: `" + vectorBody + "`",
		"- " + signature.Header + ": `" + vectorHeader + "`",
		"SHA2-256(stdin)= " + strings.TrimPrefix(vectorHeader, "t=1735689600,v1="),
		"more than **5 minutes** from your clock",
	} {
		if !strings.Contains(string(doc), line) {
			t.Errorf("docs/callbacks.md lacks the line %q", line)
		}
	}
	if signature.Tolerance != 5*time.Minute {
		t.Errorf("Tolerance %s, docs say 5 minutes", signature.Tolerance)
	}
}

func TestSignSeveralSecrets(t *testing.T) {
	t.Parallel()
	at := time.Unix(1700000000, 0)
	body := []byte(`{"status":"done"}`)
	h := signature.Sign(at, body, []byte("new-secret-0123456789"), []byte("old-secret-0123456789"))
	if n := strings.Count(h, ",v1="); n != 2 || !strings.HasPrefix(h, "t=1700000000,v1=") {
		t.Fatalf("header %q", h)
	}
	for _, s := range []string{"new-secret-0123456789", "old-secret-0123456789"} {
		if err := signature.Verify([]byte(s), h, body, at); err != nil {
			t.Errorf("Verify with %s: %v", s, err)
		}
	}
	if err := signature.Verify([]byte("third-secret-0123456789"), h, body, at); !errors.Is(err, signature.ErrInvalid) {
		t.Errorf("Verify with another secret = %v", err)
	}
	if got := signature.Sign(at, body); got != "t=1700000000" {
		t.Errorf("Sign without secrets = %q", got)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	secret := []byte("foobar")
	at := time.Unix(1700000000, 0)
	body := []byte(`{"status":"done"}`)
	good := signature.Sign(at, body, secret)
	sig := strings.TrimPrefix(good, "t=1700000000,v1=")
	for name, tc := range map[string]struct {
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		"good":                     {good, body, at, nil},
		"good, clock ahead":        {good, body, at.Add(signature.Tolerance), nil},
		"good, clock behind":       {good, body, at.Add(-signature.Tolerance), nil},
		"spaces after commas":      {"t=1700000000, v1=" + sig, body, at, nil},
		"rotation, second matches": {"t=1700000000,v1=" + strings.Repeat("0", 64) + ",v1=" + sig, body, at, nil},
		"unknown scheme ignored":   {"t=1700000000,v0=abc,v1=" + sig, body, at, nil},
		"expired":                  {good, body, at.Add(signature.Tolerance + time.Second), signature.ErrExpired},
		"from the future":          {good, body, at.Add(-signature.Tolerance - time.Second), signature.ErrExpired},
		"tampered body":            {good, []byte(`{"status":"failed"}`), at, signature.ErrInvalid},
		"tampered signature":       {strings.Replace(good, "v1=", "v1=0", 1), body, at, signature.ErrInvalid},
		"upper-case hex":           {"t=1700000000,v1=" + strings.ToUpper(sig), body, at, signature.ErrInvalid},
		"other timestamp":          {"t=1700000001,v1=" + sig, body, at, signature.ErrInvalid},
		"no v1":                    {"t=1700000000", body, at, signature.ErrMissing},
		"no t":                     {"v1=" + sig, body, at, signature.ErrMissing},
		"two t":                    {"t=1700000001,t=1700000000,v1=" + sig, body, at, signature.ErrMissing},
		"t not a number":           {"t=soon,v1=" + sig, body, at, signature.ErrMissing},
		"part without =":           {good + ",junk", body, at, signature.ErrMissing},
		"empty":                    {"", body, at, signature.ErrMissing},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := signature.Verify(secret, tc.header, tc.body, tc.now)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), sig) {
				t.Errorf("error %q quotes the expected signature", err)
			}
		})
	}
}
