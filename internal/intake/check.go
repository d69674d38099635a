package intake

import "github.com/lethe-privacy/lethe"

// Check validates sub exactly as Submit does and returns its normalised,
// de-duplicated identities, storing nothing. A dry run uses it so that a
// submission it accepts is one Submit would accept too, and one it refuses
// gets the same error.
func (s *Service) Check(sub Submission) ([]lethe.Identity, error) {
	r, err := s.build(sub)
	if err != nil {
		return nil, err
	}
	return r.Identities, nil
}
