package connector

import (
	"fmt"

	"github.com/lethe-privacy/lethe"
)

// DefaultFollowLimit is how many root records a value found in a target may
// match and still be followed during resolve (the follow_limit option of
// connectors that implement SubjectResolver): more, and it is a placeholder
// shared by many people, not one person's.
const DefaultFollowLimit = 10

// CheckMatchOptions validates the matching options every connector that
// compares phones and follows values shares, and fills the follow limit's
// default: a default_region must be an ISO 3166 region code, and a
// follow_limit of 0 means DefaultFollowLimit.
func CheckMatchOptions(defaultRegion string, followLimit *int) []error {
	var errs []error
	if defaultRegion != "" && !lethe.ValidPhoneRegion(defaultRegion) {
		errs = append(errs, fmt.Errorf("default_region %q is not a region code (ISO 3166, e.g. GB)", defaultRegion))
	}
	switch {
	case *followLimit == 0:
		*followLimit = DefaultFollowLimit
	case *followLimit < 1:
		errs = append(errs, fmt.Errorf("follow_limit %d must be at least 1", *followLimit))
	}
	return errs
}
