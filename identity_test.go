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
		// A national prefix written after the country code is dropped.
		{in: lethe.Identity{Type: "phone", Value: "+44 (0)20 7946 0958"}, want: lethe.Identity{Type: "phone", Value: "+442079460958"}},
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

// Look-alike, invisible and broken characters are refused for every type
// (see NormalizeIdentity for the rule), with an error that names the
// problem and never the value.
func TestNormalizeIdentityRefusesDeceptiveText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, typ, value, want string
	}{
		{"cyrillic a in latin email", "email", "\u0430lice@example.com", "mixes letters of different scripts"},
		{"greek omicron in latin id", "user_id", "jane.d\u03bfe", "mixes letters of different scripts"},
		{"zero-width space", "email", "alice\u200b@example.com", "invisible formatting characters"},
		{"zero-width joiner in id", "user_id", "cust\u200d42", "invisible formatting characters"},
		{"byte order mark", "x-serial", "\ufeffdevice-1", "invisible formatting characters"},
		{"right-to-left override", "email", "alice\u202e@example.com", "invisible formatting characters"},
		{"right-to-left mark", "user_id", "42\u200f", "invisible formatting characters"},
		{"lone surrogate (WTF-8)", "email", "alice\xed\xa0\x80@example.com", "not valid UTF-8"},
		{"lone surrogate through JSON", "user_id", "cust\ufffd42", "replacement character"},
		{"full-width letters", "email", "\uff41lice@example.com", "compatibility characters"},
		{"mathematical bold letters", "user_id", "\U0001d41a\U0001d41b\U0001d41c", "compatibility characters"},
		{"private use", "user_id", "id\ue000", "private-use characters"},
		{"phone with letters", "phone", "+1 555 CALL NOW", "not a valid international number"},
		{"phone too short for its country", "phone", "+49 15", "not a valid international number"},
		{"unknown country code", "phone", "+999 1234 5678", "not a valid international number"},
		{"national phone", "phone", "07911 123456", "not a valid international number"},
		{"phone whose E.164 form reads as another number", "phone", "0084000 0000 0000", "not a valid international number"},
	}
	for _, tt := range tests {
		_, err := lethe.NormalizeIdentity(lethe.Identity{Type: lethe.IdentityType(tt.typ), Value: tt.value})
		if lethe.ErrorCode(err) != lethe.EINVALID {
			t.Errorf("%s: err = %v, want %s", tt.name, err, lethe.EINVALID)
			continue
		}
		msg := lethe.ErrorMessage(err)
		if !strings.Contains(msg, tt.want) {
			t.Errorf("%s: message %q does not say %q", tt.name, msg, tt.want)
		}
		for _, part := range []string{"alice", "cust", "device", "jane", "555"} {
			if strings.Contains(tt.value, part) && strings.Contains(msg, part) {
				t.Errorf("%s: message %q quotes the value", tt.name, msg)
			}
		}
	}
}

// Values in one script other than Latin, and the CJK combinations, are
// accepted; decomposed accents are put in NFC (the documented rule), so
// the two ways of writing é are one identity.
func TestNormalizeIdentityAcceptsOneScript(t *testing.T) {
	t.Parallel()
	tests := []struct{ typ, in, want string }{
		{"email", "Иван@пример.рф", "иван@пример.рф"},
		{"email", "ΑΛΦΑ@example.gr", "αλφα@example.gr"}, // Greek letters with a Latin domain are two scripts: see below
		{"user_id", "山田たろう-42", "山田たろう-42"},
		{"user_id", "taro山田", "taro山田"},
		{"email", "jose\u0301@example.com", "jos\u00e9@example.com"},
		{"email", "Jos\u00e9@Example.com", "jos\u00e9@example.com"},
		{"phone", "+44 20 7946 0958", "+442079460958"},
		{"phone", "+1 (415) 555-0123", "+14155550123"},
		{"phone", "0049 151 1234 5678", "+4915112345678"},
		{"phone", "+49 (0)151 12345678", "+4915112345678"},
	}
	for _, tt := range tests {
		got, err := lethe.NormalizeIdentity(lethe.Identity{Type: lethe.IdentityType(tt.typ), Value: tt.in})
		if tt.in == "ΑΛΦΑ@example.gr" {
			// Greek local part, Latin domain: mixed, so refused.
			if lethe.ErrorCode(err) != lethe.EINVALID {
				t.Errorf("Greek local part with a Latin domain accepted: %v", err)
			}
			continue
		}
		if err != nil || got.Value != tt.want {
			t.Errorf("NormalizeIdentity(%s %q) = %q, %v; want %q", tt.typ, tt.in, got.Value, err, tt.want)
		}
	}
}

func TestCanonicalPhone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, region, want string
		ok               bool
	}{
		{"+44 7911 123456", "", "+447911123456", true},
		{"(+44) 7911-123-456", "", "+447911123456", true},
		{"0044.7911.123456", "", "+447911123456", true},
		{"07911 123456", "GB", "+447911123456", true},
		{"07911 123456", "", "", false}, // national, no region: unknowable
		{"(415) 555-0123", "US", "+14155550123", true},
		{"415.555.0123", "us", "+14155550123", true},
		{"+1 415 555 0123 ext. 7", "", "+14155550123", true},
		{"+10000000000", "", "+10000000000", true}, // possible, if unassigned: stored data is what it is
		{"not a number", "GB", "", false},
		{"", "GB", "", false},
	}
	for _, tt := range tests {
		got, ok := lethe.CanonicalPhone(tt.in, tt.region)
		if got != tt.want || ok != tt.ok {
			t.Errorf("CanonicalPhone(%q, %q) = %q, %v; want %q, %v", tt.in, tt.region, got, ok, tt.want, tt.ok)
		}
	}
	if nsn, ok := lethe.PhoneNationalNumber("+447911123456"); !ok || nsn != "7911123456" {
		t.Errorf("PhoneNationalNumber = %q, %v", nsn, ok)
	}
	if !lethe.ValidPhoneRegion("GB") || lethe.ValidPhoneRegion("XX") {
		t.Error("ValidPhoneRegion: GB must be known and XX not")
	}
}
