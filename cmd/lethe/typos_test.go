package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestTyposFail walks the whole command tree: a misspelt subcommand, a
// group given no subcommand and a command given stray arguments all exit
// with an error (a misspelling naming the command meant) and touch nothing.
func TestTyposFail(t *testing.T) {
	var groups, leaves []*cobra.Command
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() {
			groups = append(groups, c)
		} else {
			leaves = append(leaves, c)
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRootCmd(nil, nil, os.LookupEnv))
	if len(groups) < 5 || len(leaves) < 15 {
		t.Fatalf("walked %d groups and %d leaves; the tree is bigger", len(groups), len(leaves))
	}

	// path is a command's words after "lethe".
	path := func(c *cobra.Command) []string { return strings.Fields(c.CommandPath())[1:] }
	check := func(t *testing.T, args []string, want ...string) {
		t.Helper()
		dir := t.TempDir()
		db := filepath.Join(dir, "lethe.db")
		_, err := runLethe(t, cliDB{db: db}, append(args, "--db", db)...)
		if err == nil {
			t.Fatalf("lethe %s succeeded", strings.Join(args, " "))
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("lethe %s: %v; want it to say %q", strings.Join(args, " "), err, w)
			}
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("lethe %s created %d files", strings.Join(args, " "), len(entries))
		}
	}
	for _, g := range groups {
		for _, sub := range g.Commands() {
			name := sub.Name()
			if len(name) < 4 {
				continue
			}
			// Swap the last two letters: "disable" -> "disabel".
			typo := name[:len(name)-2] + string(name[len(name)-1]) + string(name[len(name)-2])
			if typo == name {
				continue
			}
			t.Run(strings.Join(append(path(g), typo), "_"), func(t *testing.T) {
				check(t, append(path(g), typo, "x"), "unknown command", "did you mean "+name)
			})
		}
		if g.HasParent() {
			t.Run(strings.Join(path(g), "_")+"_bare", func(t *testing.T) {
				check(t, path(g), "needs a subcommand")
			})
		}
	}
	for _, l := range leaves {
		t.Run(strings.Join(path(l), "_")+"_stray", func(t *testing.T) {
			check(t, append(path(l), "stray1", "stray2", "stray3", "stray4", "stray5"), "usage: "+l.UseLine())
		})
	}
	// The two typos reported by users.
	check(t, []string{"clients", "disabel", "X"}, "did you mean disable")
	check(t, []string{"keys", "rotate-signin"}, "did you mean rotate-signing")
}
