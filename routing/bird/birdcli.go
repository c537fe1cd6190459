package bird

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ConfigError is an error BIRD reported about a configuration file.
type ConfigError struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// birdErrLine matches `bird: FILE:LINE:COL msg` (bird -p) and
// `FILE:LINE:COL msg` (birdc configure).
var birdErrLine = regexp.MustCompile(`^(?:bird: )?(\S.*?):(\d+):(\d+) (.+)$`)

func parseConfigError(line string) (*ConfigError, bool) {
	m := birdErrLine.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		return nil, false
	}
	l, _ := strconv.Atoi(m[2])
	c, _ := strconv.Atoi(m[3])
	return &ConfigError{File: m[1], Line: l, Col: c, Msg: m[4]}, true
}

// Check validates file with `bird -p -c file` (parses the configuration and
// exits; starts nothing). A rejected file gives a *ConfigError
// ("file:line:col: msg").
func Check(ctx context.Context, birdBinary, file string) error {
	if birdBinary == "" {
		birdBinary = "bird"
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, birdBinary, "-p", "-c", file)
	cmd.WaitDelay = time.Second
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	err := cmd.Run()
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("running %s -p: %w", birdBinary, err)
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if ce, ok := parseConfigError(line); ok {
			return ce
		}
	}
	return fmt.Errorf("checking %s with %s -p: %w: %s", file, birdBinary, err, strings.TrimSpace(stderr.String()))
}

// CheckData validates data as a BIRD configuration with `bird -p`, through
// a temporary file; errors name the file as name ("name:line:col: msg").
// `vipctl bird-config --check` uses it for what it writes to stdout.
func CheckData(ctx context.Context, birdBinary, name string, data []byte) error {
	f, err := os.CreateTemp("", "vipd-bird-*.conf")
	if err != nil {
		return fmt.Errorf("checking bird config: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("checking bird config: %w", err)
	}
	return renameInError(Check(ctx, birdBinary, f.Name()), f.Name(), name)
}

// renameInError makes a *ConfigError about the temporary file from name
// the file the operator knows.
func renameInError(err error, from, to string) error {
	var ce *ConfigError
	if errors.As(err, &ce) && ce.File == from {
		return &ConfigError{File: to, Line: ce.Line, Col: ce.Col, Msg: ce.Msg + " (in the new version, not installed)"}
	}
	return err
}

// probeIgnoreMTUConf is the smallest config using the keyword.
const probeIgnoreMTUConf = `router id 192.0.2.1;
protocol device {
}
protocol ospf v2 vipd_probe {
	ipv4 { import none; export none; };
	ignoremtu yes;
	area 0 { interface "vipd-probe0" { }; };
}
`

// ProbeIgnoreMTU reports whether birdBinary accepts the `ignoremtu` OSPF
// option (a BIRD built with routing/bird/patch). It parses a tiny config
// with `bird -p`; a syntax error at the keyword means stock BIRD.
func ProbeIgnoreMTU(ctx context.Context, birdBinary string) (bool, error) {
	dir, err := os.MkdirTemp("", "vipd-bird-probe")
	if err != nil {
		return false, fmt.Errorf("probing ignoremtu: %w", err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "probe.conf")
	if err := os.WriteFile(file, []byte(probeIgnoreMTUConf), 0o600); err != nil {
		return false, fmt.Errorf("probing ignoremtu: %w", err)
	}
	err = Check(ctx, birdBinary, file)
	var ce *ConfigError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ce) && ce.Line == 6:
		return false, nil
	default:
		return false, fmt.Errorf("probing ignoremtu with %s: %w", birdBinary, err)
	}
}

// ProbeRunningIgnoreMTU asks the BIRD running on socket, not a binary on
// disk, whether it accepts the `ignoremtu` option: the running daemon
// parses a tiny config using it (`configure check`, which applies nothing).
// The file is written into dir, which must be a directory BIRD can read
// (that of routing.bird.config_file), with the ownership rule of every file
// vipd writes for BIRD. A stock BIRD still running after the patched one
// was installed answers false. When BIRD cannot be reached the error wraps
// ErrSocketMissing, ErrBirdDown or ErrSocketPermission.
func ProbeRunningIgnoreMTU(ctx context.Context, socket, dir string) (bool, error) {
	tmp, err := writeTemp(filepath.Join(dir, "vipd-probe.conf"), []byte(probeIgnoreMTUConf))
	if err != nil {
		return false, fmt.Errorf("probing the running bird for ignoremtu: %w", err)
	}
	defer os.Remove(tmp)
	_, err = configureSocket(ctx, socket, tmp, true)
	var ce *ConfigError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ce) && ce.Line == 6:
		return false, nil
	}
	return false, fmt.Errorf("probing the bird running on %s for ignoremtu: %w", socket, err)
}

// IgnoreMTUSupport says whether the BIRD vipd drives accepts `ignoremtu`:
// the running daemon when it answers on cfg.Socket (Asked names it),
// otherwise the binary cfg.Bird that will run next.
type IgnoreMTUSupport struct {
	Supported bool
	// Asked is what answered: "the bird running on SOCKET" or "BINARY".
	Asked string
	// Running is true when the running daemon answered.
	Running bool
}

// ProbeIgnoreMTUFor asks the running BIRD of cfg (see
// ProbeRunningIgnoreMTU), or, when none answers, the binary cfg.Bird.
func ProbeIgnoreMTUFor(ctx context.Context, cfg Config) (IgnoreMTUSupport, error) {
	cfg = cfg.WithDefaults()
	ok, err := ProbeRunningIgnoreMTU(ctx, cfg.Socket, filepath.Dir(cfg.ConfigFile))
	if err == nil {
		return IgnoreMTUSupport{Supported: ok, Asked: "the bird running on " + cfg.Socket, Running: true}, nil
	}
	if !unreachable(err) {
		return IgnoreMTUSupport{}, err
	}
	ok, err = ProbeIgnoreMTU(ctx, cfg.Bird)
	if err != nil {
		return IgnoreMTUSupport{}, err
	}
	return IgnoreMTUSupport{Supported: ok, Asked: cfg.Bird + " (no bird answers on " + cfg.Socket + ")"}, nil
}

// checkIgnoreMTU returns ErrIgnoreMTUUnsupported, naming what was asked,
// when an OSPF instance of cfg sets ignore_mtu and the BIRD vipd drives
// does not support it.
func checkIgnoreMTU(ctx context.Context, cfg Config) error {
	for _, o := range cfg.OSPF {
		if !o.IgnoreMTU {
			continue
		}
		s, err := ProbeIgnoreMTUFor(ctx, cfg)
		if err != nil {
			return err
		}
		if !s.Supported {
			return fmt.Errorf("checking %s for ospf %s: %w", s.Asked, o.Name, ErrIgnoreMTUUnsupported)
		}
		return nil
	}
	return nil
}

// ConfigureResult is how BIRD answered `birdc configure`.
type ConfigureResult string

// Replies to `configure` that mean the new configuration was accepted.
const (
	Reconfigured       ConfigureResult = "Reconfigured"
	ReconfigInProgress ConfigureResult = "Reconfiguration in progress"
	ReconfigQueued     ConfigureResult = "Reconfiguration already in progress, queueing"
	// ConfigOK answers `configure check`: the running BIRD parsed the file
	// and applied nothing.
	ConfigOK ConfigureResult = "Configuration OK"
)

// parseConfigureReply reads birdc's answer to `configure`. It returns the
// accepted result, or an error: a *ConfigError for a rejected file, or the
// reply itself.
func parseConfigureReply(out string) (ConfigureResult, error) {
	var other []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "BIRD ") && strings.HasSuffix(line, " ready."),
			strings.HasPrefix(line, "Reading configuration from "):
			continue
		case line == string(Reconfigured), line == string(ReconfigInProgress), line == string(ReconfigQueued):
			return ConfigureResult(line), nil
		}
		if ce, ok := parseConfigError(line); ok {
			return "", ce
		}
		other = append(other, line)
	}
	if len(other) == 0 {
		return "", errors.New("empty reply from birdc configure")
	}
	return "", errors.New(strings.Join(other, "; "))
}

// Configure asks the BIRD on socket to reload its configuration (from file
// when file is not empty, else from the file it was started with) and
// parses the reply. ctx bounds the call.
func Configure(ctx context.Context, birdc, socket, file string) (ConfigureResult, error) {
	args := []string{"-s", socket, "configure"}
	if file != "" {
		args = append(args, strconv.Quote(file))
	}
	cmd := exec.CommandContext(ctx, birdc, args...)
	cmd.WaitDelay = time.Second // a stuck child must not outlive ctx by much
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return "", fmt.Errorf("running birdc configure: %w", ctx.Err())
	}
	res, perr := parseConfigureReply(string(out))
	if perr == nil {
		return res, nil
	}
	var ce *ConfigError
	if err != nil && !errors.As(perr, &ce) {
		return "", fmt.Errorf("running birdc configure: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return "", fmt.Errorf("reconfiguring bird: %w", perr)
}

// Neighbor is one line of `show ospf neighbors`.
type Neighbor struct {
	Protocol  string // OSPF protocol name
	RouterID  string
	Priority  int
	State     string // "Full/PtP", "ExStart/DR", ...
	Interface string
	Address   string
}

// Stuck reports whether the adjacency is stuck in database exchange setup,
// which is what an MTU mismatch looks like from outside.
func (n Neighbor) Stuck() bool {
	return strings.HasPrefix(n.State, "ExStart")
}

// Neighbors lists the OSPF neighbours of the BIRD on socket (`show ospf
// neighbors`, over the control socket). A neighbour whose Stuck is true
// points at an MTU mismatch (see ScanMTUMismatches).
func Neighbors(ctx context.Context, socket string) ([]Neighbor, error) {
	cc, err := dialControl(ctx, socket)
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	lines, err := cc.cmd(ctx, "show ospf neighbors")
	if err != nil {
		return nil, fmt.Errorf("listing ospf neighbors: %w", err)
	}
	return parseNeighbors(texts(lines)), nil
}

func parseNeighbors(out string) []Neighbor {
	var ns []Neighbor
	proto := ""
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 1 && strings.HasSuffix(f[0], ":"):
			proto = strings.TrimSuffix(f[0], ":")
		case len(f) >= 6 && f[0] != "Router":
			pri, err := strconv.Atoi(f[1])
			if err != nil {
				continue
			}
			ns = append(ns, Neighbor{Protocol: proto, RouterID: f[0], Priority: pri, State: f[2],
				Interface: f[4], Address: f[5]})
		}
	}
	return ns
}

// MTUMismatch is one BIRD log line about a neighbour with another MTU.
type MTUMismatch struct {
	Protocol      string
	Neighbor      string
	Interface     string
	Remote, Local int
}

var mtuLine = regexp.MustCompile(`(\S+): MTU mismatch with nbr (\S+) on (\S+) \(remote (\d+), local (\d+)\)`)

// ScanMTUMismatches reads a BIRD log and returns the distinct MTU mismatches
// it reports (the adjacency then stays in ExStart; docs/field-notes.md, note 5).
func ScanMTUMismatches(r io.Reader) ([]MTUMismatch, error) {
	seen := map[MTUMismatch]bool{}
	var out []MTUMismatch
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		m := mtuLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		remote, _ := strconv.Atoi(m[4])
		local, _ := strconv.Atoi(m[5])
		mm := MTUMismatch{Protocol: m[1], Neighbor: m[2], Interface: m[3], Remote: remote, Local: local}
		if !seen[mm] {
			seen[mm] = true
			out = append(out, mm)
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("scanning bird log: %w", err)
	}
	return out, nil
}

// CheckGenerated validates a configuration rendered from cfg (as `vipctl
// bird-config --check` does) with cfg.Bird: when an OSPF instance sets
// ignore_mtu and the BIRD vipd drives (the running one, or else cfg.Bird)
// lacks the patch, the error is ErrIgnoreMTUUnsupported rather than BIRD's
// syntax error.
func CheckGenerated(ctx context.Context, cfg Config, name string, data []byte) error {
	cfg = cfg.WithDefaults()
	if err := checkIgnoreMTU(ctx, cfg); err != nil {
		return err
	}
	return CheckData(ctx, cfg.Bird, name, data)
}
