package actor

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"
)

// guestLog turns everything an actor prints (WASI stdout/stderr, waPC
// __console_log, trellis:log) into slog records with the actor's name. It is
// rate-limited per actor, so a guest printing in a loop cannot flood the
// device's log; what is dropped is counted and reported with the next line
// that gets through.
type guestLog struct {
	log *slog.Logger

	mu      sync.Mutex
	tokens  float64
	last    time.Time
	dropped int
}

const (
	guestLogBurst   = 200 // lines
	guestLogRate    = 50  // lines per second, sustained
	guestLineMax    = 4096
	guestPendingMax = 64 << 10
)

func newGuestLog(log *slog.Logger) *guestLog {
	return &guestLog{log: log, tokens: guestLogBurst}
}

// emit logs one line if the rate allows.
func (g *guestLog) emit(ctx context.Context, level slog.Level, stream, line string) {
	if len(line) > guestLineMax {
		line = line[:guestLineMax] + "…"
	}
	g.mu.Lock()
	now := time.Now()
	if !g.last.IsZero() {
		g.tokens += now.Sub(g.last).Seconds() * guestLogRate
		if g.tokens > guestLogBurst {
			g.tokens = guestLogBurst
		}
	}
	g.last = now
	if g.tokens < 1 {
		g.dropped++
		g.mu.Unlock()
		return
	}
	g.tokens--
	dropped := g.dropped
	g.dropped = 0
	g.mu.Unlock()
	if !g.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.String("stream", stream)}
	if dropped > 0 {
		attrs = append(attrs, slog.Int("dropped", dropped))
	}
	g.log.LogAttrs(ctx, level, line, attrs...)
}

// ConsoleLog implements abi.Logger.
func (g *guestLog) ConsoleLog(ctx context.Context, msg string) {
	g.emit(ctx, slog.LevelInfo, "console", msg)
}

// writer returns an io.Writer for a WASI stream that logs whole lines.
func (g *guestLog) writer(stream string, level slog.Level) *lineWriter {
	return &lineWriter{g: g, stream: stream, level: level}
}

// lineWriter buffers a stream's partial line. Instances of one actor share
// it, so it is locked.
type lineWriter struct {
	g      *guestLog
	stream string
	level  slog.Level

	mu  sync.Mutex
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := guestPendingMax - len(w.buf)
			w.buf = append(w.buf, p[:min(room, len(p))]...)
			break
		}
		line := p[:i]
		if len(w.buf) > 0 {
			line = append(w.buf, line...)
			w.buf = w.buf[:0]
		}
		w.g.emit(context.Background(), w.level, w.stream, string(line))
		p = p[i+1:]
	}
	return n, nil
}
