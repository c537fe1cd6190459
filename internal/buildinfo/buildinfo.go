// Package buildinfo says which vipd this is: the version stamped at link
// time by 'make build' and 'make package' (-ldflags -X), the VCS revision
// and the Go toolchain. vipd, vipctl and the vipd_build_info metric all read
// it from here so the three can never disagree.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version and revision are set with -ldflags "-X
// github.com/vipd/vipd/internal/buildinfo.version=V -X ...revision=R" (the
// Makefile does). A plain 'go build' leaves them empty and Get falls back to
// what the Go toolchain recorded, which is nothing when -buildvcs=false.
var version, revision string

// Info is one build's identity.
type Info struct {
	// Version is the release or package version ("0.0~git20261203.9d4f200"),
	// or "devel" for an unstamped build.
	Version string
	// Revision is the VCS commit, with "-dirty" when the tree had changes,
	// or "unknown" when the build recorded none (go test, go run).
	Revision string
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// Get returns this binary's build identity.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	in := fromBuildInfo(version, bi)
	if revision != "" {
		in.Revision = revision
	}
	return in
}

// fromBuildInfo is Get with its inputs passed in, for tests.
func fromBuildInfo(stamped string, bi *debug.BuildInfo) Info {
	in := Info{Version: stamped, Revision: "unknown", GoVersion: runtime.Version()}
	if bi == nil {
		if in.Version == "" {
			in.Version = "devel"
		}
		return in
	}
	if bi.GoVersion != "" {
		in.GoVersion = bi.GoVersion
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && in.Revision != "unknown" {
		in.Revision += "-dirty"
	}
	if in.Version == "" {
		// A module version is only meaningful when built from a module
		// download (go install ...@v1.2.3); inside the repository it is
		// "(devel)" or a pseudo-version of no use to an operator.
		in.Version = "devel"
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			in.Version = v
		}
	}
	return in
}

// String is the one line --version prints: "0.0~git20261203.9d4f200
// (revision 9d4f200..., go1.26.8)".
func (i Info) String() string {
	return fmt.Sprintf("%s (revision %s, %s)", i.Version, i.Revision, i.GoVersion)
}
