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
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
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
	// Routes reads the routing daemon back: what each session is sent.
	Routes(ctx context.Context) (Routes, error)
	// Table returns how a VIP's forwarding table divides its rows
	// (ErrUnknownVIP for an address this node has no VIP for).
	Table(ctx context.Context, vip netip.Addr) (Table, error)
	// Lookup returns where the XDP program sends one flow
	// (ErrUnknownVIP, ErrNotSupported).
	Lookup(ctx context.Context, req LookupRequest) (Lookup, error)
	// Events returns the last recent events and a channel of the next
	// ones; stop ends the subscription (the channel is closed) and says
	// whether vipd had cut it off first for lagging behind.
	Events(recent int) (past []Event, next <-chan Event, stop func() (lost bool))
	// Config returns the config vipd runs, defaults filled in.
	Config() (EffectiveConfig, error)
}

// LookupRequest names one flow to a VIP (GET /v1/lookup?vip=V&client=C
// [&port=P][&protocol=tcp|udp]).
type LookupRequest struct {
	VIP netip.Addr
	// Client is the flow's source address and port (port 0 when not
	// given: a flow from port 0).
	Client netip.AddrPort
	// Port is the destination port; 0 takes the VIP's first service.
	Port uint16
	// Protocol is "tcp" or "udp"; empty takes the VIP's first service's.
	Protocol string
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
	// closing is closed when the server shuts down: event streams end.
	closing   chan struct{}
	closeOnce sync.Once
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
	mux.HandleFunc("GET /v1/routes", s.routes)
	mux.HandleFunc("GET /v1/table", s.table)
	mux.HandleFunc("GET /v1/lookup", s.lookup)
	mux.HandleFunc("GET /v1/events", s.events)
	mux.HandleFunc("GET /v1/config", s.config)
	s.closing = make(chan struct{})
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: opts.ReadHeaderTimeout, ReadTimeout: opts.ReadTimeout,
		WriteTimeout: opts.WriteTimeout, IdleTimeout: opts.IdleTimeout,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	// Shutdown waits for handlers to return: end the event streams.
	s.srv.RegisterOnShutdown(func() { s.closeOnce.Do(func() { close(s.closing) }) })
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

func (s *Server) routes(w http.ResponseWriter, r *http.Request) {
	rs, err := s.d.Routes(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, rs)
}

// vipParam reads the vip query parameter.
func vipParam(r *http.Request) (netip.Addr, error) {
	v := r.URL.Query().Get("vip")
	if v == "" {
		return netip.Addr{}, errors.New(`missing query parameter "vip"`)
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Addr{}, fmt.Errorf(`query parameter "vip": %q is not an address`, v)
	}
	return a, nil
}

func (s *Server) table(w http.ResponseWriter, r *http.Request) {
	a, err := vipParam(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	t, err := s.d.Table(r.Context(), a)
	if err != nil {
		writeError(w, errorCode(err), err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) lookup(w http.ResponseWriter, r *http.Request) {
	req, err := lookupRequest(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	l, err := s.d.Lookup(r.Context(), req)
	if err != nil {
		writeError(w, errorCode(err), err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

func lookupRequest(r *http.Request) (LookupRequest, error) {
	a, err := vipParam(r)
	if err != nil {
		return LookupRequest{}, err
	}
	req := LookupRequest{VIP: a}
	q := r.URL.Query()
	c := q.Get("client")
	if c == "" {
		return req, errors.New(`missing query parameter "client"`)
	}
	if ap, err := netip.ParseAddrPort(c); err == nil {
		req.Client = ap
	} else if addr, err := netip.ParseAddr(c); err == nil {
		req.Client = netip.AddrPortFrom(addr, 0)
	} else {
		return req, fmt.Errorf(`query parameter "client": %q is not ADDRESS or ADDRESS:PORT ([v6]:port)`, c)
	}
	if p := q.Get("port"); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return req, fmt.Errorf(`query parameter "port": %q is not a port 1-65535`, p)
		}
		req.Port = uint16(n)
	}
	switch p := q.Get("protocol"); p {
	case "", "tcp", "udp":
		req.Protocol = p
	default:
		return req, fmt.Errorf(`query parameter "protocol": %q is not tcp or udp`, p)
	}
	return req, nil
}

// errorCode maps a daemon error of a read-only request to its status.
func errorCode(err error) int {
	switch {
	case errors.Is(err, ErrUnknownVIP):
		return http.StatusNotFound
	case errors.Is(err, ErrNotSupported):
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError
}

func (s *Server) config(w http.ResponseWriter, r *http.Request) {
	c, err := s.d.Config()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// events streams GET /v1/events: one JSON Event per line, flushed as it
// happens, until the client goes away or vipd stops. ?recent=N first
// replays the last N events (at most 256). A reader that falls too far
// behind gets a last line with subject "stream", what "lost".
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	recent := 0
	if v := r.URL.Query().Get("recent"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf(`query parameter "recent": %q is not a count`, v))
			return
		}
		recent = n
	}
	past, next, stop := s.d.Events(recent)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	rc := http.NewResponseController(w)
	// The read timeout is the request's; left on the connection it would
	// end the stream's context when it expires.
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	// The server's write timeout is for answers, not for a stream: each
	// line gets its own.
	write := func(e Event) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
		if enc.Encode(e) != nil {
			return false
		}
		return rc.Flush() == nil
	}
	for _, e := range past {
		if !write(e) {
			return
		}
	}
	// The headers go out now even with nothing to replay: the client
	// knows it is subscribed.
	_ = rc.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	if rc.Flush() != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		case e, ok := <-next:
			if !ok {
				stopped = true
				if stop() {
					write(Event{Time: time.Now().UTC(), Subject: SubjectStream, What: "lost",
						Reason: "the reader fell too far behind; reconnect to go on"})
				}
				return
			}
			if !write(e) {
				return
			}
		}
	}
}
