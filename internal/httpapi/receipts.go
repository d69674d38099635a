package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/store"
)

// handleReceipt answers the signed receipt of a closed request, byte for
// byte as issued, so what the reader keeps is exactly what was signed. It
// is scoped like GET of the request, and 404 until the request has closed.
// It keeps answering after the request's details are purged, for the
// legal retention period.
//
// Operators get the full receipt; a client gets the partner receipt
// (audit.PartnerReceipt: states and outcomes, no objects, counts or
// retention reasons, which would tell a partner what the company holds on
// a person). A receipt issued before partner receipts existed has none,
// and the client gets a 404 that says so rather than the full one.
func (s *Server) handleReceipt(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id, ok := pathRequestID(r)
	if !ok {
		s.writeError(w, r, errReceiptNotFound())
		return
	}
	rec, err := s.store.GetReceipt(r.Context(), id, p.Scope())
	if errors.Is(err, store.ErrNotFound) {
		s.writeError(w, r, errReceiptNotFound())
		return
	} else if err != nil {
		s.writeError(w, r, fmt.Errorf("get receipt: %w", err))
		return
	}
	body := rec.Body
	if !p.Admin {
		if body = rec.PartnerBody; len(body) == 0 {
			s.writeError(w, r, lethe.Errorf(lethe.ENOTFOUND,
				"no partner receipt: this request's receipt was issued before partner receipts existed and holds what only operators may see; ask the operator for its state"))
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body) // a write error means the client left
}

func errReceiptNotFound() error {
	return lethe.Errorf(lethe.ENOTFOUND, "receipt not found: the request does not exist or has not ended yet")
}

// signingKeysView is the answer of GET /v1/signing-keys.
type signingKeysView struct {
	Keys []audit.PublicKey `json:"keys"`
}

// handleSigningKeys publishes every public key that signs or signed
// receipts, current first. It needs no credentials: public keys are meant
// to be public, and anyone holding a receipt must be able to check it.
func (s *Server) handleSigningKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := audit.PublicKeys(r.Context(), s.store)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("signing keys: %w", err))
		return
	}
	if keys == nil {
		keys = []audit.PublicKey{}
	}
	s.writeJSON(w, r, http.StatusOK, signingKeysView{Keys: keys})
}
