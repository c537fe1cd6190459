package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFromBuildInfo(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	for _, tc := range []struct {
		name    string
		stamped string
		bi      *debug.BuildInfo
		want    Info
	}{
		{"stamped wins over the module version", "1.2.3",
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v9.9.9"}, Settings: vcs("abc", "false")},
			Info{Version: "1.2.3", Revision: "abc", GoVersion: "go1.26.8"}},
		{"dirty tree is said", "1.2.3",
			&debug.BuildInfo{GoVersion: "go1.26.8", Settings: vcs("abc", "true")},
			Info{Version: "1.2.3", Revision: "abc-dirty", GoVersion: "go1.26.8"}},
		{"go install of a tagged module", "",
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.3.0"}},
			Info{Version: "v0.3.0", Revision: "unknown", GoVersion: "go1.26.8"}},
		{"plain go build in the repository", "",
			&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs("abc", "false")},
			Info{Version: "devel", Revision: "abc", GoVersion: "go1.26.8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, fromBuildInfo(tc.stamped, tc.bi)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestGetNeverEmpty(t *testing.T) {
	in := Get()
	if in.Version == "" || in.Revision == "" || !strings.HasPrefix(in.GoVersion, "go") {
		t.Errorf("Get() = %+v: every field must be set", in)
	}
}
