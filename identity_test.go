package lethe_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe"
)

func TestNormalizeIdentity(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", lethe.MaxValueLen+1)
	tests := []struct {
		in      lethe.Identity
		want    lethe.Identity
		wantErr bool
	}{
		{in: lethe.Identity{Type: "email", Value: "  Ada@Example.COM "}, want: lethe.Identity{Type: "email", Value: "ada@example.com"}},
		{in: lethe.Identity{Type: "email", Value: "ada+tag@sub.example.org"}, want: lethe.Identity{Type: "email", Value: "ada+tag@sub.example.org"}},
		{in: lethe.Identity{Type: "email", Value: "Ada <ada@example.com>"}, wantErr: true},
		{in: lethe.Identity{Type: "email", Value: "ada@localhost"}, wantErr: true},
		{in: lethe.Identity{Type: "email", Value: "not-an-email"}, wantErr: true},
		{in: lethe.Identity{Type: "email", Value: "x' OR '1'='1@example.com"}, wantErr: true},
		{in: lethe.Identity{Type: "email", Value: strings.Repeat("a", 250) + "@example.com"}, wantErr: true},
		{in: lethe.Identity{Type: "phone", Value: "+49 151 1234-5678"}, want: lethe.Identity{Type: "phone", Value: "+4915112345678"}},
		{in: lethe.Identity{Type: "phone", Value: "0044 (20) 7946.0958"}, want: lethe.Identity{Type: "phone", Value: "+442079460958"}},
		{in: lethe.Identity{Type: "phone", Value: "030 1234567"}, wantErr: true},
		{in: lethe.Identity{Type: "phone", Value: "+1 555 CALL NOW"}, wantErr: true},
		{in: lethe.Identity{Type: "phone", Value: "+0123456789"}, wantErr: true},
		{in: lethe.Identity{Type: "user_id", Value: " 42 "}, want: lethe.Identity{Type: "user_id", Value: "42"}},
		{in: lethe.Identity{Type: "user_id", Value: `"; DROP TABLE users; --`}, want: lethe.Identity{Type: "user_id", Value: `"; DROP TABLE users; --`}},
		{in: lethe.Identity{Type: "user_id", Value: long}, wantErr: true},
		{in: lethe.Identity{Type: "user_id", Value: "a\x00b"}, wantErr: true},
		{in: lethe.Identity{Type: "user_id", Value: "\xff\xfe"}, wantErr: true},
		{in: lethe.Identity{Type: "user_id", Value: "   "}, wantErr: true},
		{in: lethe.Identity{Type: "x-device", Value: "d-1"}, want: lethe.Identity{Type: "x-device", Value: "d-1"}},
		{in: lethe.Identity{Type: "x-", Value: "d-1"}, wantErr: true},
		{in: lethe.Identity{Type: "X-Device", Value: "d-1"}, wantErr: true},
		{in: lethe.Identity{Type: "ssn", Value: "1"}, wantErr: true},
		{in: lethe.Identity{Type: "", Value: "1"}, wantErr: true},
	}
	for _, tt := range tests {
		got, err := lethe.NormalizeIdentity(tt.in)
		if tt.wantErr {
			if lethe.ErrorCode(err) != lethe.EINVALID {
				t.Errorf("NormalizeIdentity(%s %q): err = %v, want %s", tt.in.Type, tt.in.Value, err, lethe.EINVALID)
			}
			if err != nil && tt.in.Value != "" && len(tt.in.Value) > 3 && strings.Contains(err.Error(), strings.TrimSpace(tt.in.Value)) {
				t.Errorf("error %q quotes the identity value", err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizeIdentity(%s %q) = %q, %v; want %q", tt.in.Type, tt.in.Value, got.Value, err, tt.want.Value)
		}
	}
}

func TestClassifyIdentifier(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want lethe.Identity
	}{
		{"Ada@Example.com", lethe.Identity{Type: "email", Value: "ada@example.com"}},
		{"+1 (415) 555-0100", lethe.Identity{Type: "phone", Value: "+14155550100"}},
		{"cust_8812", lethe.Identity{Type: "user_id", Value: "cust_8812"}},
		{"string", lethe.Identity{Type: "user_id", Value: "string"}},
		{"12345", lethe.Identity{Type: "user_id", Value: "12345"}},
		{"0012345678", lethe.Identity{Type: "user_id", Value: "0012345678"}},
		{"004915112345678", lethe.Identity{Type: "user_id", Value: "004915112345678"}},
		{"a@b", lethe.Identity{Type: "user_id", Value: "a@b"}},
	}
	for _, tt := range tests {
		got, err := lethe.ClassifyIdentifier(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ClassifyIdentifier(%q) = %#v %q, %v; want %q", tt.in, got, got.Value, err, tt.want.Value)
		}
	}
	if _, err := lethe.ClassifyIdentifier(""); lethe.ErrorCode(err) != lethe.EINVALID {
		t.Errorf("ClassifyIdentifier(\"\") err = %v, want invalid", err)
	}
}

func TestIdentityNeverPrintsValue(t *testing.T) {
	t.Parallel()
	id := lethe.Identity{Type: lethe.IdentityEmail, Value: "secret.person@example.com"}
	for _, s := range []string{fmt.Sprint(id), fmt.Sprintf("%v %+v %#v %s", id, id, id, id), fmt.Sprint([]lethe.Identity{id})} {
		if strings.Contains(s, "secret.person") {
			t.Errorf("formatted identity %q shows its value", s)
		}
	}
}

func TestErrorCodeAndMessage(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("wrap: %w", lethe.Errorf(lethe.ENOTFOUND, "deletion request not found"))
	if lethe.ErrorCode(err) != lethe.ENOTFOUND || lethe.ErrorMessage(err) != "deletion request not found" {
		t.Errorf("code/message = %q/%q", lethe.ErrorCode(err), lethe.ErrorMessage(err))
	}
	other := fmt.Errorf("dial tcp 10.0.0.1: refused")
	if lethe.ErrorCode(other) != lethe.EINTERNAL || strings.Contains(lethe.ErrorMessage(other), "10.0.0.1") {
		t.Errorf("internal error leaks: %q", lethe.ErrorMessage(other))
	}
	if lethe.ErrorCode(nil) != "" {
		t.Errorf("ErrorCode(nil) = %q", lethe.ErrorCode(nil))
	}
}

// FuzzNormalizeIdentity checks normalisation never panics, is idempotent,
// and only ever yields valid UTF-8 within the length limits.
func FuzzNormalizeIdentity(f *testing.F) {
	for _, s := range []string{"ada@example.com", "+49 151 1234", "0044 20 7946 0958", "x' OR '1'='1", "\xff", "42"} {
		for _, typ := range []string{"email", "phone", "user_id", "x-device"} {
			f.Add(typ, s)
		}
	}
	f.Fuzz(func(t *testing.T, typ, value string) {
		got, err := lethe.NormalizeIdentity(lethe.Identity{Type: lethe.IdentityType(typ), Value: value})
		if err != nil {
			if lethe.ErrorCode(err) != lethe.EINVALID {
				t.Fatalf("error code %q, want %q", lethe.ErrorCode(err), lethe.EINVALID)
			}
			return
		}
		again, err := lethe.NormalizeIdentity(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", value, got.Value, again.Value, err)
		}
		if len(got.Value) > lethe.MaxValueLen {
			t.Fatalf("normalised value is %d bytes", len(got.Value))
		}
	})
}
