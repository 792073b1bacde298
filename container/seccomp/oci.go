package seccomp

import "fmt"

// OCI returns the profile resolved for a GOARCH and a capability set in
// the OCI runtime spec's linux.seccomp form, which runc and crun read:
// includes and excludes applied for the running kernel, the architecture
// map flattened into the native architecture and its sub-architectures.
// make bench hands it to runc and crun so that they confine /bin/true
// exactly as berth does.
func (p *Profile) OCI(arch string, caps []string) (map[string]any, error) {
	plat, ok := platforms[arch]
	if !ok {
		return nil, fmt.Errorf("seccomp: no architecture for GOARCH %q", arch)
	}
	kernel, err := RunningKernel()
	if err != nil {
		return nil, err
	}
	held := map[string]bool{}
	for _, c := range caps {
		held[capName(c)] = true
	}
	var syscalls []map[string]any
	for i := range p.Syscalls {
		s := &p.Syscalls[i]
		if !s.appliesTo(arch, held, kernel) {
			continue
		}
		entry := map[string]any{"names": s.allNames(), "action": string(s.Action)}
		if s.ErrnoRet != nil {
			entry["errnoRet"] = *s.ErrnoRet
		}
		if len(s.Args) > 0 {
			entry["args"] = s.Args
		}
		syscalls = append(syscalls, entry)
	}
	out := map[string]any{
		"defaultAction": string(p.DefaultAction),
		"architectures": append([]string{plat.native}, plat.others...),
		"syscalls":      syscalls,
	}
	if p.DefaultErrnoRet != nil {
		out["defaultErrnoRet"] = *p.DefaultErrnoRet
	}
	return out, nil
}
