package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestDockerfile checks what the image rests on without needing a Docker
// daemon: the Dockerfile builds with CGO_ENABLED=0 onto scratch under the
// image name deploy/kubernetes.yaml runs. That such a build is static
// (no dynamic loader, no shared libraries) .ci/run checks once per run: a
// second build of every package with cgo off is too slow for a test.
func TestDockerfile(t *testing.T) {
	root := filepath.Join("..", "..")
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	dockerfile, k8s := read("Dockerfile"), read(filepath.Join("deploy", "kubernetes.yaml"))
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(dockerfile, -1)
	if len(froms) == 0 || froms[len(froms)-1][1] != "scratch" {
		t.Errorf("the Dockerfile's last stage is not FROM scratch: %q", froms)
	}
	if !regexp.MustCompile(`(?m)CGO_ENABLED=0 go build .*\./cmd/lethe`).MatchString(dockerfile) {
		t.Error("the Dockerfile does not build ./cmd/lethe with CGO_ENABLED=0")
	}
	tag := regexp.MustCompile(`docker build -t (\S+)`).FindStringSubmatch(dockerfile)
	images := regexp.MustCompile(`(?m)^\s*image:\s*(\S+)`).FindAllStringSubmatch(k8s, -1)
	if tag == nil || len(images) == 0 {
		t.Fatalf("no image name in the Dockerfile (%q) or deploy/kubernetes.yaml (%q)", tag, images)
	}
	for _, m := range images {
		if m[1] != tag[1] {
			t.Errorf("deploy/kubernetes.yaml runs %s, the Dockerfile builds %s", m[1], tag[1])
		}
	}
}
