package httprecipe

// EvalPath evaluates path over a JSON document, returning its scalars.
func EvalPath(path string, doc []byte) ([]string, error) {
	p, err := compilePath(path)
	if err != nil {
		return nil, err
	}
	v, err := decodeJSON(doc)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, x := range p.eval(v) {
		if s, ok := scalar(x); ok {
			out = append(out, s)
		}
	}
	return out, nil
}
