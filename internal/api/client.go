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
	"net/url"
	"os"
	"strconv"
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

// Routes reads what each routing session is sent.
func (c *Client) Routes(ctx context.Context) (Routes, error) {
	var r Routes
	return r, c.do(ctx, http.MethodGet, "/v1/routes", nil, &r)
}

// Table returns how vip's forwarding table divides its rows.
func (c *Client) Table(ctx context.Context, vip netip.Addr) (Table, error) {
	var t Table
	return t, c.do(ctx, http.MethodGet, "/v1/table?"+url.Values{"vip": {vip.String()}}.Encode(), nil, &t)
}

// Lookup asks where the XDP program sends one flow.
func (c *Client) Lookup(ctx context.Context, req LookupRequest) (Lookup, error) {
	q := url.Values{"vip": {req.VIP.String()}, "client": {req.Client.String()}}
	if req.Port != 0 {
		q.Set("port", strconv.Itoa(int(req.Port)))
	}
	if req.Protocol != "" {
		q.Set("protocol", req.Protocol)
	}
	var l Lookup
	return l, c.do(ctx, http.MethodGet, "/v1/lookup?"+q.Encode(), nil, &l)
}

// Config returns the configuration vipd runs, defaults filled in.
func (c *Client) Config(ctx context.Context) (EffectiveConfig, error) {
	var e EffectiveConfig
	return e, c.do(ctx, http.MethodGet, "/v1/config", nil, &e)
}

// Events streams vipd's events to fn, first the last recent ones, until
// ctx ends (nil), fn returns an error (returned), vipd cuts the stream
// (an error) or the connection fails.
func (c *Client) Events(ctx context.Context, recent int, fn func(Event) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://vipd/v1/events?recent="+strconv.Itoa(recent), nil)
	if err != nil {
		return err
	}
	// No overall timeout: the stream lasts as long as the caller wants.
	hc := &http.Client{Transport: c.hc.Transport}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return c.explain(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("vipd: %s", e.Error)
		}
		return fmt.Errorf("vipd: %s", resp.Status)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var e Event
		if err := dec.Decode(&e); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return errors.New("vipd ended the event stream (it stopped or restarted)")
			}
			return fmt.Errorf("reading events from vipd: %w", err)
		}
		if e.Subject == SubjectStream && e.What == "lost" {
			return fmt.Errorf("vipd cut the event stream: %s", e.Reason)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}
