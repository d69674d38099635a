package pipeline

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

// closedTarget is a memTarget whose ResolveSubject follows its own links
// until nothing new turns up and says so (Closed), as the SQL connector
// does.
type closedTarget struct{ *memTarget }

func (c closedTarget) ResolveSubject(ctx context.Context, s connector.Subject) (connector.Resolution, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls["resolve"]++
	known := map[lethe.Identity]bool{}
	queue := slices.Clone(s.Identities)
	for _, id := range queue {
		known[id] = true
	}
	var found []lethe.Identity
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		for _, l := range c.links[id] {
			if !known[l] {
				known[l] = true
				found = append(found, l)
				queue = append(queue, l)
			}
		}
	}
	return connector.Resolution{Identities: found, Closed: true}, nil
}

// A target whose resolution is closed is asked again only with identities
// another target found; one that is not is asked every round.
func TestResolveAsksClosedTargetsOnlyWithOthersFindings(t *testing.T) {
	t.Parallel()
	userID := lethe.Identity{Type: lethe.IdentityUserID, Value: "42"}
	customer := lethe.Identity{Type: "x-customer", Value: "C-9"}
	resolve := func(targets ...Target) resolveResult {
		r := &resolver{targets: targets, cfg: testConfig().withDefaults(), log: slog.New(slog.DiscardHandler)}
		res := r.resolveIdentities(context.Background(), "req", []lethe.Identity{email})
		if res.err != nil {
			t.Fatal(res.err)
		}
		return res
	}

	// One closed target: what it finds, it has followed already.
	one := newMemTarget()
	one.links[email] = []lethe.Identity{userID}
	res := resolve(Target{"users", closedTarget{one}})
	if !slices.Contains(res.identities, userID) {
		t.Errorf("identities = %v, want the user id found", res.identities)
	}
	if got := one.count("resolve"); got != 1 {
		t.Errorf("closed target asked %d times, want 1", got)
	}

	// users finds the user id by email, orders the customer number by the
	// user id, and users the phone by the customer number: four rounds
	// (four calls each before), but each is asked again only after the
	// other found something new to it: users in rounds 1 and 3, orders in
	// 1, 2 and 4 (the phone).
	users, orders := newMemTarget(), newMemTarget()
	users.links[email] = []lethe.Identity{userID}
	users.links[customer] = []lethe.Identity{{Type: lethe.IdentityPhone, Value: "+15551234567"}}
	orders.links[userID] = []lethe.Identity{customer}
	res = resolve(Target{"users", closedTarget{users}}, Target{"orders", closedTarget{orders}})
	if len(res.identities) != 4 {
		t.Errorf("identities = %v, want email, user id, customer number and phone", res.identities)
	}
	if got, want := [2]int{users.count("resolve"), orders.count("resolve")}, [2]int{2, 3}; got != want {
		t.Errorf("users and orders asked %v times, want %v", got, want)
	}

	// The same links through targets that do not say they are closed:
	// every round asks every target.
	users2, orders2 := newMemTarget(), newMemTarget()
	users2.links, orders2.links = users.links, orders.links
	res = resolve(Target{"users", users2}, Target{"orders", orders2})
	if len(res.identities) != 4 {
		t.Errorf("identities = %v, want 4", res.identities)
	}
	if users2.count("resolve") != res.rounds || orders2.count("resolve") != res.rounds || res.rounds != 4 {
		t.Errorf("open targets asked %d and %d times in %d rounds, want 4 each", users2.count("resolve"), orders2.count("resolve"), res.rounds)
	}
}
