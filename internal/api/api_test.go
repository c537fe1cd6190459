package api

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	"github.com/vipd/vipd/vip"
)

type fakeBackend struct {
	mu     sync.Mutex
	drains []string
}

func (f *fakeBackend) Status(context.Context) (Status, error) {
	return Status{Node: "n1", Phase: "active", VIPs: []vip.VIPStatus{{
		Addr: netip.MustParseAddr("198.51.100.10"), Programmed: true, Advertised: true, Bound: true, Reason: "serving",
	}}}, nil
}

func (f *fakeBackend) VIPs() []VIP {
	return []VIP{{Name: "web", Addr: "198.51.100.10", Services: []string{"tcp/80"}}}
}

func (f *fakeBackend) record(op string, req DrainRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := op + " node"
	if req.VIP != nil {
		if req.VIP.String() == "192.0.2.99" {
			return errors.New("unknown vip 192.0.2.99")
		}
		s = op + " " + req.VIP.String()
	}
	f.drains = append(f.drains, s)
	return nil
}

func (f *fakeBackend) Drain(r DrainRequest) error   { return f.record("drain", r) }
func (f *fakeBackend) Undrain(r DrainRequest) error { return f.record("undrain", r) }
func (f *fakeBackend) Restart() error               { return f.record("restart", DrainRequest{}) }

func startServer(t *testing.T) (string, *fakeBackend) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "vipd.sock")
	b := &fakeBackend{}
	s, err := Listen(hclog.NewNullLogger(), path, b)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close(context.Background()) })
	return path, b
}

func TestRoundTrip(t *testing.T) {
	path, b := startServer(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	c := NewClient(path)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Node != "n1" || len(st.VIPs) != 1 || !st.VIPs[0].Advertised {
		t.Errorf("status = %+v", st)
	}
	vips, err := c.VIPs(ctx)
	if err != nil || len(vips) != 1 || vips[0].Name != "web" {
		t.Errorf("vips = %+v, %v", vips, err)
	}
	a := netip.MustParseAddr("198.51.100.10")
	if err := c.Drain(ctx, DrainRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Drain(ctx, DrainRequest{VIP: &a}); err != nil {
		t.Fatal(err)
	}
	if err := c.Undrain(ctx, DrainRequest{}); err != nil {
		t.Fatal(err)
	}
	bad := netip.MustParseAddr("192.0.2.99")
	err = c.Drain(ctx, DrainRequest{VIP: &bad})
	if err == nil || !strings.Contains(err.Error(), "unknown vip 192.0.2.99") {
		t.Errorf("drain of unknown vip: %v", err)
	}
	want := []string{"drain node", "drain 198.51.100.10", "undrain node"}
	if d := cmp.Diff(want, b.drains); d != "" {
		t.Errorf("backend calls (-want +got):\n%s", d)
	}
}

func TestSecondServerRefused(t *testing.T) {
	path, _ := startServer(t)
	_, err := Listen(hclog.NewNullLogger(), path, &fakeBackend{})
	if !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Listen: %v, want ErrAlreadyRunning", err)
	}
	// The first server still answers.
	if _, err := NewClient(path).Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vipd.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays, nobody listens: a crashed vipd
	s, err := Listen(hclog.NewNullLogger(), path, &fakeBackend{})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	s.Close(context.Background())
}

func TestClientErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := NewClient(filepath.Join(dir, "none.sock")).Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "vipd is not running: no socket at") {
		t.Errorf("missing socket: %v", err)
	}
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	_, err = NewClient(stale).Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "stale socket") {
		t.Errorf("stale socket: %v", err)
	}
}
