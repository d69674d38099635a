package manual_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/connector/manual"
	"github.com/lethe-privacy/lethe/internal/config"
)

// The data map example docs/review.md gives for a manual target loads as
// printed: a newcomer copies it.
func TestReviewDocExampleLoads(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/review.md")
	if err != nil {
		t.Fatal(err)
	}
	var example string
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		if strings.Contains(m[1], "kind: "+manual.Kind) {
			example = m[1]
		}
	}
	if example == "" {
		t.Fatal("docs/review.md has no yaml example of a manual target")
	}
	cfg, err := config.Parse([]byte(example), nil)
	if err != nil {
		t.Fatalf("docs/review.md's manual target does not load: %v", err)
	}
	if len(cfg.Targets) != 1 {
		t.Fatalf("the example has %d targets, want 1", len(cfg.Targets))
	}
	c, err := manual.Info().New(context.Background(), cfg.Targets[0].Connector())
	if err != nil {
		t.Fatalf("docs/review.md's manual target is refused: %v", err)
	}
	if m, ok := c.(*manual.Connector); !ok || m.Manual() == "" || len(m.Objects()) == 0 {
		t.Errorf("the example built %#v, want a manual connector with an owner and objects", c)
	}
}
