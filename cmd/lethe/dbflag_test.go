package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNormaliseDB(t *testing.T) {
	for in, want := range map[string]string{
		"./lethe.db":                        "./lethe.db",
		"/var/lib/lethe/lethe.db":           "/var/lib/lethe/lethe.db",
		"lethe.db":                          "lethe.db",
		`C:\lethe\lethe.db`:                 `C:\lethe\lethe.db`,
		"sqlite:./data/lethe.db":            "./data/lethe.db",
		"sqlite:///var/lib/lethe.db":        "/var/lib/lethe.db",
		"file:lethe.db?_pragma=foo(1)":      "file:lethe.db?_pragma=foo(1)",
		"postgres://u@h/db":                 "postgres://u@h/db",
		"postgresql://u:p@h:5432/db?x=1":    "postgresql://u:p@h:5432/db?x=1",
		"POSTGRES://u@h/db":                 "POSTGRES://u@h/db",
		"postgresql-typo://x":               "",
		"mysql://user:hunter2@y/db":         "",
		"mysql:hunter2@tcp(y)/db":           "",
		"redis://h:6379/0":                  "",
		"postgres:u@h/db":                   "",
		"sqlite:":                           "",
		"":                                  "",
		"   ":                               "",
		"http://example.com/lethe.db":       "",
		"sqlserver://sa:hunter2@h?database": "",
	} {
		got, err := normaliseDB(in)
		if want == "" {
			if err == nil {
				t.Errorf("normaliseDB(%q) = %q, want an error", in, got)
			} else if strings.Contains(err.Error(), "hunter2") || (len(in) > 12 && strings.Contains(err.Error(), in)) {
				t.Errorf("normaliseDB(%q): error echoes the setting: %v", in, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("normaliseDB(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestMisspeltDBCreatesNothing: a database setting with a wrong scheme,
// from the flag, the environment or the config file, is an error for
// every command, and nothing is created.
func TestMisspeltDBCreatesNothing(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		file string
	}{
		{name: "flag", args: []string{"serve", "--db", "postgresql-typo://x"}},
		{name: "env", args: []string{"serve"}, env: map[string]string{"LETHE_DB": "mysql://y"}},
		{name: "env for clients", args: []string{"clients", "list"}, env: map[string]string{"LETHE_DB": "mysql://y"}},
		{name: "flag for migrate", args: []string{"migrate", "--db", "mysql:y"}},
		{name: "demo", args: []string{"serve", "--demo", "--db", "postgresql-typo://x"}},
		{name: "file", args: []string{"serve"}, file: "db: \"mysql://y\"\n"},
		{name: "flag over file", args: []string{"serve", "--db", "mysql://y"}, file: "db: lethe.db\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			args := c.args
			if c.file != "" {
				cfg := filepath.Join(dir, "lethe.yaml")
				if err := os.WriteFile(cfg, []byte(c.file), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", cfg)
			}
			_, err := runLethe(t, cliDB{env: c.env}, args...)
			if err == nil || !strings.Contains(err.Error(), "db") || !strings.Contains(err.Error(), "scheme") {
				t.Fatalf("lethe %v: %v; want a db scheme error", args, err)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.Name() != "lethe.yaml" {
					t.Errorf("lethe %v created %s", args, e.Name())
				}
			}
		})
	}
}

// TestConfigErrorsInOnePass: problems of the file and of every target's
// options come in one report, each target named once per line, and no
// DSN, URL or password is echoed.
func TestConfigErrorsInOnePass(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	cfg := filepath.Join(dir, "lethe.yaml")
	if err := os.WriteFile(cfg, []byte(`db: "mysql://u:hunter2@h/db"
listen: "nope"
targets:
  - name: shop
    kind: sql
    driver: postgres
    tables: []
  - name: cache
    kind: redis
    url: "redis://:hunter2@127.0.0.1:6379/0"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := runLethe(t, cliDB{}, "serve", "--config", cfg)
	if err == nil {
		t.Fatal("serve accepted an invalid configuration")
	}
	msg := err.Error()
	for _, want := range []string{"listen:", "db:", `target "shop":`, `target "cache":`} {
		if !strings.Contains(msg, want) {
			t.Errorf("the report lacks %q:\n%s", want, msg)
		}
	}
	for _, never := range []string{"hunter2", "mysql://", `target "shop": target "shop"`, `target "cache": target "cache"`} {
		if strings.Contains(msg, never) {
			t.Errorf("the report holds %q:\n%s", never, msg)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("an invalid configuration created files: %d entries", len(entries))
	}
}
