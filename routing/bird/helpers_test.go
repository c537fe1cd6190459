package bird

import (
	"errors"
	"io"
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
