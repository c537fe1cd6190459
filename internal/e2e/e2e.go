// Package e2e holds vipd's end-to-end tests: the real vipd and vipctl
// binaries in network namespaces, against real routing daemons, with real
// XDP and real TCP flows. The package has no non-test code but this comment
// and the helpers below, shared by its tests.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binaries builds vipd, vipctl and the lab tool once per test binary and
// returns the directory holding them.
func Binaries() (string, error) {
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "vipd-e2e-bin")
		if buildErr != nil {
			return
		}
		for _, pkg := range []string{"./cmd/vipd", "./cmd/vipctl", "./examples/lab/labtool"} {
			cmd := exec.Command("go", "build", "-o", buildDir+"/", pkg)
			cmd.Dir = repoRoot()
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("building %s: %v: %s", pkg, err, out)
				return
			}
		}
	})
	return buildDir, buildErr
}

func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}
