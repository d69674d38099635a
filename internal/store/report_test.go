package store

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lethe-privacy/lethe"
)

func TestAddReport(t *testing.T) {
	until := time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC)
	item := func(obj string, a lethe.Action, n int64) lethe.ReportItem {
		return lethe.ReportItem{Object: obj, Action: a, Rows: n}
	}
	tests := []struct {
		name   string
		acc, r lethe.Report
		want   lethe.Report
	}{
		{"empty", lethe.Report{}, lethe.Report{}, lethe.Report{}},
		{"first", lethe.Report{}, lethe.Report{Items: []lethe.ReportItem{item("users", lethe.ActionDelete, 2)}},
			lethe.Report{Items: []lethe.ReportItem{item("users", lethe.ActionDelete, 2)}}},
		{"delete and pseudonymize add up",
			lethe.Report{Items: []lethe.ReportItem{item("users", lethe.ActionDelete, 2), item("orders", lethe.ActionPseudonymize, 1000)}},
			lethe.Report{Items: []lethe.ReportItem{item("orders", lethe.ActionPseudonymize, 7), item("users", lethe.ActionDelete, 0)}},
			lethe.Report{Items: []lethe.ReportItem{item("users", lethe.ActionDelete, 2), item("orders", lethe.ActionPseudonymize, 1007)}}},
		{"retain keeps the largest",
			lethe.Report{Items: []lethe.ReportItem{item("invoices", lethe.ActionRetain, 3)}},
			lethe.Report{Items: []lethe.ReportItem{{Object: "invoices", Action: lethe.ActionRetain, Rows: 1, Reason: "tax", Until: until}}},
			lethe.Report{Items: []lethe.ReportItem{{Object: "invoices", Action: lethe.ActionRetain, Rows: 3, Reason: "tax", Until: until}}}},
		{"same object, other action is another line",
			lethe.Report{Items: []lethe.ReportItem{item("t", lethe.ActionDelete, 1)}},
			lethe.Report{Items: []lethe.ReportItem{item("t", lethe.ActionForward, 1)}},
			lethe.Report{Items: []lethe.ReportItem{item("t", lethe.ActionDelete, 1), item("t", lethe.ActionForward, 1)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := cmp.Diff(lethe.Report{}, tc.acc, cmpopts.EquateEmpty())
			got := AddReport(tc.acc, tc.r)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("AddReport (-want +got):\n%s", diff)
			}
			if after := cmp.Diff(lethe.Report{}, tc.acc, cmpopts.EquateEmpty()); after != before {
				t.Error("AddReport changed its acc argument")
			}
		})
	}
}
