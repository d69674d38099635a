package main

import "testing"

func TestRole(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in, dialect string
		ok          bool
	}{
		{"all", "sqlite", true},
		{"all", "postgres", true},
		{"api", "postgres", true},
		{"worker", "postgres", true},
		{"api", "sqlite", false},
		{"worker", "sqlite", false},
		{"both", "postgres", false},
		{"", "postgres", false},
	} {
		r, err := parseRole(tt.in)
		if err == nil {
			err = checkRole(r, tt.dialect)
		}
		if (err == nil) != tt.ok {
			t.Errorf("role %q on %s: %v, want ok %v", tt.in, tt.dialect, err, tt.ok)
		}
	}
	if !roleAPI.servesAPI() || roleAPI.works() || roleWorker.servesAPI() || !roleWorker.works() || !roleAll.servesAPI() || !roleAll.works() {
		t.Error("role capabilities are wrong")
	}
}
