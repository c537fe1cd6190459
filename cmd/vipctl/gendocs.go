package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// genDocsCmd writes vipctl's man pages and shell completions from the
// command tree itself, so the package ships help that cannot drift from the
// binary. Hidden: it is a build step ('make package'), not an operator verb.
func genDocsCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "gendocs DIR",
		Short:  "Write man pages (DIR/man1) and bash, zsh and fish completions (DIR/completions)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return genDocs(root, args[0])
		},
	}
}

func genDocs(root *cobra.Command, dir string) error {
	// The completion command is added lazily by Execute; add it now so the
	// man pages document it too ('vipctl completion bash' is how an
	// operator without the package gets completions).
	root.InitDefaultCompletionCmd()
	root.DisableAutoGenTag = true // no "Auto generated ... on DATE" footer: reproducible pages
	man := filepath.Join(dir, "man1")
	comp := filepath.Join(dir, "completions")
	for _, d := range []string{man, comp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	date := buildDate()
	hdr := &doc.GenManHeader{
		Title:   "VIPCTL",
		Section: "1",
		Source:  "vipd " + root.Version,
		Manual:  "vipd manual",
		Date:    &date,
	}
	if err := doc.GenManTree(root, hdr, man); err != nil {
		return fmt.Errorf("writing man pages: %w", err)
	}
	for name, gen := range map[string]func(*os.File) error{
		"vipctl.bash": func(f *os.File) error { return root.GenBashCompletionV2(f, true) },
		"_vipctl":     func(f *os.File) error { return root.GenZshCompletion(f) },
		"vipctl.fish": func(f *os.File) error { return root.GenFishCompletion(f, true) },
	} {
		if err := writeWith(filepath.Join(comp, name), gen); err != nil {
			return err
		}
	}
	return nil
}

// buildDate is SOURCE_DATE_EPOCH when set (reproducible builds: the package
// build sets it to the commit time), else now.
func buildDate() time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	return time.Now().UTC()
}

func writeWith(path string, gen func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if err := gen(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
