package bird

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func requireBird(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("bird"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("bird not installed and CI=true: apt-get install bird2")
		}
		t.Skip("bird not installed (apt-get install bird2)")
	}
}

var (
	patchedOnce sync.Once
	patchedPath string
	patchedErr  error
)

// patchedBird returns the BIRD built with the ignoremtu patch, building it
// with scripts/bird-ignoremtu.sh (cached under .cache/) the first time.
func patchedBird(t testing.TB) string {
	t.Helper()
	requireBird(t)
	patchedOnce.Do(func() {
		if p := os.Getenv("VIPD_BIRD_IGNOREMTU"); p != "" {
			patchedPath = p
			return
		}
		script, err := filepath.Abs("../../scripts/bird-ignoremtu.sh")
		if err != nil {
			patchedErr = err
			return
		}
		t.Logf("building (or reusing) the patched BIRD with %s; a cold build takes 1-2 min", script)
		cmd := exec.Command(script)
		// Progress goes to the terminal too: a cold build takes minutes.
		cmd.Stderr = io.MultiWriter(os.Stderr, testWriter{t})
		out, err := cmd.Output()
		if err != nil {
			patchedErr = err
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		patchedPath = lines[len(lines)-1]
	})
	if patchedErr != nil {
		if os.Geteuid() != 0 && os.Getenv("CI") != "true" {
			// Without root the script cannot install its build deps.
			t.Skipf("no patched BIRD (build it with `make bird-ignoremtu` as root): %v", patchedErr)
		}
		t.Fatalf("building the patched BIRD: %v", patchedErr)
	}
	return patchedPath
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func asConfigError(err error, target **ConfigError) bool {
	return errors.As(err, target)
}

func osexec(argv ...string) ([]byte, error) {
	return exec.Command(argv[0], argv[1:]...).CombinedOutput()
}

// fakeControl stands in for BIRD's control socket: it greets like BIRD,
// records every command and answers each with reply(command), a reply in
// the socket's own format ("0002-Reading ...\n0003 Reconfigured\n").
type fakeControl struct {
	path  string
	reply func(cmd string) string

	mu    sync.Mutex
	calls []string
}

// configureOK answers every configure with Reconfigured.
func configureOK(cmd string) string {
	return "0002-Reading configuration\n0003 Reconfigured\n"
}

// configureRefused answers every configure with a syntax error at line.
func configureRefused(line string) func(string) string {
	return func(string) string { return "0002-Reading configuration\n8002 " + line + "\n" }
}

func newFakeControl(t testing.TB, reply func(cmd string) string) *fakeControl {
	t.Helper()
	f := &fakeControl{path: filepath.Join(t.TempDir(), "bird.ctl"), reply: reply}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeControl) serve(c net.Conn) {
	defer c.Close()
	if _, err := io.WriteString(c, "0001 BIRD 2.0.12 ready.\n"); err != nil {
		return
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimSpace(line)
		f.mu.Lock()
		f.calls = append(f.calls, cmd)
		reply := f.reply
		f.mu.Unlock()
		if _, err := io.WriteString(c, reply(cmd)); err != nil {
			return
		}
	}
}

// count returns how many commands started with prefix.
func (f *fakeControl) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}
