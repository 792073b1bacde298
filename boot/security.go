package boot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"berth/container"
)

// SecurityInfo is what berth status shows of the kernel's security
// modules: the active ones, Landlock's ABI, and the policy of [security].
type SecurityInfo struct {
	// LSMs is the kernel's list of active modules
	// (/sys/kernel/security/lsm), "" when securityfs is not mounted.
	LSMs        string       `json:"lsms,omitempty"`
	LandlockABI int          `json:"landlock_abi,omitempty"`
	Policies    []PolicyInfo `json:"policies,omitempty"`
}

// PolicyInfo is one policy file of [security] and how its loading went.
type PolicyInfo struct {
	Module string `json:"module"` // "apparmor" or "selinux"
	Path   string `json:"path"`
	Loaded bool   `json:"loaded"`
	Error  string `json:"error,omitempty"`
}

// The kernel's policy loading interfaces: a write of a whole compiled
// policy to each loads it.
const (
	apparmorReplace = "/sys/kernel/security/apparmor/.replace"
	selinuxLoad     = "/sys/fs/selinux/load"
)

// setupSecurity mounts securityfs and, on a kernel running SELinux,
// selinuxfs, then loads the policy files of [security] (as PID 1 only:
// on a development host the host's own policy stays as it is). A file
// that does not load is a warning: the containers that need it then
// fail to start, saying so, and the others run.
func (b *booter) setupSecurity() error {
	info := &SecurityInfo{LandlockABI: container.LandlockABI()}
	b.security = info
	if b.opts.PID1 {
		if _, err := mountOnce("/sys/kernel/security", "securityfs", "securityfs", msNoSUIDDevExec, ""); err != nil {
			b.log.Printf("warning: %v", err)
		}
	}
	if data, err := readPolicy("/sys/kernel/security/lsm", 4096); err == nil {
		info.LSMs = strings.TrimSpace(string(data))
	}
	if b.opts.PID1 && strings.Contains(","+info.LSMs+",", ",selinux,") {
		if _, err := mountOnce("/sys/fs/selinux", "selinuxfs", "selinuxfs", unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
			b.log.Printf("warning: %v", err)
		}
	}
	sec := b.cfg.Security
	load := func(module, path, iface string) {
		p := PolicyInfo{Module: module, Path: b.cfg.resolve(path)}
		err := errors.New("not loaded: berth is not PID 1 (the host's own policy applies)")
		if b.opts.PID1 {
			err = loadPolicy(p.Path, iface)
		}
		if err != nil {
			p.Error = err.Error()
			b.log.Printf("WARNING: %s policy %s: %v", module, p.Path, err)
		} else {
			p.Loaded = true
			b.log.Printf("%s policy %s loaded", module, p.Path)
		}
		info.Policies = append(info.Policies, p)
	}
	for _, path := range sec.AppArmorPolicy {
		load("apparmor", path, apparmorReplace)
	}
	if sec.SELinuxPolicy != "" {
		load("selinux", sec.SELinuxPolicy, selinuxLoad)
	}
	lsms := info.LSMs
	if lsms == "" {
		lsms = "unknown (no securityfs)"
	}
	b.log.Printf("security modules: %s; landlock ABI %d", lsms, info.LandlockABI)
	return nil
}

// loadPolicy writes the compiled policy at path to the kernel's
// interface iface in one write: SELinux refuses a policy split across
// writes, AppArmor one profile set.
func loadPolicy(path, iface string) error {
	data, err := readPolicy(path, maxPolicySize)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(iface, os.O_WRONLY, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("the kernel does not run this module (%s missing)", iface)
		}
		return err
	}
	defer f.Close()
	n, err := unix.Write(int(f.Fd()), data)
	switch {
	case err != nil:
		return fmt.Errorf("load into %s: %w", iface, err)
	case n != len(data):
		return fmt.Errorf("load into %s: the kernel took %d of %d bytes", iface, n, len(data))
	}
	return nil
}

// readPolicy reads path, which must hold at most limit bytes.
func readPolicy(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}
