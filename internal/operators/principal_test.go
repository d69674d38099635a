package operators

import (
	"context"
	"testing"

	"github.com/lethe-privacy/lethe"
)

func TestCan(t *testing.T) {
	for _, tc := range []struct {
		p    Principal
		want map[Role]bool
	}{
		{Principal{"v", RoleViewer}, map[Role]bool{RoleViewer: true, RoleReviewer: false, RoleAdmin: false}},
		{Principal{"r", RoleReviewer}, map[Role]bool{RoleViewer: true, RoleReviewer: true, RoleAdmin: false}},
		{Principal{"a", RoleAdmin}, map[Role]bool{RoleViewer: true, RoleReviewer: true, RoleAdmin: true}},
		{Principal{"x", "root"}, map[Role]bool{RoleViewer: false, RoleReviewer: false, RoleAdmin: false}},
		{Principal{"", RoleAdmin}, map[Role]bool{RoleViewer: false, RoleReviewer: false, RoleAdmin: false}},
	} {
		for r, want := range tc.want {
			if got := tc.p.Can(r); got != want {
				t.Errorf("%+v.Can(%s) = %v, want %v", tc.p, r, got, want)
			}
		}
		if tc.p.Can("superuser") {
			t.Errorf("%+v.Can(unknown role) = true", tc.p)
		}
	}
}

func TestContextAndActor(t *testing.T) {
	ctx := context.Background()
	if _, ok := FromContext(ctx); ok {
		t.Fatal("empty context carries an operator")
	}
	if a, id := Actor(ctx); a != lethe.ActorSystem || id != "" {
		t.Fatalf("Actor(empty) = %s %q", a, id)
	}
	ctx = WithPrincipal(ctx, Principal{Name: "ana", Role: RoleReviewer})
	if p, ok := FromContext(ctx); !ok || p.Name != "ana" || p.Role != RoleReviewer {
		t.Fatalf("FromContext = %+v %v", p, ok)
	}
	if a, id := Actor(ctx); a != lethe.ActorOperator || id != "ana" {
		t.Fatalf("Actor(ana) = %s %q", a, id)
	}
	if a, id := Actor(WithPrincipal(context.Background(), AdminToken)); a != lethe.ActorAdmin || id != AdminTokenName {
		t.Fatalf("Actor(admin token) = %s %q", a, id)
	}
}
