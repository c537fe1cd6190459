package hostcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixture is a Host read from testdata/<case>/: files under proc/, sys/,
// etc/, lib/ stand for the host's own; `uname` is the kernel release;
// `ethtool.json` is what the ethtool ioctls return per interface; `routes`
// lists the main-table unicast routes, one prefix a line. Tests adjust the
// loaded values and override single files with set.
type fixture struct {
	root    string
	release string
	eth     map[string]fixtureEth
	routes  []netip.Prefix
	files   map[string]string // path -> content, overrides root
	gone    map[string]bool   // path -> removed
	missing map[BPFFeature]bool
}

type fixtureEth struct {
	DriverInfo
	Channels Channels `json:"channels"`
	RxVLAN   *bool    `json:"rxvlan"` // null: driver does not support it
}

func loadFixture(t testing.TB, name string) *fixture {
	t.Helper()
	f := &fixture{
		root:    filepath.Join("testdata", name),
		files:   map[string]string{},
		gone:    map[string]bool{},
		missing: map[BPFFeature]bool{},
	}
	b, err := os.ReadFile(filepath.Join(f.root, "uname"))
	if err != nil {
		t.Fatal(err)
	}
	f.release = strings.TrimSpace(string(b))
	if b, err = os.ReadFile(filepath.Join(f.root, "ethtool.json")); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &f.eth); err != nil {
		t.Fatalf("parsing %s/ethtool.json: %v", f.root, err)
	}
	if b, err = os.ReadFile(filepath.Join(f.root, "routes")); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Fields(string(b)) {
		f.routes = append(f.routes, netip.MustParsePrefix(l))
	}
	return f
}

// set overrides one file's content.
func (f *fixture) set(path, content string) *fixture {
	f.files[path] = content
	return f
}

func (f *fixture) remove(path string) *fixture {
	f.gone[path] = true
	return f
}

func (f *fixture) ReadFile(name string) ([]byte, error) {
	if f.gone[name] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if c, ok := f.files[name]; ok {
		return []byte(c), nil
	}
	b, err := os.ReadFile(filepath.Join(f.root, name))
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.Unwrap(err)}
	}
	return b, nil
}

func (f *fixture) Stat(name string) (fs.FileInfo, error) {
	if f.gone[name] {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	fi, err := os.Stat(filepath.Join(f.root, name))
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: errors.Unwrap(err)}
	}
	return fi, nil
}

func (f *fixture) Glob(pattern string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(f.root, pattern))
	var out []string
	for _, p := range m {
		p = strings.TrimPrefix(p, f.root)
		if !f.gone[p] {
			out = append(out, p)
		}
	}
	for p := range f.files {
		if ok, _ := filepath.Match(pattern, p); ok {
			out = append(out, p)
		}
	}
	return out, err
}

func (f *fixture) KernelRelease() (string, error) { return f.release, nil }

func (f *fixture) ethFor(iface string) (fixtureEth, error) {
	e, ok := f.eth[iface]
	if !ok {
		return e, fmt.Errorf("ethtool on %s: no such device", iface)
	}
	return e, nil
}

func (f *fixture) DriverInfo(iface string) (DriverInfo, error) {
	e, err := f.ethFor(iface)
	return e.DriverInfo, err
}

func (f *fixture) Channels(iface string) (Channels, error) {
	e, err := f.ethFor(iface)
	return e.Channels, err
}

func (f *fixture) RxVLANOffload(iface string) (bool, error) {
	e, err := f.ethFor(iface)
	if err != nil {
		return false, err
	}
	if e.RxVLAN == nil {
		return false, fmt.Errorf("ethtool on %s: %w", iface, ErrUnsupported)
	}
	return *e.RxVLAN, nil
}

func (f *fixture) MTU(iface string) (int, error) {
	return readInt(f, "/sys/class/net/"+iface+"/mtu")
}

func (f *fixture) Routes(v6 bool) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, r := range f.routes {
		if r.Addr().Is6() == v6 {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fixture) ProbeBPF(feat BPFFeature) error {
	if f.missing[feat] {
		return fmt.Errorf("probing %s: %w", feat, ErrUnsupported)
	}
	return nil
}

// The network methods use the real network: tests serve on loopback.

func (f *fixture) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	if network == "unix" && !strings.HasPrefix(address, os.TempDir()) {
		// Never the host's own daemons (/run/bird/bird.ctl).
		return nil, &net.OpError{Op: "dial", Net: network, Err: fs.ErrNotExist}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

func (f *fixture) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, network, address)
}

func (f *fixture) HTTPGet(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
