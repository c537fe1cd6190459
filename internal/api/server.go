package api

import (
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

// Server serves the API on a unix socket.
type Server struct {
	log  hclog.Logger
	d    Daemon
	ln   net.Listener
	srv  *http.Server
	path string
}

// Listen creates the socket at path (mode 0600, parent directory created
// 0755). If a vipd already answers there it fails with ErrAlreadyRunning; a
// stale socket file left by a crashed vipd is replaced.
func Listen(log hclog.Logger, path string, d Daemon) (*Server, error) {
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
	s := &Server{log: log, d: d, ln: ln, path: path}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/vips", s.vips)
	mux.HandleFunc("POST /v1/drain", s.drain(d.Drain))
	mux.HandleFunc("POST /v1/undrain", s.drain(d.Undrain))
	mux.HandleFunc("POST /v1/restart", s.restart)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
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

func (s *Server) drain(do func(DrainRequest) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req DrainRequest
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err == nil && len(body) > 0 {
			err = json.Unmarshal(body, &req)
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("decoding request: %w", err))
			return
		}
		if err := do(req); err != nil {
			writeError(w, http.StatusConflict, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
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
