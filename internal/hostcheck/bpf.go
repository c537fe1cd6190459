package hostcheck

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// checkBPFFS verifies a mounted bpffs: vipd pins what must outlive it (the
// PROG_ARRAY loses its programs when the last fd closes, docs/field-notes.md, note 8).
func checkBPFFS(_ context.Context, h Host, _ Spec) Result {
	r := Result{ID: "bpffs", Name: "bpffs mounted"}
	b, err := h.ReadFile("/proc/mounts")
	if err != nil {
		r.Status, r.Finding = Warn, fmt.Sprintf("reading /proc/mounts: %v", err)
		return r
	}
	var at []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "bpf" {
			at = append(at, f[1])
		}
	}
	if len(at) == 0 {
		r.Status, r.Finding = Fail, "no bpf filesystem in /proc/mounts: pinned maps and programs cannot outlive vipd"
		r.Fix = "mount -t bpf bpf /sys/fs/bpf"
		return r
	}
	r.Status, r.Finding = Pass, "bpffs at "+strings.Join(at, ", ")
	return r
}

// checkBTF reports kernel BTF, which bpftool and CO-RE need to inspect and
// relocate programs.
func checkBTF(_ context.Context, h Host, _ Spec) Result {
	r := Result{ID: "btf", Name: "kernel BTF"}
	const vmlinux = "/sys/kernel/btf/vmlinux"
	fi, err := h.Stat(vmlinux)
	if err != nil {
		r.Status, r.Finding = Warn, fmt.Sprintf("%v: kernel built without CONFIG_DEBUG_INFO_BTF", err)
		r.Fix = "boot a kernel with CONFIG_DEBUG_INFO_BTF=y"
		return r
	}
	r.Status, r.Finding = Pass, fmt.Sprintf("%s present (%d bytes)", vmlinux, fi.Size())
	return r
}

// Capability bits (linux/capability.h).
const (
	capNetAdmin    = 12
	capSysAdmin    = 21
	capSysResource = 24
	capBPF         = 39
)

// checkBPFPrivileges verifies that this process may load BPF and attach XDP:
// CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN, and, on kernels before 5.11
// which charge BPF memory to RLIMIT_MEMLOCK, a memlock limit that is
// unlimited or can be raised (CAP_SYS_RESOURCE).
func checkBPFPrivileges(_ context.Context, h Host, _ Spec) Result {
	r := Result{ID: "bpf-privileges", Name: "CAP_BPF, CAP_NET_ADMIN, memlock"}
	b, err := h.ReadFile("/proc/self/status")
	if err != nil {
		r.Status, r.Finding = Warn, fmt.Sprintf("reading /proc/self/status: %v", err)
		return r
	}
	var capEff uint64
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			capEff, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				r.Status, r.Finding = Warn, fmt.Sprintf("parsing CapEff %q: %v", v, err)
				return r
			}
		}
	}
	has := func(c uint) bool { return capEff&(1<<c) != 0 }
	var parts, missing []string
	parts = append(parts, fmt.Sprintf("CapEff=%016x", capEff))
	if !has(capBPF) && !has(capSysAdmin) {
		missing = append(missing, "CAP_BPF")
	}
	if !has(capNetAdmin) {
		missing = append(missing, "CAP_NET_ADMIN")
	}
	r.Status = Pass
	if len(missing) > 0 {
		r.Status = Fail
		parts = append(parts, "missing "+strings.Join(missing, ", "))
		r.Fix = "run vipd as root or with AmbientCapabilities=CAP_BPF CAP_NET_ADMIN CAP_SYS_RESOURCE"
	}
	rel, err := h.KernelRelease()
	old, kerr := kernelBefore(rel, 5, 11)
	if err == nil && kerr == nil && old {
		limit, lerr := memlockLimit(h)
		switch {
		case lerr != nil:
			r.Status = max(r.Status, Warn)
			parts = append(parts, fmt.Sprintf("kernel %s charges BPF to memlock; %v", rel, lerr))
		case limit == "unlimited" || has(capSysResource):
			parts = append(parts, fmt.Sprintf("kernel %s charges BPF to memlock: limit %s, CAP_SYS_RESOURCE %t", rel, limit, has(capSysResource)))
		default:
			r.Status = Fail
			parts = append(parts, fmt.Sprintf("kernel %s charges BPF to memlock: limit %s bytes and no CAP_SYS_RESOURCE to raise it", rel, limit))
			r.Fix = "ulimit -l unlimited (systemd: LimitMEMLOCK=infinity)"
		}
	} else if err == nil && kerr == nil {
		parts = append(parts, fmt.Sprintf("kernel %s accounts BPF memory to the cgroup (memlock irrelevant)", rel))
	}
	r.Finding = strings.Join(parts, "; ")
	return r
}

// memlockLimit returns the soft "Max locked memory" of /proc/self/limits.
func memlockLimit(h Host) (string, error) {
	b, err := h.ReadFile("/proc/self/limits")
	if err != nil {
		return "", fmt.Errorf("reading /proc/self/limits: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Max locked memory"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				return f[0], nil
			}
		}
	}
	return "", errors.New("reading /proc/self/limits: no Max locked memory line")
}

// checkBPFFeatures probes the kernel for what the XDP program uses: the XDP
// program type, bpf_skc_lookup_tcp (second chance for non-SYN packets with
// no local socket) and bpf_fib_lookup (next-hop MACs).
func checkBPFFeatures(_ context.Context, h Host, _ Spec) Result {
	r := Result{ID: "bpf-features", Name: "kernel BPF features"}
	var have, missing, unknown []string
	for _, f := range BPFFeatures {
		err := h.ProbeBPF(f)
		switch {
		case err == nil:
			have = append(have, string(f))
		case errors.Is(err, ErrUnsupported):
			missing = append(missing, string(f))
		default:
			unknown = append(unknown, fmt.Sprintf("%s (%v)", f, err))
		}
	}
	var parts []string
	if len(have) > 0 {
		parts = append(parts, "have "+strings.Join(have, ", "))
	}
	r.Status = Pass
	if len(unknown) > 0 {
		r.Status = Warn
		parts = append(parts, "cannot probe "+strings.Join(unknown, ", "))
		r.Fix = "run as root (probes load small BPF programs)"
	}
	if len(missing) > 0 {
		r.Status = Fail
		parts = append(parts, "kernel lacks "+strings.Join(missing, ", "))
		r.Fix = "upgrade the kernel (bpf_skc_lookup_tcp needs >= 5.2, bpf_fib_lookup >= 4.18)"
	}
	r.Finding = strings.Join(parts, "; ")
	return r
}
