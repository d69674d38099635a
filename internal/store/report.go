package store

import (
	"slices"
	"strings"

	"github.com/lethe-privacy/lethe"
)

// AddReport returns acc with r added, object by object (an object is its
// name and action), in acc's order with r's new objects after it.
//
// Rows that were deleted, pseudonymised or forwarded add up: a connector's
// Erase reports what that call changed, and a re-run only finds what is
// left. Retained rows keep the largest count: they are never changed, so
// each attempt reports them again, and a re-run may no longer reach those
// kept through a parent an earlier attempt deleted. Reason and Until come
// from the latest report that gives them.
func AddReport(acc, r lethe.Report) lethe.Report {
	out := lethe.Report{Items: append([]lethe.ReportItem(nil), acc.Items...)}
	type key struct {
		object string
		action lethe.Action
	}
	at := make(map[key]int, len(out.Items))
	for i, it := range out.Items {
		at[key{it.Object, it.Action}] = i
	}
	for _, it := range r.Items {
		i, ok := at[key{it.Object, it.Action}]
		if !ok {
			at[key{it.Object, it.Action}] = len(out.Items)
			out.Items = append(out.Items, it)
			continue
		}
		cur := &out.Items[i]
		if it.Action == lethe.ActionRetain {
			cur.Rows = max(cur.Rows, it.Rows)
		} else {
			cur.Rows += it.Rows
		}
		if it.Reason != "" {
			cur.Reason = it.Reason
		}
		if !it.Until.IsZero() {
			cur.Until = it.Until
		}
		for _, ref := range strings.Split(it.Reference, ",") {
			if ref != "" && !slices.Contains(strings.Split(cur.Reference, ","), ref) {
				cur.Reference = strings.TrimPrefix(cur.Reference+","+ref, ",")
			}
		}
	}
	return out
}
