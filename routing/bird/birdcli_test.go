package bird

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseConfigureReply(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    ConfigureResult
		wantErr string
	}{
		{name: "reconfigured",
			out:  "BIRD 2.0.12 ready.\nReading configuration from /tmp/b/bird.conf\nReconfigured\n",
			want: Reconfigured},
		{name: "in progress",
			out:  "BIRD 2.0.12 ready.\nReading configuration from /x.conf\nReconfiguration in progress\n",
			want: ReconfigInProgress},
		{name: "queued",
			out:  "BIRD 2.0.12 ready.\nReading configuration from /x.conf\nReconfiguration already in progress, queueing\n",
			want: ReconfigQueued},
		{name: "syntax error",
			out:     "BIRD 2.0.12 ready.\nReading configuration from /tmp/bx/bad.conf\n/tmp/bx/bad.conf:2:10 syntax error, unexpected CF_SYM_UNDEFINED\n",
			wantErr: "/tmp/bx/bad.conf:2:10: syntax error, unexpected CF_SYM_UNDEFINED"},
		{name: "no socket",
			out:     "Unable to connect to server control socket (/tmp/bx/nosock): No such file or directory\n",
			wantErr: "Unable to connect to server control socket (/tmp/bx/nosock): No such file or directory"},
		{name: "shutting down",
			out:     "BIRD 2.0.12 ready.\nShutdown in progress\n",
			wantErr: "Shutdown in progress"},
		{name: "empty", wantErr: "empty reply from birdc configure"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfigureReply(tc.out)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff(tc.wantErr, gotErr); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if got != tc.want {
				t.Errorf("result = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseNeighbors(t *testing.T) {
	out := "BIRD 2.0.12 ready.\n" +
		"o:\n" +
		"Router ID   \tPri\t     State     \tDTime\tInterface  Router IP\n" +
		"10.99.0.2   \t  1\tExStart/PtP  \t 2.960\tbxa        10.99.0.2\n" +
		"ospf6:\n" +
		"Router ID   \tPri\t     State     \tDTime\tInterface  Router IP\n" +
		"10.99.0.3   \t  1\tFull/PtP  \t 2.974\tbxb        fe80::1\n"
	want := []Neighbor{
		{Protocol: "o", RouterID: "10.99.0.2", Priority: 1, State: "ExStart/PtP", Interface: "bxa", Address: "10.99.0.2"},
		{Protocol: "ospf6", RouterID: "10.99.0.3", Priority: 1, State: "Full/PtP", Interface: "bxb", Address: "fe80::1"},
	}
	got := parseNeighbors(out)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseNeighbors (-want +got):\n%s", diff)
	}
	if !got[0].Stuck() || got[1].Stuck() {
		t.Errorf("Stuck: got %v, %v; want true, false", got[0].Stuck(), got[1].Stuck())
	}
}

func TestScanMTUMismatches(t *testing.T) {
	log := "2026-11-25 00:44:08.334 <INFO> Started\n" +
		"2026-11-25 00:44:09.344 <RMT> o: MTU mismatch with nbr 10.99.0.2 on bxa (remote 9000, local 1500)\n" +
		"2026-11-25 00:44:14.344 <RMT> o: MTU mismatch with nbr 10.99.0.2 on bxa (remote 9000, local 1500)\n" +
		"Nov 25 00:44:14 host bird: ospfv2: MTU mismatch with nbr 10.0.0.9 on eth1 (remote 9000, local 1500)\n"
	got, err := ScanMTUMismatches(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	want := []MTUMismatch{
		{Protocol: "o", Neighbor: "10.99.0.2", Interface: "bxa", Remote: 9000, Local: 1500},
		{Protocol: "ospfv2", Neighbor: "10.0.0.9", Interface: "eth1", Remote: 9000, Local: 1500},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ScanMTUMismatches (-want +got):\n%s", diff)
	}
}

func TestCheckReportsFileLine(t *testing.T) {
	requireBird(t)
	file := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(file, []byte("router id 10.0.0.1;\nprotocol device {\n}\nprotocol bogus x {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Check(context.Background(), "bird", file)
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("Check: got %v, want a *ConfigError", err)
	}
	if ce.File != file || ce.Line != 4 {
		t.Errorf("Check: got %s, want %s:4:...", ce, file)
	}
}

func TestCheckData(t *testing.T) {
	requireBird(t)
	if err := CheckData(context.Background(), "bird", "out.conf", mustRender(t, v4Config(), nil)); err != nil {
		t.Errorf("CheckData of a generated config: %v", err)
	}
	err := CheckData(context.Background(), "bird", "out.conf", []byte("router id 10.0.0.1;\nprotocol nope {}\n"))
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.File != "out.conf" || ce.Line != 2 {
		t.Errorf("CheckData of a bad config: got %v, want out.conf:2:...", err)
	}
}

func TestCheckGeneratedIgnoreMTU(t *testing.T) {
	requireBird(t)
	cfg := v4Config()
	cfg.OSPF[0].IgnoreMTU = true
	data := mustRender(t, cfg, nil)
	if err := CheckGenerated(context.Background(), cfg, "out.conf", data); !errors.Is(err, ErrIgnoreMTUUnsupported) {
		t.Errorf("CheckGenerated with stock bird: got %v, want ErrIgnoreMTUUnsupported", err)
	}
	cfg.Bird = patchedBird(t)
	if err := CheckGenerated(context.Background(), cfg, "out.conf", data); err != nil {
		t.Errorf("CheckGenerated with the patched bird: %v", err)
	}
}

func TestProbeIgnoreMTU(t *testing.T) {
	requireBird(t)
	tests := []struct {
		name string
		bird func(t *testing.T) string
		want bool
	}{
		{name: "stock", bird: func(*testing.T) string { return "bird" }, want: false},
		{name: "patched", bird: func(t *testing.T) string { return patchedBird(t) }, want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ProbeIgnoreMTU(context.Background(), tc.bird(t))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("ProbeIgnoreMTU = %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := ProbeIgnoreMTU(context.Background(), "/nonexistent/bird"); err == nil {
		t.Error("ProbeIgnoreMTU with a missing binary: no error")
	}
}

func TestNewRefusesIgnoreMTUOnStockBird(t *testing.T) {
	requireBird(t)
	cfg := v4Config()
	cfg.ConfigFile = filepath.Join(t.TempDir(), "bird.conf")
	cfg.OSPF[0].IgnoreMTU = true
	_, err := New(context.Background(), cfg, nil)
	if !errors.Is(err, ErrIgnoreMTUUnsupported) {
		t.Fatalf("New with ignore_mtu on stock bird: got %v, want ErrIgnoreMTUUnsupported", err)
	}
	for _, s := range []string{"ignoremtu patch", "make bird-ignoremtu"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	cfg.Bird = patchedBird(t)
	a, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("New with ignore_mtu on the patched bird: %v", err)
	}
	a.Abandon()
}
