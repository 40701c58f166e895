package bus

import (
	"context"
	"fmt"
	"log/slog"
)

// natsLogger routes the embedded server's log lines into slog.
type natsLogger struct{ l *slog.Logger }

// Notices (the start banner, config echo) go to debug: Faultline logs its
// own start line.
func (n natsLogger) Noticef(format string, v ...any) {
	if n.l.Enabled(context.Background(), slog.LevelDebug) {
		n.l.Debug(fmt.Sprintf(format, v...))
	}
}
func (n natsLogger) Warnf(format string, v ...any)  { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n natsLogger) Fatalf(format string, v ...any) { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Errorf(format string, v ...any) { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Debugf(format string, v ...any) {
	if n.l.Enabled(context.Background(), slog.LevelDebug) {
		n.l.Debug(fmt.Sprintf(format, v...))
	}
}
func (n natsLogger) Tracef(format string, v ...any) {
	if n.l.Enabled(context.Background(), slog.LevelDebug-4) {
		n.l.Log(context.Background(), slog.LevelDebug-4, fmt.Sprintf(format, v...))
	}
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
