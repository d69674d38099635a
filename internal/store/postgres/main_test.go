package postgres_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Pools, River's client and goose must all stop what they start.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
