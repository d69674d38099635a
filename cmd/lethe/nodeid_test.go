package main

import (
	"strings"
	"testing"
)

// TestDefaultNodeID: stable for one host and listen address, different
// for another address, none for a system-chosen port, and within River's
// 100 characters.
func TestDefaultNodeID(t *testing.T) {
	a, b := defaultNodeID("127.0.0.1:8080"), defaultNodeID("127.0.0.1:8081")
	if a == "" || a != defaultNodeID("127.0.0.1:8080") || a == b {
		t.Errorf("ids %q and %q: want stable and distinct per address", a, b)
	}
	if id := defaultNodeID("127.0.0.1:0"); id != "" {
		t.Errorf("a system-chosen port gave the id %q", id)
	}
	long := defaultNodeID("[" + strings.Repeat("a", 120) + "]:8080")
	if len(long) > 100 || long == defaultNodeID("["+strings.Repeat("a", 119)+"b]:8080") {
		t.Errorf("long id %q (%d characters): want at most 100 and still distinct", long, len(long))
	}
}
