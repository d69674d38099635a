package sqlconn

import (
	"testing"

	"github.com/lethe-privacy/lethe"
)

func TestColumnNames(t *testing.T) {
	for _, tc := range []struct {
		col      string
		identity lethe.IdentityType
		personal bool
	}{
		{"email", lethe.IdentityEmail, true},
		{"billing_email", lethe.IdentityEmail, true},
		{"Email_Address", lethe.IdentityEmail, true},
		{"mail_sent_at", "", false},
		{"mobile", lethe.IdentityPhone, true},
		{"shipping_phone", lethe.IdentityPhone, true},
		{"hotel", "", false},
		{"first_name", "", true},
		{"shipping_name", "", true},
		{"product_name", "", false},
		{"name", "", false},
		{"street", "", true},
		{"ip_address", "", true},
		{"ip", "", true},
		{"zip", "", true},
		{"date_of_birth", "", true},
		{"total_cents", "", false},
		{"description", "", false},
	} {
		if got := identityByName(tc.col); got != tc.identity {
			t.Errorf("identityByName(%q) = %q, want %q", tc.col, got, tc.identity)
		}
		if got := personalByName(tc.col); got != tc.personal {
			t.Errorf("personalByName(%q) = %v, want %v", tc.col, got, tc.personal)
		}
	}
	for table, want := range map[string]string{
		"users": "user", "addresses": "address", "boxes": "box", "companies": "company",
		"people": "people", "billing.invoices": "invoice", "status": "status", "class": "class",
	} {
		if got := singular(table); got != want {
			t.Errorf("singular(%q) = %q, want %q", table, got, want)
		}
	}
}
