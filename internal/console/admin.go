package console

import (
	"net/http"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/store"
)

// adminView is the clients-and-targets page's data.
type adminView struct {
	Clients []*lethe.Client
	Targets []targetHealth
	Rotated *clients.Rotated // the secrets of a rotation just made, shown once
}

type targetHealth struct {
	Target
	Failing int // failed tasks of requests not yet closed
}

func (c *Console) handleAdmin(w http.ResponseWriter, r *http.Request, s *session) {
	c.showAdmin(w, r, s, nil)
}

func (c *Console) showAdmin(w http.ResponseWriter, r *http.Request, s *session, rotated *clients.Rotated) {
	v := adminView{Rotated: rotated}
	if c.opts.Clients != nil {
		list, err := c.opts.Clients.List(r.Context())
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		v.Clients = list
	}
	failing, err := c.opts.Store.FailingTasks(r.Context())
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	for _, t := range c.opts.Targets {
		v.Targets = append(v.Targets, targetHealth{Target: t, Failing: failing[t.Name]})
	}
	c.render(w, http.StatusOK, "admin", page{Title: "Clients and targets", Operator: s.principal, CSRF: s.csrf, Data: v})
}

// handleClientAction disables, enables or rotates the secret of a client.
// A rotation from the console retires the old secret after the default
// overlap; its new secrets are shown once, on the answer to the POST.
func (c *Console) handleClientAction(w http.ResponseWriter, r *http.Request, s *session) {
	if c.opts.Clients == nil {
		c.fail(w, r, s, store.ErrNotFound)
		return
	}
	name := r.PathValue("name")
	var err error
	switch r.PathValue("action") {
	case "disable":
		err = c.opts.Clients.Disable(r.Context(), name)
	case "enable":
		err = c.opts.Clients.Enable(r.Context(), name)
	case "rotate":
		rot, err := c.opts.Clients.RotateSecret(r.Context(), name, clients.DefaultOverlap)
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		c.showAdmin(w, r, s, &rot)
		return
	default:
		err = store.ErrNotFound
	}
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	http.Redirect(w, r, Prefix+"admin", http.StatusSeeOther)
}
