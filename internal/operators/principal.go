// Package operators holds who the people (and automation) acting on lethe
// through its operator surfaces are: an operator's name and role, how an
// authenticated operator travels in a request's context, how it appears in
// the audit log, and the Service that manages named operators and checks
// their tokens (stored as keyed hashes, like clients' credentials). It
// imports no API surface and not the pipeline, so all of them may use it.
package operators

import (
	"context"

	"github.com/lethe-privacy/lethe"
)

// Role is what an operator may do. Roles are ordered: an admin may do
// everything a reviewer may, a reviewer everything a viewer may.
type Role string

const (
	// RoleViewer reads requests, receipts, the register and the audit log.
	RoleViewer Role = "viewer"
	// RoleReviewer acts on requests: approve, deny, retry, skip, extend,
	// hold, release, attest.
	RoleReviewer Role = "reviewer"
	// RoleAdmin manages clients, operators and targets.
	RoleAdmin Role = "admin"
)

// Roles lists every role, least powerful first.
var Roles = []Role{RoleViewer, RoleReviewer, RoleAdmin}

// rank orders the roles; an unknown role ranks below every known one, so
// it may do nothing.
func (r Role) rank() int {
	for i, v := range Roles {
		if r == v {
			return i + 1
		}
	}
	return 0
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r.rank() > 0 }

// AdminTokenName is the name the static admin token acts under: the
// token is kept for automation, and the audit log tells its actions apart
// from a named operator's.
const AdminTokenName = "admin-token"

// Principal is an authenticated operator.
type Principal struct {
	Name string
	Role Role
}

// AdminToken is the principal of the static admin token.
var AdminToken = Principal{Name: AdminTokenName, Role: RoleAdmin}

// Can reports whether p holds role r or a more powerful one. A principal
// without a name or with an unknown role can do nothing.
func (p Principal) Can(r Role) bool {
	return p.Name != "" && p.Role.Valid() && r.Valid() && p.Role.rank() >= r.rank()
}

type contextKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, contextKey{}, p)
}

// FromContext returns the operator ctx carries, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(contextKey{}).(Principal)
	return p, ok && p.Name != ""
}

// Actor is how the operator in ctx appears in audit events: a named
// operator as lethe.ActorOperator with its name, the admin token as
// lethe.ActorAdmin with its name. With no operator in ctx it answers
// lethe.ActorSystem and "": an action nobody authenticated for is the
// service's own.
func Actor(ctx context.Context) (lethe.Actor, string) {
	p, ok := FromContext(ctx)
	if !ok {
		return lethe.ActorSystem, ""
	}
	return p.Actor()
}

// Actor is how p appears in audit events (see the function Actor).
func (p Principal) Actor() (lethe.Actor, string) {
	if p.Name == AdminTokenName {
		return lethe.ActorAdmin, p.Name
	}
	return lethe.ActorOperator, p.Name
}
