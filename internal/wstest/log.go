package wstest

import (
	"context"
	"log/slog"
	"sync"
)

// LogRecorder is a slog.Handler that keeps every record, for asserting log events. It is
// safe for concurrent use.
type LogRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

// NewLogger returns a logger that records into a new LogRecorder, and the recorder.
func NewLogger() (*slog.Logger, *LogRecorder) {
	r := &LogRecorder{}
	return slog.New(r), r
}

// Enabled reports true: every level is recorded.
func (r *LogRecorder) Enabled(context.Context, slog.Level) bool { return true }

// WithAttrs returns r itself: the attributes are not recorded.
func (r *LogRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }

// WithGroup returns r itself: groups are not recorded.
func (r *LogRecorder) WithGroup(string) slog.Handler { return r }

// Handle keeps a copy of rec.
func (r *LogRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}

// Events returns the records with the given message, in order, each as a map of its
// attributes plus its level under "level".
func (r *LogRecorder) Events(msg string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, rec := range r.records {
		if rec.Message != msg {
			continue
		}
		m := map[string]any{"level": rec.Level}
		rec.Attrs(func(a slog.Attr) bool {
			m[a.Key] = a.Value.Any()
			return true
		})
		out = append(out, m)
	}
	return out
}

// Messages returns the messages of all records, in order.
func (r *LogRecorder) Messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.records))
	for i, rec := range r.records {
		out[i] = rec.Message
	}
	return out
}
