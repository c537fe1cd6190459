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
	"syscall"
	"time"
)

// Client talks to a vipd over its unix socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the socket at path. It does not connect.
func NewClient(path string) *Client {
	d := net.Dialer{Timeout: 2 * time.Second}
	return &Client{path: path, hc: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}},
	}}
}

// Status fetches the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	return st, c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
}

// VIPs lists the configured VIPs.
func (c *Client) VIPs(ctx context.Context) ([]VIP, error) {
	var v []VIP
	return v, c.do(ctx, http.MethodGet, "/v1/vips", nil, &v)
}

// Drain starts draining the node (req.VIP nil) or one VIP.
func (c *Client) Drain(ctx context.Context, req DrainRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/drain", req, nil)
}

// Undrain reverses Drain.
func (c *Client) Undrain(ctx context.Context, req DrainRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/undrain", req, nil)
}

// Restart asks vipd to exit for an upgrade without withdrawing anything.
func (c *Client) Restart(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/restart", nil, nil)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://vipd"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.explain(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading answer from vipd: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("vipd: %s", e.Error)
		}
		return fmt.Errorf("vipd: %s", resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding answer from vipd: %w", err)
		}
	}
	return nil
}

// explain turns a dial error into what the operator should do.
func (c *Client) explain(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("vipd is not running: no socket at %s (start vipd, or pass --socket)", c.path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("vipd is not running: nothing listens on %s (stale socket)", c.path)
	case errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EACCES):
		return fmt.Errorf("cannot open %s: permission denied (the socket is mode 0600: run vipctl as root)", c.path)
	}
	return fmt.Errorf("talking to vipd at %s: %w", c.path, err)
}
