package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// addRequestActions adds the operators' actions to `lethe requests`: each
// is one call of the native API, answered with the request as it stands
// after it. They need an operator token with the reviewer role.
func addRequestActions(cmd *cobra.Command, c *apiClient) {
	type action struct {
		use, short, path string
		reason           string // the flag --reason's meaning; "" when the action takes none
		required         bool
	}
	for _, a := range []action{
		{"approve ID", "Approve a held request: its erasure starts once no other hold is left", "approve", "", false},
		{"deny ID --reason CODE", "Deny a request before its erasure started (reason: suspected_fraud, insuf_verification, no_match, claim_not_covered, outside_jurisdiction, too_many_requests, other)", "deny", "reason code", true},
		{"retry ID", "Re-drive a failed request: every failed task runs again", "retry", "", false},
		{"hold ID --reason TEXT", "Place a legal hold: nothing more is erased until it is released", "hold", "why the request is held", true},
		{"release ID", "Release a legal hold", "release", "", false},
		{"close ID", "Close a failed request for good: its identities are dropped", "close", "", false},
	} {
		var reason, note string
		sub := &cobra.Command{
			Use:   a.use,
			Short: a.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if a.required && strings.TrimSpace(reason) == "" {
					return fmt.Errorf("--reason is required")
				}
				return c.do(cmd, http.MethodPost, "/v1/deletion-requests/"+url.PathEscape(args[0])+"/"+a.path, nil, actionBody{Reason: reason, Note: note})
			},
		}
		if a.reason != "" {
			sub.Flags().StringVar(&reason, "reason", "", a.reason)
		}
		sub.Flags().StringVar(&note, "note", "", "free text for the audit log; never an identity")
		cmd.AddCommand(sub)
	}

	var target, reason, note string
	retryTask := &cobra.Command{
		Use:   "retry-task ID --target NAME",
		Short: "Retry one failed task of a request",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.do(cmd, http.MethodPost, taskPath(args[0], target, "retry"), nil, actionBody{Note: note})
		},
	}
	skip := &cobra.Command{
		Use:   "skip ID --target NAME --reason TEXT",
		Short: "Skip a task that is not done; the receipt says skipped and why",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return fmt.Errorf("--reason is required")
			}
			return c.do(cmd, http.MethodPost, taskPath(args[0], target, "skip"), nil, actionBody{Reason: reason})
		},
	}
	for _, sub := range []*cobra.Command{retryTask, skip} {
		sub.Flags().StringVar(&target, "target", "", "target of the task (its name in the data map)")
		_ = sub.MarkFlagRequired("target")
	}
	retryTask.Flags().StringVar(&note, "note", "", "free text for the audit log; never an identity")
	skip.Flags().StringVar(&reason, "reason", "", "why the task is skipped")
	cmd.AddCommand(retryTask, skip)
}

type actionBody struct {
	Reason string       `json:"reason,omitempty"`
	Note   string       `json:"note,omitempty"`
	Items  []attestItem `json:"items,omitempty"`
}

type attestItem struct {
	Object string `json:"object"`
	Rows   int64  `json:"rows"`
}

func taskPath(id, target, action string) string {
	return "/v1/deletion-requests/" + url.PathEscape(id) + "/tasks/" + url.PathEscape(target) + "/" + action
}

// newTasksCmd is `lethe tasks`: actions on tasks across requests, and the
// attestation of a manual target's task.
func newTasksCmd() *cobra.Command {
	c := &apiClient{http: &http.Client{Timeout: 30 * time.Second}}
	cmd := &cobra.Command{
		Use:   "tasks",
		Short: "Retry failed tasks of a target, or attest a manual target's task, on a running server",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&c.server, "server", "http://127.0.0.1:8080", "base URL of the lethe server (env LETHE_SERVER)")
	pf.StringVar(&c.token, "token", "", "bearer token of an operator with the reviewer role (env LETHE_TOKEN)")

	var (
		target string
		failed bool
	)
	retry := &cobra.Command{
		Use:   "retry --target NAME --failed",
		Short: "Retry every task of a target that has failed by now, across requests (after the target's outage)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !failed {
				return fmt.Errorf("--failed is required: only failed tasks are retried in bulk")
			}
			return c.do(cmd, http.MethodPost, "/v1/tasks/retry", nil, struct {
				Target string `json:"target"`
				Failed bool   `json:"failed"`
			}{target, true})
		},
	}
	retry.Flags().StringVar(&target, "target", "", "target whose failed tasks are retried")
	retry.Flags().BoolVar(&failed, "failed", false, "retry the failed tasks (required)")
	_ = retry.MarkFlagRequired("target")

	var (
		counts []string
		note   string
	)
	attest := &cobra.Command{
		Use:   "attest ID --target NAME --count OBJECT=N [--count ...] [--note TEXT]",
		Short: "Attest what was done on a manual target for one request",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := actionBody{Note: note}
			for _, s := range counts {
				obj, n, ok := strings.Cut(s, "=")
				rows, err := strconv.ParseInt(n, 10, 64)
				if !ok || obj == "" || err != nil || rows < 0 {
					return fmt.Errorf("--count wants OBJECT=N with N a count (e.g. letters=3)")
				}
				body.Items = append(body.Items, attestItem{Object: obj, Rows: rows})
			}
			return c.do(cmd, http.MethodPost, taskPath(args[0], target, "attest"), nil, body)
		},
	}
	attest.Flags().StringVar(&target, "target", "", "the manual target")
	attest.Flags().StringArrayVar(&counts, "count", nil, "OBJECT=N: what was done per object; repeatable")
	attest.Flags().StringVar(&note, "note", "", "how it was done; never an identity")
	_ = attest.MarkFlagRequired("target")
	cmd.AddCommand(retry, attest)
	return cmd
}
