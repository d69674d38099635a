package httpapi

import (
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// deadlineFilters reads the list API's deadline filters into f:
// overdue=true keeps open requests past their due date, due_before=<RFC
// 3339 time> keeps requests due before it (combine it with overdue or
// status to find open ones). It appends the filters as given to key, which
// binds the page cursor to them.
func (s *Server) deadlineFilters(f *store.ListFilter, get func(string) (string, error), key *string) error {
	overdue, err := get("overdue")
	if err != nil {
		return err
	}
	switch overdue {
	case "", "false":
	case "true":
		f.Open = true
		f.DueBefore = s.now()
		*key += "&overdue=true"
	default:
		return lethe.Errorf(lethe.EINVALID, "overdue must be true or false")
	}
	before, err := get("due_before")
	if err != nil {
		return err
	}
	if before != "" {
		t, err := time.Parse(time.RFC3339, before)
		if err != nil {
			return lethe.Errorf(lethe.EINVALID, "due_before must be an RFC 3339 time, e.g. 2025-01-31T00:00:00Z")
		}
		if f.DueBefore.IsZero() || t.Before(f.DueBefore) {
			f.DueBefore = t
		}
		*key += "&due_before=" + before
	}
	return nil
}
