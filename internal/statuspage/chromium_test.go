package statuspage

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// chromium runs Debian's headless Chromium on url with the flags this
// machine needs (no sandbox as root, nothing that phones home) and extra.
func chromium(t *testing.T, bin, url string, extra ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars", "--user-data-dir=" + t.TempDir(),
	}, extra...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", extra, err, stderr.String())
	}
	return stdout.Bytes()
}

// TestPageInChromium renders the page in a real browser: the DOM Chromium
// builds must carry everything checkDOM asks of the server's HTML, and a
// screenshot is kept for a person to look at (the path is logged, and a
// copy goes to .cache/statuspage/ in the repository).
func TestPageInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (Debian package chromium; make deps installs it)")
	}
	h, _ := newFakePage(t, 36)
	srv := httptest.NewServer(h)
	defer srv.Close()
	url := srv.URL + "/status"

	dom := chromium(t, bin, url, "--dump-dom")
	doc, err := html.Parse(bytes.NewReader(dom))
	if err != nil {
		t.Fatal(err)
	}
	checkDOM(t, doc)

	shot := filepath.Join(t.TempDir(), "statuspage.png")
	chromium(t, bin, url, "--window-size=1400,1760", "--screenshot="+shot)
	data, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if len(data) < 20_000 || !bytes.HasPrefix(data, []byte("\x89PNG")) {
		t.Fatalf("screenshot %s: %d bytes, not a rendered page", shot, len(data))
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(data))
	keep := filepath.Join("..", "..", ".cache", "statuspage", "statuspage.png")
	if err := os.MkdirAll(filepath.Dir(keep), 0o755); err == nil {
		if err := copyFile(shot, keep); err == nil {
			abs, _ := filepath.Abs(keep)
			t.Logf("screenshot kept: %s", abs)
		}
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
