// Package statuspage renders vipd's read-only status page: the node's VIPs
// with their facets and reasons, the drain's progress, routing sessions,
// cluster members and the dataplane counters with small live graphs. It is
// rendered on the server from an api.Status with html/template: no
// scripts, no external assets, no forms, nothing that writes. Phase 2
// mounts it on the metrics listener next to /metrics.
//
// The graphs are inline SVG sparklines of each counter's rate, computed
// from a small ring of samples the Handler keeps. Samples are taken by Run
// (every Options.Interval) and by requests when the newest sample is older
// than that, so the page has history when it is first opened and stays
// live while it is watched.
package statuspage

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/api"
)

// Defaults for Options.
const (
	DefaultInterval = 5 * time.Second
	DefaultSamples  = 60 // five minutes at the default interval
)

// Options configure a Handler. The zero value is usable.
type Options struct {
	// Interval between samples, and the page's refresh period.
	// Default DefaultInterval.
	Interval time.Duration
	// Samples is how many samples the ring keeps (the sparklines' width
	// in points). Default DefaultSamples.
	Samples int
	// Now is the clock; default time.Now. Tests pass a fake one.
	Now func() time.Time
	// Logger; default a null logger.
	Logger hclog.Logger
}

// sample is the dataplane counters at one time.
type sample struct {
	at       time.Time
	counters map[string]uint64
}

// Handler serves the status page. It is safe for concurrent use.
type Handler struct {
	status func(context.Context) (api.Status, error)
	opts   Options
	log    hclog.Logger

	mu       sync.Mutex // guards everything below
	ring     []sample   // oldest first, at most opts.Samples
	last     api.Status // the last status read without error
	lastRead time.Time  // when it was read
}

// New returns a Handler reading the node's status from status (the daemon's
// own snapshot; the same the control API serves).
func New(status func(context.Context) (api.Status, error), opts Options) *Handler {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Samples < 2 {
		opts.Samples = DefaultSamples
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Handler{status: status, opts: opts, log: log.Named("statuspage")}
}

// Run samples the counters every Interval until ctx ends.
func (h *Handler) Run(ctx context.Context) {
	t := time.NewTicker(h.opts.Interval)
	defer t.Stop()
	for {
		if _, err := h.Sample(ctx); err != nil {
			h.log.Debug("sampling status failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sample reads the status once, records its counters in the ring and
// returns it.
func (h *Handler) Sample(ctx context.Context) (api.Status, error) {
	st, err := h.status(ctx)
	if err != nil {
		return st, fmt.Errorf("reading status: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.keepLocked(st)
	h.recordLocked(st)
	return st, nil
}

func (h *Handler) keepLocked(st api.Status) {
	h.last, h.lastRead = st, h.opts.Now()
}

func (h *Handler) recordLocked(st api.Status) {
	if st.Dataplane == nil || st.Dataplane.Counters == nil {
		return
	}
	s := sample{at: h.opts.Now(), counters: make(map[string]uint64, len(st.Dataplane.Counters))}
	for k, v := range st.Dataplane.Counters {
		s.counters[k] = v
	}
	h.ring = append(h.ring, s)
	if n := len(h.ring) - h.opts.Samples; n > 0 {
		h.ring = append(h.ring[:0], h.ring[n:]...)
	}
}

// ServeHTTP renders the page for GET and HEAD; anything else is refused.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the status page is read-only", http.StatusMethodNotAllowed)
		return
	}
	st, err := h.statusForPage(r.Context())
	h.mu.Lock()
	stale := time.Time{}
	if err != nil && !h.lastRead.IsZero() {
		// Show the last good status under the error: what the node
		// was doing is still the best guess an operator has.
		st, stale = h.last, h.lastRead
	}
	v := buildView(st, err, stale, h.ring, h.opts)
	h.mu.Unlock()
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, v); err != nil {
		h.log.Error("rendering status page", "error", err)
		http.Error(w, "rendering the status page failed", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	// Nothing but this document and its inline styles: no scripts, no
	// fetches, no form targets, no framing.
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
	code := http.StatusOK
	if err != nil {
		code = http.StatusServiceUnavailable
	}
	w.WriteHeader(code)
	if r.Method == http.MethodGet {
		w.Write(buf.Bytes())
	}
}

// statusForPage takes a fresh sample when the newest one is older than the
// interval (nobody runs Run, or it lags), else reads the status without
// recording it, so reloads do not crowd the ring.
func (h *Handler) statusForPage(ctx context.Context) (api.Status, error) {
	h.mu.Lock()
	stale := len(h.ring) == 0 || h.opts.Now().Sub(h.ring[len(h.ring)-1].at) >= h.opts.Interval
	h.mu.Unlock()
	if stale {
		return h.Sample(ctx)
	}
	st, err := h.status(ctx)
	if err != nil {
		return st, fmt.Errorf("reading status: %w", err)
	}
	h.mu.Lock()
	h.keepLocked(st)
	h.mu.Unlock()
	return st, nil
}

//go:embed page.html
var pageHTML string

var pageTemplate = template.Must(template.New("page").Parse(pageHTML))
