package request

import "context"

type ctxKey int

const idKey ctxKey = iota

// WithID returns ctx carrying id, the request id the server gave the
// request being served.
func WithID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, idKey, id)
}

// ID returns the id of the request being served ("" outside the server),
// for log lines of every surface.
func ID(ctx context.Context) string {
	id, _ := ctx.Value(idKey).(string)
	return id
}
