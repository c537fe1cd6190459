package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Daemon is what the server needs from vipd. Implementations must be safe
// for concurrent use.
type Daemon interface {
	Status(ctx context.Context) (Status, error)
	VIPs() []VIP
	Drain(req DrainRequest) error
	Undrain(req DrainRequest) error
	// Restart makes vipd exit for an upgrade WITHOUT withdrawing anything:
	// routes stay at graceful-restart peers, the XDP program keeps
	// forwarding from pinned maps, and the next vipd adopts it all.
	Restart() error
}

// ErrAlreadyRunning: another vipd answers on the socket.
var ErrAlreadyRunning = errors.New("another vipd is already serving this socket")

// Options tune the server. Zero fields take the defaults.
type Options struct {
	// ReadHeaderTimeout, ReadTimeout (headers and body), WriteTimeout
	// (from the end of the headers to the end of the answer) and
	// IdleTimeout (between requests on a kept-alive connection) bound how
	// long one client may hold a connection, and so a file descriptor:
	// a slow or stuck client is cut off.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxBody is the largest request body accepted (413 above).
	MaxBody int64
}

// Defaults of Options.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxBody           = 64 << 10
)

func (o Options) withDefaults() Options {
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&o.ReadHeaderTimeout, DefaultReadHeaderTimeout}, {&o.ReadTimeout, DefaultReadTimeout},
		{&o.WriteTimeout, DefaultWriteTimeout}, {&o.IdleTimeout, DefaultIdleTimeout},
	} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	return o
}

// Server serves the API on a unix socket.
type Server struct {
	log  hclog.Logger
	d    Daemon
	ln   net.Listener
	srv  *http.Server
	path string
	opts Options
}

// Listen creates the socket at path (mode 0600, parent directory created
// 0755). If a vipd already answers there it fails with ErrAlreadyRunning; a
// stale socket file left by a crashed vipd is replaced.
func Listen(log hclog.Logger, path string, d Daemon, opts Options) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w", path, ErrAlreadyRunning)
	} else if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOENT) {
		// Nobody listens: a stale socket from a vipd that died.
		if rmErr := os.Remove(path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			return nil, fmt.Errorf("removing stale socket %s: %w", path, rmErr)
		}
	}
	// Create the socket with no access for anyone but root/owner from the
	// first instant, not just after a chmod.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("setting mode of %s: %w", path, err)
	}
	opts = opts.withDefaults()
	s := &Server{log: log, d: d, ln: ln, path: path, opts: opts}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/vips", s.vips)
	mux.HandleFunc("POST /v1/drain", s.drain(d.Drain))
	mux.HandleFunc("POST /v1/undrain", s.drain(d.Undrain))
	mux.HandleFunc("POST /v1/restart", s.restart)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: opts.ReadHeaderTimeout, ReadTimeout: opts.ReadTimeout,
		WriteTimeout: opts.WriteTimeout, IdleTimeout: opts.IdleTimeout,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	return s, nil
}

// Serve answers requests until Close.
func (s *Server) Serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server and removes the socket.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if rmErr := os.Remove(s.path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		err = errors.Join(err, rmErr)
	}
	return err
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.d.Status(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) vips(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.d.VIPs())
}

// drain serves POST /v1/drain and /v1/undrain. The body must name what to
// drain: an empty body or {} is refused, never taken for the whole node.
func (s *Server) drain(do func(DrainRequest) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, code, err := s.decodeDrain(w, r)
		if err != nil {
			writeError(w, code, err)
			return
		}
		switch err := do(req); {
		case err == nil:
			w.WriteHeader(http.StatusNoContent)
		case errors.Is(err, ErrNotSaved):
			writeError(w, http.StatusInternalServerError, err)
		default:
			writeError(w, http.StatusConflict, err)
		}
	}
}

func (s *Server) decodeDrain(w http.ResponseWriter, r *http.Request) (DrainRequest, int, error) {
	var req DrainRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return req, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", tooBig.Limit)
	case err != nil:
		return req, http.StatusBadRequest, fmt.Errorf("reading request: %w", err)
	case len(bytes.TrimSpace(body)) == 0:
		return req, http.StatusBadRequest, fmt.Errorf("empty request: %w", req.Validate())
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, http.StatusBadRequest, fmt.Errorf("decoding request: %w", err)
	}
	if dec.More() {
		return req, http.StatusBadRequest, errors.New("decoding request: more than one JSON value")
	}
	if err := req.Validate(); err != nil {
		return req, http.StatusBadRequest, err
	}
	return req, 0, nil
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) {
	if err := s.d.Restart(); err != nil {
		writeError(w, http.StatusConflict, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, Error{Error: err.Error()})
}
