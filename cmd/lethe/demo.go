package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/clients"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/profile/connect"
	"github.com/lethe-privacy/lethe/internal/profile/s2s"
	"github.com/lethe-privacy/lethe/internal/store/sqlite"
)

// Files the demo keeps beside lethe's database.
const (
	// defaultDemoDB is the demo's database when --db is not given: every
	// file the demo makes (database, key, shop, config, state, receipt)
	// goes into this one folder, never loose in the working directory.
	defaultDemoDB  = "./lethe-demo/lethe.db"
	demoShopFile   = "demo-shop.db"
	demoConfigFile = "lethe-demo.yaml"
	// demoStateFile holds what the demo generated (admin token, hash key,
	// the demo client's credentials) so a second start prints a
	// walkthrough that still works. Plaintext, 0600: it is a demo's.
	demoStateFile  = "lethe-demo.json"
	demoClientName = "demo-shop"
)

type demoState struct {
	AdminToken string           `json:"admin_token,omitempty"` // empty when LETHE_ADMIN_TOKEN is set
	HashKey    string           `json:"hash_key"`
	Client     *clients.Created `json:"client,omitempty"`
}

// setupDemo prepares everything `serve --demo` serves: the shop database,
// its data map in a config file that serve then loads like any other
// (g.configPath points at it), an admin token and a client. It is
// idempotent: a second start reuses all of it. Then it prints the
// walkthrough to out.
func setupDemo(ctx context.Context, g *globals, listen string, out io.Writer, log *slog.Logger) error {
	if g.configPath != "" {
		return errors.New("--demo writes and uses its own configuration; leave out --config")
	}
	db := g.db
	if db == "" {
		db = defaultDemoDB
		// serve then opens the same database through the demo's config.
	}
	dir := "."
	if !isPostgresURL(db) {
		dir = filepath.Dir(db)
		abs, err := filepath.Abs(db)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		db = abs
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	statePath := filepath.Join(dir, demoStateFile)
	state, err := loadDemoState(statePath)
	if err != nil {
		return err
	}
	adminToken, fromEnv := g.env("LETHE_ADMIN_TOKEN")
	if !fromEnv || adminToken == "" {
		fromEnv = false
		if state.AdminToken == "" {
			state.AdminToken = demoSecret(24)
		}
		adminToken = state.AdminToken
	}
	if state.HashKey == "" {
		state.HashKey = demoSecret(32)
	}

	// The shop.
	shopPath := filepath.Join(dir, demoShopFile)
	if err := sqlite.CreatePrivateFile(shopPath); err != nil {
		return fmt.Errorf("demo shop: %w", err)
	}
	dsn := "file:" + shopPath + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_txlock=immediate"
	shop, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("demo shop: %w", err)
	}
	defer shop.Close()
	counts, seeded, err := demo.Create(ctx, shop, "sqlite", demo.DefaultPeople)
	if err != nil {
		return err
	}
	if seeded {
		fmt.Fprintf(out, "Created the demo shop %s: %d users, %d addresses, %d orders, %d order items, %d support tickets, %d invoices.\n",
			shopPath, counts["users"], counts["addresses"], counts["orders"], counts["order_items"], counts["support_tickets"], counts["invoices"])
	} else {
		fmt.Fprintf(out, "Reusing the demo shop %s.\n", shopPath)
	}
	customers, err := demo.Customers(ctx, shop, 3)
	if err != nil {
		return err
	}

	// The config: written each start from the state, so it always matches
	// it; loaded by serve through the same path as a real deployment's.
	var b strings.Builder
	b.WriteString("# Written by `lethe serve --demo` at every start; edits are lost.\n")
	b.WriteString("# It holds the demo's admin token and hash key: keep it private.\n")
	if !isPostgresURL(db) {
		fmt.Fprintf(&b, "db: %s\n", quoteJSON(db))
	}
	if fromEnv {
		b.WriteString("admin_token: ${LETHE_ADMIN_TOKEN}\n")
	} else {
		fmt.Fprintf(&b, "admin_token: %s\n", quoteJSON(adminToken))
	}
	b.WriteString("targets:\n")
	b.WriteString(demo.TargetYAML("sqlite", dsn, state.HashKey))
	configPath := filepath.Join(dir, demoConfigFile)
	if err := writePrivate(configPath, []byte(b.String())); err != nil {
		return err
	}
	g.configPath = configPath

	// The client, created once; its credentials are kept in the state
	// file, since lethe itself keeps no readable copy.
	if err := ensureDemoClient(ctx, g, db, &state, out, log); err != nil {
		return err
	}
	if err := saveDemoState(statePath, state); err != nil {
		return err
	}
	return printWalkthrough(out, walkthrough{
		Dir:        dir,
		URL:        "http://" + dialAddr(listen),
		AdminToken: adminToken,
		Config:     configPath,
		Client:     state.Client,
		Customers:  customers,
	})
}

func ensureDemoClient(ctx context.Context, g *globals, db string, state *demoState, out io.Writer, log *slog.Logger) error {
	st, keys, err := openStore(ctx, db, g.env, log, 0)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := migrate(ctx, st); err != nil {
		return err
	}
	svc, err := clients.New(st, keys, clients.Config{})
	if err != nil {
		return err
	}
	_, err = svc.Get(ctx, demoClientName)
	switch {
	case err == nil:
		if state.Client == nil {
			fmt.Fprintf(out, "The client %q exists but its credentials are not in %s; the s2s and connect steps are left out.\n", demoClientName, demoStateFile)
		}
		return nil
	case lethe.ErrorCode(err) != lethe.ENOTFOUND:
		return err
	}
	c, err := svc.Create(ctx, clients.CreateParams{Name: demoClientName})
	if err != nil {
		return err
	}
	state.Client = &c
	fmt.Fprintln(out, "Created the demo client (its credentials, as `lethe clients create` prints them):")
	return printJSON(out, c)
}

func loadDemoState(path string) (demoState, error) {
	var s demoState
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("demo state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("demo state %s: %w (delete it to start over)", path, err)
	}
	return s, nil
}

func saveDemoState(path string, s demoState) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("demo state: %w", err)
	}
	return writePrivate(path, append(b, '\n'))
}

// writePrivate writes a file only its owner can read, replacing it
// atomically so a crash never leaves half a config.
func writePrivate(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func demoSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

func quoteJSON(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// dialAddr turns a listen address into one curl can reach: an empty or
// unspecified host is this machine.
func dialAddr(listen string) string {
	if listen == "" {
		listen = "127.0.0.1:8080"
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

type walkthrough struct {
	Dir        string // the demo's folder, where the receipt goes
	URL        string
	AdminToken string
	Config     string
	Client     *clients.Created
	Customers  []demo.Customer
}

// Section titles of the walkthrough; tests find the blocks by them.
const (
	walkNative  = "# 1. Native API"
	walkS2S     = "# 2. S2S API"
	walkConnect = "# 3. Connect API"
	walkReceipt = "# 4. Receipt"
)

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// printWalkthrough prints copy-paste commands for bash: each numbered
// block runs on its own, given the exports at the top.
func printWalkthrough(out io.Writer, w walkthrough) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	native := w.Customers[0]
	body := fmt.Sprintf(`{"identities":[{"type":"email","value":%s}]}`, quoteJSON(native.Email))
	p("")
	p("lethe demo: copy and paste into bash once the server says \"lethe serving\".")
	p("")
	// The names of the CLI's own variables (--server, --token), so the
	// lethe commands below and curl read the same ones.
	p("export LETHE_SERVER=%s LETHE_TOKEN=%s", shellQuote(w.URL), shellQuote(w.AdminToken))
	p("")
	p("%s: erase demo customer %d by email", walkNative, native.ID)
	p("# What would it do? (nothing changes)")
	p(`curl -sS -X POST "$LETHE_SERVER/v1/deletion-requests?dry_run=true" -H "Authorization: Bearer $LETHE_TOKEN" -H 'Content-Type: application/json' -d %s; echo`, shellQuote(body))
	p("# Submit it, keeping the request id:")
	p(`ID=$(curl -sS -X POST "$LETHE_SERVER/v1/deletion-requests" -H "Authorization: Bearer $LETHE_TOKEN" -H 'Content-Type: application/json' -d %s | sed -n 's/^{"id":"\([^"]*\)".*/\1/p'); echo "request $ID"`, shellQuote(body))
	p("# Wait until it has finished (a few seconds), then show it with its per-table counts:")
	p(`until curl -sS "$LETHE_SERVER/v1/deletion-requests/$ID" -H "Authorization: Bearer $LETHE_TOKEN" | grep -Eq '"status":"(completed|failed)"'; do sleep 1; done`)
	p(`curl -sS "$LETHE_SERVER/v1/deletion-requests/$ID" -H "Authorization: Bearer $LETHE_TOKEN"; echo`)
	p("# The rows are gone; only the invoices are retained (tax law). lethe must be on PATH (go install ./cmd/lethe):")
	p(`lethe plan --config %s --identity %s`, shellQuote(w.Config), shellQuote("email:"+native.Email))
	if w.Client != nil && len(w.Customers) >= 3 {
		user := w.Customers[1]
		s2sBody := fmt.Sprintf(`{"user_id":%s}`, quoteJSON(strconv.FormatInt(user.ID, 10)))
		p("")
		p("%s: erase demo customer %d by user id (signed with the client's shared secret)", walkS2S, user.ID)
		p(`curl -sS -X POST "$LETHE_SERVER%s" -H %s -H %s -H 'Content-Type: application/json' -d %s; echo`,
			s2s.Path, shellQuote("X-API-KEY: "+w.Client.APIKey), shellQuote("Authorization: "+s2s.Sign([]byte(s2sBody), []byte(w.Client.Secret))), shellQuote(s2sBody))
		p("# The signature is the hex HMAC-SHA256 of the exact body; to sign another:")
		p(`#   printf '%%s' '{"user_id":"7"}' | openssl dgst -sha256 -hmac %s`, shellQuote(w.Client.Secret))

		phone := w.Customers[2]
		tokenBody := fmt.Sprintf(`{"client_id":%s,"client_secret":%s,"grant_type":"client_credentials"}`, quoteJSON(w.Client.ClientID), quoteJSON(w.Client.ClientSecret))
		identifier := phone.Phone
		if identifier == "" {
			identifier = phone.Email
		}
		p("")
		p("%s: erase demo customer %d by phone number, with an OAuth token", walkConnect, phone.ID)
		p(`TOKEN=$(curl -sS -X POST "$LETHE_SERVER%s" -H 'Content-Type: application/json' -d %s | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')`, connect.PathToken, shellQuote(tokenBody))
		p(`curl -sS -X POST "$LETHE_SERVER%s" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d %s; echo`,
			connect.PathDelete, shellQuote(fmt.Sprintf(`{"identifier":%s}`, quoteJSON(identifier))))
		p(`curl -sS -X POST "$LETHE_SERVER%s" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d %s; echo`,
			connect.PathStatus, shellQuote(fmt.Sprintf(`{"identifiers":[%s]}`, quoteJSON(identifier))))
	}
	p("")
	p("%s: the signed receipt of the request of step 1, checked offline with the published keys", walkReceipt)
	receipt, keys := filepath.Join(w.Dir, "receipt.json"), filepath.Join(w.Dir, "signing-keys.json")
	p(`curl -sS "$LETHE_SERVER/v1/deletion-requests/$ID/receipt" -H "Authorization: Bearer $LETHE_TOKEN" > %s`, shellQuote(receipt))
	p(`curl -sS "$LETHE_SERVER/v1/signing-keys" > %s`, shellQuote(keys))
	p(`lethe receipt verify %s --keys-file %s`, shellQuote(receipt), shellQuote(keys))
	p("")
	p("# Every request, newest first:")
	p(`curl -sS "$LETHE_SERVER/v1/deletion-requests" -H "Authorization: Bearer $LETHE_TOKEN"; echo`)
	p("")
	_, err := io.WriteString(out, b.String())
	return err
}
