package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Paths served by the state handler.
const (
	StatePath   = "/state"
	HealthzPath = "/healthz"
)

// shutdownTimeout bounds how long ListenAndServe waits for in-flight requests.
const shutdownTimeout = 5 * time.Second

// HandlerOption configures NewHandler.
type HandlerOption func(*handlerConfig)

type handlerConfig struct {
	keys *Keyring
	now  func() time.Time
}

// SignWith has the handler serve the document signed with the signing key
// of keys, signed anew for every request so its timestamp is fresh (a
// poller refuses a signature older than its skew tolerance). now is the
// clock (nil: time.Now).
func SignWith(keys *Keyring, now func() time.Time) HandlerOption {
	return func(c *handlerConfig) {
		c.keys, c.now = keys, now
		if c.now == nil {
			c.now = time.Now
		}
	}
}

// NewHandler returns the read-only HTTP handler peers poll: GET (or
// HEAD) /state answers the JSON document returned by get (signed, with
// SignWith), /healthz answers 200 "ok"; any other method is 405 and any
// other path 404; a document of generation 0 (none decided yet) is 503.
// get is called once per request, from the server's
// goroutines, so it must be safe for concurrent use (typically it returns
// a copy held by the controller).
func NewHandler(get func() NodeState, opts ...HandlerOption) http.Handler {
	var cfg handlerConfig
	for _, o := range opts {
		o(&cfg)
	}
	encode := func(st NodeState) ([]byte, error) { return json.Marshal(st) }
	if cfg.keys != nil {
		// An empty keyring (no key file during a rollout) serves the plain
		// document; a key set by a reload signs from the next request on.
		encode = func(st NodeState) ([]byte, error) {
			if cfg.keys.Empty() {
				return json.Marshal(st)
			}
			return cfg.keys.Seal(st, cfg.now())
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc(StatePath, func(w http.ResponseWriter, r *http.Request) {
		if !readOnly(w, r) {
			return
		}
		st := get()
		if st.Generation == 0 {
			// Before the node's first decision (a start still adopting):
			// an empty document would read as every VIP inactive. A miss
			// is what it is; a restarting node is held by its peers.
			http.Error(w, "no node state yet: vipd is starting", http.StatusServiceUnavailable)
			return
		}
		body, err := encode(st)
		if err != nil {
			http.Error(w, "encoding node state: "+err.Error(), http.StatusInternalServerError)
			return
		}
		body = append(body, '\n')
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(body)
	})
	mux.HandleFunc(HealthzPath, func(w http.ResponseWriter, r *http.Request) {
		if !readOnly(w, r) {
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// readOnly sets the headers every answer carries and rejects methods other
// than GET and HEAD. It reports whether the request may go on.
func readOnly(w http.ResponseWriter, r *http.Request) bool {
	// A cached state is a wrong state: peers must always see the live one.
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only: use GET", http.StatusMethodNotAllowed)
		return false
	}
	return true
}

// ListenAndServe listens on the TCP address addr ("host:port") and serves h
// until ctx is done, then shuts down gracefully (in-flight requests get a few
// seconds). It returns nil after a clean shutdown.
func ListenAndServe(ctx context.Context, addr string, h http.Handler) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for node state on %s: %w", addr, err)
	}
	return Serve(ctx, ln, h)
}

// Serve is ListenAndServe on a listener the caller opened (tests use port 0). It
// closes ln.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc: // Serve failed on its own (listener closed under it)
		return fmt.Errorf("serving node state on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("shutting down node state server on %s: %w", ln.Addr(), err)
	}
	return nil
}
