package httpapi

import (
	"context"
	"net/http"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/http/request"
)

// TaskCompleter takes a target's confirmation that it finished an erasure
// (pipeline.Pipeline.CompleteTask). h and body are the request's headers
// and raw body: the target's connector authenticates them with the
// target's own secret. Errors are *lethe.Error for the caller.
type TaskCompleter interface {
	CompleteTask(ctx context.Context, token string, h http.Header, body []byte) error
}

// maxTokenLen bounds the path token before any lookup: real tokens are 64
// hex digits.
const maxTokenLen = 128

// taskCompleteHandler serves POST /v1/tasks/{token}/complete. It carries no
// bearer authentication: the random token names the task and the body's
// signature (with the target's secret) authenticates the target, so an
// internal service needs no lethe client account to call back.
func (s *Server) taskCompleteHandler(tc TaskCompleter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := r.PathValue("token")
		if tc == nil || token == "" || len(token) > maxTokenLen {
			s.writeError(w, r, lethe.Errorf(lethe.ENOTFOUND, "no task has this callback token"))
			return
		}
		body, err := request.ReadJSON(r, s.maxBody)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := tc.CompleteTask(r.Context(), token, r.Header, body); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "recorded"})
	})
}
