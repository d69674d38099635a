package httprecipe_test

import (
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/connector/httprecipe"
)

// TestBuiltinRecipesLoad: every recipe in the tree passes the checks a
// target's recipe gets at config load.
func TestBuiltinRecipesLoad(t *testing.T) {
	t.Parallel()
	names := httprecipe.Builtin()
	if len(names) < 11 {
		t.Fatalf("built-in recipes: %v", names)
	}
	for _, n := range names {
		r, err := httprecipe.Load(n)
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if r.Name != n {
			t.Errorf("%s: recipe names itself %q", n, r.Name)
		}
	}
}

// TestRecipeErrors: a broken recipe is refused with every problem, each
// naming its field and line.
func TestRecipeErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, doc string
		want      []string
	}{
		{"unknown field", "format: 1\nname: x\nidentities: {email: e}\nerase:\n  steps:\n    - path: /d\n      methd: POST\n",
			[]string{"erase.steps[0].methd: unknown field", "(line 7)"}},
		{"unknown variable", "format: 1\nname: x\nidentities: {email: e}\nerase:\n  steps:\n    - method: POST\n      path: /d/{{vaule}}\n",
			[]string{"erase.steps[0].path: unknown variable {{vaule}}", "(line 7)"}},
		{"unknown variable in body", "format: 1\nname: x\nidentities: {email: e}\nerase:\n  steps:\n    - path: /d\n      body:\n        a: \"{{settings.tok}}\"\n",
			[]string{"erase.steps[0].body: unknown variable {{settings.tok}}", "(line 8)"}},
		{"status map", "format: 1\nname: x\nidentities: {email: e}\nerase:\n  steps:\n    - path: /d\n      capture: {job: $.id}\nstatus:\n  request: {path: \"/s/{{job}}\"}\n  value: $.state\n  map: {OK: finished}\n",
			[]string{"status.map.OK: must be done, pending, failed or partial", "status.map: maps no value to done", "(line 11)"}},
		{"bad path", "format: 1\nname: x\nidentities: {email: e}\nerase:\n  steps:\n    - path: /d\n      capture: {job: data.id}\n",
			[]string{`erase.steps[0].capture.job: must be a path starting with "$"`, "(line 7)"}},
		{"auth", "format: 1\nname: x\nidentities: {email: e}\nauth:\n  - type: bearer\n  - type: hmac\n    header: X-Sig\n    secret: s\n    digest: b32\nerase:\n  steps:\n    - path: /d\n",
			[]string{"auth[0].token: is required for bearer", "auth[1].digest: must be hex or base64", "(line 5)", "(line 9)"}},
		{"secret default", "format: 1\nname: x\nsettings:\n  key: {secret: true, default: abc}\nidentities: {email: e}\nerase:\n  steps:\n    - path: /d\n",
			[]string{"settings.key: a secret has no default", "(line 4)"}},
		{"unknown on status", "format: 1\nname: x\nidentities: {email: e}\nerase:\n  steps:\n    - path: /d\n      capture: {job: $.id}\nstatus:\n  request: {path: \"/s/{{job}}\", unknown: [404]}\n  value: $.state\n  map: {OK: done}\n",
			[]string{"status.request.unknown: only erase steps, lookups and verify calls"}},
		{"lookup type", "format: 1\nname: x\nidentities: {email: e}\nlookup:\n  identities: [phone]\n  request: {path: \"/u?q={{value}}\"}\n  records: $[*]\n  id: $.id\nerase:\n  steps:\n    - path: \"/d/{{value}}\"\n",
			[]string{`lookup.identities[0]: "phone" is not in identities`}},
	}
	for _, c := range cases {
		_, err := httprecipe.Parse([]byte(c.doc), "recipe test")
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error does not say %q:\n%v", c.name, w, err)
			}
		}
	}
}

// TestPaths: the JSONPath subset recipes use.
func TestPaths(t *testing.T) {
	t.Parallel()
	doc := `{"data":{"regulateId":"r1"},"users":[{"id":1,"s":"done"},{"id":2,"s":"pending"},{"id":3}],"a b":{"c":true}}`
	for path, want := range map[string]string{
		"$.data.regulateId":        "r1",
		"$.users[*].id":            "1 2 3",
		"$.users[1].id":            "2",
		"$.users[?s==done].id":     "1",
		"$.users[?@.s!='done'].id": "2 3",
		"$['a b'].c":               "true",
		"$.missing":                "",
		"$.users[7].id":            "",
	} {
		got, err := httprecipe.EvalPath(path, []byte(doc))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	for _, bad := range []string{"data.id", "$.users[x]", "$.users[?s]", "$..id"} {
		if _, err := httprecipe.EvalPath(bad, []byte(doc)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
