package audit

import (
	"errors"
	"strings"
	"testing"
)

// TestPartnerReceiptSignVerify: the partner receipt carries states and
// outcomes and the full receipt's digest, nothing a partner must not see;
// it verifies under the same keys, refuses tampering, and neither
// verifier takes the other's document.
func TestPartnerReceiptSignVerify(t *testing.T) {
	s := testSigner(1)
	full := testReceipt()
	full.Targets[0].AttestedBy = "rita"
	fullDoc, digest, err := s.Sign(full)
	if err != nil {
		t.Fatal(err)
	}
	doc, partDigest, err := s.SignPartner(NewPartnerReceipt(full, "partner-a", digest))
	if err != nil {
		t.Fatal(err)
	}
	if read, err := Digest(doc); err != nil || read != partDigest {
		t.Fatalf("SignPartner's digest %s; read back from the document %s (%v)", partDigest, read, err)
	}
	for _, leak := range []string{"users", "invoices", "tax law", "rows", "identities", "rita", "audit", strings.Repeat("ab", 32)} {
		if strings.Contains(string(doc), leak) {
			t.Errorf("partner receipt holds %q: %s", leak, doc)
		}
	}
	pr, err := VerifyPartner(doc, keysOf(s))
	if err != nil {
		t.Fatalf("VerifyPartner: %v\n%s", err, doc)
	}
	want := PartnerTarget{Target: "shop", State: "done", Outcome: OutcomeErased, Attested: true}
	if pr.Receipt != digest || pr.RequestID != full.RequestID || pr.ClientID != "partner-a" || pr.Status != full.Status ||
		pr.Outcome != full.Outcome || pr.CompletedAt != full.CompletedAt || len(pr.Targets) != 1 || pr.Targets[0] != want {
		t.Errorf("partner receipt = %+v", pr)
	}
	if _, err := Verify(doc, keysOf(s)); !errors.Is(err, ErrPartnerReceipt) {
		t.Errorf("Verify(partner receipt) = %v, want ErrPartnerReceipt", err)
	}
	if _, err := VerifyPartner(fullDoc, keysOf(s)); err == nil {
		t.Error("VerifyPartner took a full receipt")
	}
	if _, err := VerifyPartner(doc, keysOf(testSigner(2))); err == nil {
		t.Error("verified with an unknown key")
	}
	for _, tamper := range []struct{ from, to string }{
		{`"state":"done"`, `"state":"failed"`},
		{`"receipt_sha256":"` + digest[:4], `"receipt_sha256":"0000`},
		{`"attested":true`, `"attested":false`},
	} {
		bad := strings.Replace(string(doc), tamper.from, tamper.to, 1)
		if bad == string(doc) {
			t.Fatalf("tamper %q not applied", tamper.from)
		}
		if _, err := VerifyPartner([]byte(bad), keysOf(s)); err == nil {
			t.Errorf("tampered partner receipt (%s -> %s) verified", tamper.from, tamper.to)
		}
	}
}
