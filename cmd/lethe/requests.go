package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// apiClient talks to a running lethe over the native API.
type apiClient struct {
	server string
	token  string
	http   *http.Client
}

func newRequestsCmd() *cobra.Command {
	c := &apiClient{http: &http.Client{Timeout: 30 * time.Second}}
	cmd := &cobra.Command{
		Use:   "requests",
		Short: "Submit, inspect and cancel deletion requests on a running server",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&c.server, "server", "http://127.0.0.1:8080", "base URL of the lethe server (env LETHE_SERVER)")
	pf.StringVar(&c.token, "token", "", "bearer token: the admin token or a client access token (env LETHE_TOKEN)")

	var (
		identities []string
		regulation string
		externalID string
		idemKey    string
		callback   string
	)
	submit := &cobra.Command{
		Use:   "submit --identity TYPE:VALUE [--identity TYPE:VALUE ...]",
		Short: "Submit a deletion request",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			type identity struct {
				Type  string `json:"type"`
				Value string `json:"value"`
			}
			body := struct {
				Identities  []identity `json:"identities"`
				Regulation  string     `json:"regulation,omitempty"`
				ExternalID  string     `json:"external_id,omitempty"`
				CallbackURL string     `json:"callback_url,omitempty"`
			}{Regulation: regulation, ExternalID: externalID, CallbackURL: callback}
			for _, s := range identities {
				t, v, ok := strings.Cut(s, ":")
				if !ok || t == "" || v == "" {
					return fmt.Errorf("--identity wants TYPE:VALUE (e.g. email:a@example.com)")
				}
				body.Identities = append(body.Identities, identity{Type: t, Value: v})
			}
			if len(body.Identities) == 0 {
				return fmt.Errorf("give at least one --identity TYPE:VALUE")
			}
			hdr := http.Header{}
			if idemKey != "" {
				hdr.Set("Idempotency-Key", idemKey)
			}
			return c.do(cmd, http.MethodPost, "/v1/deletion-requests", hdr, body)
		},
	}
	submit.Flags().StringArrayVar(&identities, "identity", nil, "identity as TYPE:VALUE (email, phone, user_id or x-<name>); repeatable")
	submit.Flags().StringVar(&regulation, "regulation", "gdpr", "regulation the request is made under")
	submit.Flags().StringVar(&externalID, "external-id", "", "your own reference for the request")
	submit.Flags().StringVar(&idemKey, "idempotency-key", "", "makes a retried submit return the first answer")
	submit.Flags().StringVar(&callback, "callback-url", "", "URL that receives status events")

	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show a request with its per-target tasks",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.do(cmd, http.MethodGet, "/v1/deletion-requests/"+url.PathEscape(args[0]), nil, nil)
		},
	}

	var (
		status string
		limit  int
		cursor string
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List requests, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if status != "" {
				q.Set("status", status)
			}
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
			}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			path := "/v1/deletion-requests"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			return c.do(cmd, http.MethodGet, path, nil, nil)
		},
	}
	list.Flags().StringVar(&status, "status", "", "only requests in this status")
	list.Flags().IntVar(&limit, "limit", 0, "page size (server default when 0)")
	list.Flags().StringVar(&cursor, "cursor", "", "next_cursor from the previous page")

	cancel := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a request that has not started erasing",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.do(cmd, http.MethodPost, "/v1/deletion-requests/"+url.PathEscape(args[0])+"/cancel", nil, nil)
		},
	}
	var (
		reason string
		days   int
		until  string
	)
	extend := &cobra.Command{
		Use:   "extend ID --reason TEXT (--days N | --until DATE)",
		Short: "Extend an open request's due date once, within the law's bound (operators: reviewer)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (days == 0) == (until == "") {
				return fmt.Errorf("give either --days or --until")
			}
			body := struct {
				Reason string `json:"reason"`
				Days   int    `json:"days,omitempty"`
				Until  string `json:"until,omitempty"`
			}{reason, days, until}
			return c.do(cmd, http.MethodPost, "/v1/deletion-requests/"+url.PathEscape(args[0])+"/extend", nil, body)
		},
	}
	extend.Flags().StringVar(&reason, "reason", "", "why more time is needed; sent to the partner (required)")
	extend.Flags().IntVar(&days, "days", 0, "days to add to the current due date (GDPR: up to two months, CCPA: up to 45 days)")
	extend.Flags().StringVar(&until, "until", "", "new due date, RFC 3339 or YYYY-MM-DD")
	_ = extend.MarkFlagRequired("reason")

	var (
		asCSV      bool
		from, to   string
		exportStat string
	)
	export := &cobra.Command{
		Use:   "export --csv [--from DATE] [--to DATE] [--status S]",
		Short: "Stream the request register (no identities) as CSV, for auditors (operators)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !asCSV {
				return fmt.Errorf("give --csv (the only export format)")
			}
			q := url.Values{"format": {"csv"}}
			if from != "" {
				q.Set("received_from", from)
			}
			if to != "" {
				q.Set("received_before", to)
			}
			if exportStat != "" {
				q.Set("status", exportStat)
			}
			return c.stream(cmd, "/v1/deletion-requests?"+q.Encode())
		},
	}
	export.Flags().BoolVar(&asCSV, "csv", false, "write CSV (required)")
	export.Flags().StringVar(&from, "from", "", "only requests received at or after this time (RFC 3339 or YYYY-MM-DD)")
	export.Flags().StringVar(&to, "to", "", "only requests received before this time (RFC 3339 or YYYY-MM-DD)")
	export.Flags().StringVar(&exportStat, "status", "", "only requests in this status")
	cmd.AddCommand(submit, get, list, cancel, extend, export)
	addRequestActions(cmd, c)
	return cmd
}

// stream copies a GET answer to stdout as it arrives, with no time limit
// but the server's: a register export may be large.
func (c *apiClient) stream(cmd *cobra.Command, path string) error {
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, strings.TrimRight(c.server, "/")+path, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("call server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(out, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("server answered %d %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("server answered %s", resp.Status)
	}
	if _, err := io.Copy(cmd.OutOrStdout(), resp.Body); err != nil {
		return fmt.Errorf("export cut short: %w", err)
	}
	return nil
}

// do sends one API call and prints the JSON answer. A 4xx/5xx answer is an
// error carrying the server's message, so scripts see a non-zero exit.
func (c *apiClient) do(cmd *cobra.Command, method, path string, hdr http.Header, body any) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.server, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("call server: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(out, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("server answered %d %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("server answered %s", resp.Status)
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, out, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(out)
	}
	pretty.WriteByte('\n')
	_, err = cmd.OutOrStdout().Write(pretty.Bytes())
	return err
}
