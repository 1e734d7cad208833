package membership

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// logAdapter turns serf's and memberlist's "[LEVEL] who: message" lines
// into slog records at the matching level.
type logAdapter struct {
	log *slog.Logger
}

func (a *logAdapter) logger(lib string) *log.Logger {
	return log.New(&logWriter{log: a.log.With("lib", lib)}, "", 0)
}

type logWriter struct {
	log *slog.Logger
}

var levelPrefixes = []struct {
	prefix []byte
	level  slog.Level
}{
	{[]byte("[DEBUG] "), slog.LevelDebug},
	{[]byte("[INFO] "), slog.LevelInfo},
	{[]byte("[WARN] "), slog.LevelWarn},
	{[]byte("[ERR] "), slog.LevelError},
	{[]byte("[ERROR] "), slog.LevelError},
}

func (w *logWriter) Write(p []byte) (int, error) {
	line := bytes.TrimRight(p, "\n")
	level := slog.LevelInfo
	for _, lp := range levelPrefixes {
		if rest, ok := bytes.CutPrefix(line, lp.prefix); ok {
			level, line = lp.level, rest
			break
		}
	}
	w.log.Log(context.Background(), level, string(line))
	return len(p), nil
}
