package httpapi

import (
	"net/http"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/auth"
	"github.com/lethe-privacy/lethe/internal/http/request"
	"github.com/lethe-privacy/lethe/internal/suppression"
)

// checkBody is the body of POST /v1/suppressions/check.
type checkBody struct {
	Identities []identityBody `json:"identities"`
}

type checkResult struct {
	Index      int  `json:"index"`
	Suppressed bool `json:"suppressed"`
}

// checkAnswer echoes indexes, never values: the caller knows what it
// sent, and an answer that repeated identities would be one more place
// they could leak from (logs of a proxy, a client's debug output).
type checkAnswer struct {
	Results []checkResult `json:"results"`
}

// removeBody is the body of DELETE /v1/suppressions.
type removeBody struct {
	Identity *identityBody `json:"identity"`
}

type removeAnswer struct {
	Removed int `json:"removed"`
}

func errSuppressionDisabled() error {
	return lethe.Errorf(lethe.ECONFLICT, "the suppression list is not enabled in this deployment (suppression.enabled)")
}

// handleSuppressionCheck answers which identities are suppressed. The
// admin sees the whole list; a client only the entries its own requests
// added, so the list cannot tell one partner about another's subjects.
func (s *Server) handleSuppressionCheck(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !s.suppression {
		s.writeError(w, r, errSuppressionDisabled())
		return
	}
	var body checkBody
	if err := request.DecodeJSON(r, s.maxBody, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	ids := make([]lethe.Identity, len(body.Identities))
	for i, id := range body.Identities {
		ids[i] = lethe.Identity{Type: lethe.IdentityType(id.Type), Value: id.Value}
	}
	got, err := suppression.Check(r.Context(), s.store, p.Scope(), ids)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ans := checkAnswer{Results: make([]checkResult, len(got))}
	for i, sup := range got {
		ans.Results[i] = checkResult{Index: i, Suppressed: sup}
	}
	s.writeJSON(w, r, http.StatusOK, ans)
}

// handleSuppressionRemove takes an identity off the list: admin only, and
// audited (with the hash, never the value).
func (s *Server) handleSuppressionRemove(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !p.Admin {
		s.writeError(w, r, lethe.Errorf(lethe.EFORBIDDEN, "only the admin may remove suppression entries"))
		return
	}
	var body removeBody
	if err := request.DecodeJSON(r, s.maxBody, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if body.Identity == nil {
		s.writeError(w, r, lethe.Errorf(lethe.EINVALID, "identity is required"))
		return
	}
	actor, actorID := p.Actor()
	n, err := suppression.Remove(r.Context(), s.store,
		lethe.Identity{Type: lethe.IdentityType(body.Identity.Type), Value: body.Identity.Value},
		actor, actorID, time.Now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, removeAnswer{Removed: n})
}
