package config

import (
	"os"
	"path/filepath"
	"testing"
)

// exampleFiles lists examples/*.toml (the files `vipctl config check
// examples/*.toml` checks).
func exampleFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("../../examples/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no examples/*.toml found")
	}
	return files
}

// TestExamplesLoad proves every shipped example (and the reference) is a
// valid configuration.
func TestExamplesLoad(t *testing.T) {
	for _, f := range exampleFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := Load(f)
			if err != nil {
				t.Fatalf("Load(%s):\n%v", f, err)
			}
			if len(cfg.VIPs) == 0 || len(cfg.Cluster.Members) == 0 {
				t.Errorf("Load(%s): no VIPs or members", f)
			}
		})
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
