package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenDocs checks that every visible command gets a man page, that the
// hidden generator itself does not, and that each shell's completion names
// vipctl.
func TestGenDocs(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "1764547200")
	if _, stderr, err := vipctl(t, "gendocs", dir); err != nil {
		t.Fatalf("gendocs: %v\n%s", err, stderr)
	}
	for _, page := range []string{"vipctl.1", "vipctl-status.1", "vipctl-drain.1", "vipctl-config-check.1", "vipctl-doctor.1", "vipctl-completion-bash.1",
		"vipctl-routes.1", "vipctl-table.1", "vipctl-lookup.1", "vipctl-events.1", "vipctl-config-show.1"} {
		b, err := os.ReadFile(filepath.Join(dir, "man1", page))
		if err != nil {
			t.Errorf("missing man page: %v", err)
			continue
		}
		if !strings.Contains(string(b), `.TH "VIPCTL" "1" "Dec 2025"`) {
			t.Errorf("%s: header does not carry the section and SOURCE_DATE_EPOCH's date:\n%.200s", page, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "man1", "vipctl-gendocs.1")); err == nil {
		t.Error("the hidden gendocs command got a man page")
	}
	for _, f := range []string{"vipctl.bash", "_vipctl", "vipctl.fish"} {
		b, err := os.ReadFile(filepath.Join(dir, "completions", f))
		if err != nil || !strings.Contains(string(b), "vipctl") {
			t.Errorf("completion %s: %v (%d bytes)", f, err, len(b))
		}
	}
}

func TestVersionFlag(t *testing.T) {
	out, _, err := vipctl(t, "--version")
	if err != nil || !strings.HasPrefix(out, "vipctl ") || !strings.Contains(out, "revision") {
		t.Errorf("vipctl --version = %q, %v", out, err)
	}
}
