package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// A probe runs one check and returns nil when the service is healthy. It
// must return by the time ctx is done.
type probe func(ctx context.Context) error

const (
	// maxHTTPBody is how much of a check response is read (and discarded)
	// so the connection ends cleanly without trusting the server's size.
	maxHTTPBody = 64 << 10
	// maxRedirects a check follows before calling the answer a failure.
	maxRedirects = 3
	// outputTail is how much of a failed command's output goes into the reason.
	outputTail = 200
)

// newProbe returns the probe for cfg (with defaults applied), a short
// description for reasons ("tcp 127.0.0.1:80") and a cleanup function.
func newProbe(cfg CheckConfig) (p probe, desc string, cleanup func(), err error) {
	nop := func() {}
	switch cfg.Type {
	case TypeTCP:
		return tcpProbe(cfg.Target), "tcp " + cfg.Target, nop, nil
	case TypeHTTP:
		client := newCheckClient()
		return httpProbe(client, cfg.URL), "http GET " + cfg.URL, client.CloseIdleConnections, nil
	case TypeCommand:
		return commandProbe(cfg.Command), "command " + cfg.Command[0], nop, nil
	case TypeNone:
		return func(context.Context) error { return nil }, "no check", nop, nil
	}
	return nil, "", nop, fmt.Errorf("unknown check type %q", cfg.Type)
}

func tcpProbe(target string) probe {
	return func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", target)
		if err != nil {
			return err
		}
		return conn.Close()
	}
}

// newCheckClient returns an HTTP client for service checks. Keep-alives are
// off: each check opens a fresh connection, as a new client would, and no
// idle connection outlives the check.
func newCheckClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	tr.Proxy = nil // a local service check must not go through a proxy
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("stopped after %d redirects", maxRedirects)
			}
			return nil
		},
	}
}

func httpProbe(client *http.Client, target string) probe {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "vipd-health")
		resp, err := client.Do(req)
		if err != nil {
			var uerr *url.Error
			if errors.As(err, &uerr) { // drop the `Get "URL":` prefix: desc has it
				err = uerr.Err
			}
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxHTTPBody))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	}
}

func commandProbe(argv []string) probe {
	return func(ctx context.Context) error {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		var out tailBuffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		killGroup(cmd)
		// A grandchild holding stdout open must not keep us waiting.
		cmd.WaitDelay = 100 * time.Millisecond
		err := cmd.Run()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		} else {
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				err = errors.New(exit.ProcessState.String())
			}
		}
		if tail := out.String(); tail != "" {
			return fmt.Errorf("%w: %s", err, tail)
		}
		return err
	}
}

// tailBuffer keeps the last outputTail bytes written to it. It has no lock:
// with the same comparable writer as cmd.Stdout and cmd.Stderr, exec calls
// Write from at most one goroutine at a time.
type tailBuffer struct {
	b []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*outputTail {
		t.b = append(t.b[:0], t.b[len(t.b)-outputTail:]...)
	}
	return len(p), nil
}

// String is the tail on one line, trimmed.
func (t *tailBuffer) String() string {
	b := t.b
	if len(b) > outputTail {
		b = b[len(b)-outputTail:]
	}
	s := strings.TrimSpace(string(b))
	s = strings.Join(strings.Fields(s), " ")
	return s
}

// describe turns a probe error into the short human text of a reason.
func describe(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		msg := fmt.Sprintf("timed out after %v", timeout)
		// keep a command's output tail, which follows the context error
		if s := err.Error(); strings.HasPrefix(s, context.DeadlineExceeded.Error()+": ") {
			msg += ": " + strings.TrimPrefix(s, context.DeadlineExceeded.Error()+": ")
		}
		return msg
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Sprintf("timed out after %v", timeout)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.Error()
	}
	return err.Error()
}
