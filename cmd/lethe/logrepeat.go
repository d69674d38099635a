package main

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// repeatInterval is how often one repeated warning or error is written.
const repeatInterval = 10 * time.Second

// repeatLimiter is a slog.Handler that writes a warning or error at most
// once per repeatInterval per kind (level, message and the "err"
// attribute): a store that cannot write fails every request the same way,
// and hundreds of identical lines a second would bury everything else.
// The next line of a kind written says how many were left out
// ("suppressed"). Lines below Warn pass untouched.
type repeatLimiter struct {
	next  slog.Handler
	state *repeatState
	now   func() time.Time
}

type repeatState struct {
	mu    sync.Mutex
	kinds map[string]*repeatKind
}

type repeatKind struct {
	written    time.Time
	suppressed int
}

func newRepeatLimiter(next slog.Handler, now func() time.Time) *repeatLimiter {
	return &repeatLimiter{next: next, state: &repeatState{kinds: map[string]*repeatKind{}}, now: now}
}

func (h *repeatLimiter) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *repeatLimiter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	key := strconv.Itoa(int(r.Level)) + "\x00" + r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			key += "\x00" + a.Value.String()
			return false
		}
		return true
	})
	now := h.now()
	h.state.mu.Lock()
	k, ok := h.state.kinds[key]
	if !ok {
		if len(h.state.kinds) > 1000 { // bounded: forget old kinds
			for old, v := range h.state.kinds {
				if now.Sub(v.written) >= repeatInterval {
					delete(h.state.kinds, old)
				}
			}
		}
		k = &repeatKind{}
		h.state.kinds[key] = k
	}
	if ok && now.Sub(k.written) < repeatInterval {
		k.suppressed++
		h.state.mu.Unlock()
		return nil
	}
	suppressed := k.suppressed
	k.written, k.suppressed = now, 0
	h.state.mu.Unlock()
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return h.next.Handle(ctx, r)
}

func (h *repeatLimiter) WithAttrs(as []slog.Attr) slog.Handler {
	return &repeatLimiter{next: h.next.WithAttrs(as), state: h.state, now: h.now}
}

func (h *repeatLimiter) WithGroup(name string) slog.Handler {
	return &repeatLimiter{next: h.next.WithGroup(name), state: h.state, now: h.now}
}
