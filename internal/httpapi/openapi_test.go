package httpapi

import (
	"encoding/json"
	"github.com/lethe-privacy/lethe/internal/http/request"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestOpenAPIMatchesRoutes: every native route is documented, every
// documented operation is routed to the pattern it names, and the
// document is well-formed OpenAPI 3.1 with bearer auth and the error shape.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.Metrics = http.NotFoundHandler() })

	res := e.do(t, call{method: "GET", path: "/openapi.json"})
	if res.status != http.StatusOK || res.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %q", res.status, res.header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI    string                                `json:"openapi"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			SecuritySchemes map[string]struct {
				Type   string `json:"type"`
				Scheme string `json:"scheme"`
			} `json:"securitySchemes"`
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := unmarshalLoose(res.body, &doc); err != nil {
		t.Fatalf("document does not parse: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	if s := doc.Components.SecuritySchemes["bearerAuth"]; s.Type != "http" || s.Scheme != "bearer" {
		t.Errorf("bearerAuth = %+v", s)
	}
	for _, name := range []string{"Error", "CreateDeletionRequest", "DeletionRequest", "DeletionRequestList", "Task", "ReportItem"} {
		if _, ok := doc.Components.Schemas[name]; !ok {
			t.Errorf("schema %s missing", name)
		}
	}

	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	var routed []string
	for _, rt := range e.srv.routes {
		routed = append(routed, rt.pattern)
	}
	sort.Strings(documented)
	sort.Strings(routed)
	if diff := cmp.Diff(routed, documented); diff != "" {
		t.Errorf("routes (-mux +document):\n%s", diff)
	}
	// The mux itself dispatches each documented operation to its pattern.
	for _, op := range documented {
		method, path, _ := strings.Cut(op, " ")
		r := httptest.NewRequest(method, strings.ReplaceAll(path, "{id}", "0192a5c4-8f6e-7cc1-9d4b-6a1e2f3b4c5d"), nil)
		if _, pattern := e.srv.mux.Handler(r); pattern != op {
			t.Errorf("%s is routed to %q", op, pattern)
		}
	}
}

// TestOpenAPIRefsResolve: every $ref points at a component that exists.
func TestOpenAPIRefsResolve(t *testing.T) {
	t.Parallel()
	var doc map[string]any
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				var cur any = doc
				for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
					m, ok := cur.(map[string]any)
					if !ok {
						cur = nil
						break
					}
					cur = m[part]
				}
				if cur == nil {
					t.Errorf("$ref %s does not resolve", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
}

// unmarshalLoose parses a document with duplicate-key and UTF-8
// checks but without the unknown-member rule (the test reads a subset).
func unmarshalLoose(data []byte, v any) error {
	var whole map[string]any // a map takes every member: only the structure is checked
	if err := request.UnmarshalStrict(data, &whole); err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}
