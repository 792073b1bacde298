package container

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// MaxLabel is the longest AppArmor profile name or SELinux context a
// spec may give: both go whole into one write to /proc.
const MaxLabel = 1024

// checkLabel says what is wrong with an AppArmor profile name or an
// SELinux context: empty is fine (none), else at most MaxLabel bytes,
// none a control character, a space or a newline.
func checkLabel(s string) error {
	if len(s) > MaxLabel {
		return fmt.Errorf("%d bytes: at most %d", len(s), MaxLabel)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("%s holds a space or a control character", Quote(s))
		}
	}
	return nil
}

// lsmLabels checks the AppArmor profile and the SELinux label.
func (c *specCheck) lsmLabels(s *Spec) {
	if err := checkLabel(s.AppArmor); err != nil {
		c.add("apparmor", -1, "%v", err)
	}
	for _, l := range []struct{ key, label string }{{"selinux_label", s.SELinuxLabel}, {"selinux_mount_label", s.SELinuxMountLabel}} {
		if err := checkLabel(l.label); err != nil {
			c.add(l.key, -1, "%v", err)
		} else if l.label != "" && strings.Count(l.label, ":") < 3 {
			c.add(l.key, -1, "want user:role:type:level, got %s", Quote(l.label))
		}
	}
}

// mountLabel is the SELinux context of the container's tmpfs mounts.
func (s *Spec) mountLabel() string {
	if s.SELinuxMountLabel != "" {
		return s.SELinuxMountLabel
	}
	return s.SELinuxLabel
}

// AppArmorEnabled reports whether the running kernel enforces AppArmor.
func AppArmorEnabled() bool {
	data, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && strings.TrimSpace(string(data)) == "Y"
}

// SELinuxEnabled reports whether the running kernel has SELinux on, as
// its filesystem (selinuxfs, which berth mounts at boot) at
// /sys/fs/selinux shows.
func SELinuxEnabled() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/selinux", &st) == nil && uint32(st.Type) == unix.SELINUX_MAGIC
}

// checkLSMs refuses, before anything starts, a spec asking for a
// security module the kernel does not run: the container must not run
// without it.
func checkLSMs(s Spec) error {
	var errs []error
	if s.AppArmor != "" && !AppArmorEnabled() {
		errs = append(errs, fmt.Errorf("apparmor profile %s: the kernel has no AppArmor (not built, or not in its lsm= list)", Quote(s.AppArmor)))
	}
	for _, l := range []struct{ what, label string }{{"selinux label", s.SELinuxLabel}, {"selinux mount label", s.SELinuxMountLabel}} {
		switch {
		case l.label == "":
		case !SELinuxEnabled():
			errs = append(errs, fmt.Errorf("%s %s: the kernel has no SELinux (not built, not in its lsm= list, or selinuxfs not mounted at /sys/fs/selinux)", l.what, Quote(l.label)))
		default:
			if err := checkContext(l.label); err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", l.what, Quote(l.label), err))
			}
		}
	}
	return errors.Join(errs...)
}

// checkContext asks the loaded SELinux policy whether label is one of
// its contexts, as libselinux's security_check_context does.
func checkContext(label string) error {
	f, err := os.OpenFile("/sys/fs/selinux/context", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write([]byte(label)); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return errors.New("not a valid context of the loaded policy ([security] selinux_policy loads one at boot)")
		}
		return fmt.Errorf("check the context: %w", err)
	}
	return nil
}

// execAttr is one write the child makes to /proc before its execve: the
// first of paths that exists gets data.
type execAttr struct {
	paths [2]*byte
	data  []byte
}

// planLSM prepares the child's exec transitions (child.go's lsm step):
// AppArmor's "exec PROFILE" to attr/apparmor/exec (attr/exec before
// Linux 5.8), SELinux's label to attr/exec, both of the thread itself.
func planLSM(k *childPlan, s Spec) error {
	add := func(data string, paths ...string) error {
		a := execAttr{data: []byte(data)}
		for i, p := range paths {
			b, err := syscall.BytePtrFromString(p)
			if err != nil {
				return err
			}
			a.paths[i] = b
		}
		k.attrs = append(k.attrs, a)
		return nil
	}
	if s.AppArmor != "" {
		if err := add("exec "+s.AppArmor, "/proc/thread-self/attr/apparmor/exec", "/proc/thread-self/attr/exec"); err != nil {
			return err
		}
	}
	if s.SELinuxLabel != "" {
		return add(s.SELinuxLabel, "/proc/thread-self/attr/exec")
	}
	return nil
}

// execAttrError describes the failure of exec transition i of plan k.
func execAttrError(s Spec, k *childPlan, i int, errno syscall.Errno) error {
	if i < 0 || i >= len(k.attrs) {
		return fmt.Errorf("set exec label: %w", errno)
	}
	if errno == unix.EXDEV {
		return fmt.Errorf("set exec label: the container's /proc/thread-self/attr is not procfs's own (something is mounted over it): refusing to run the command unconfined")
	}
	if data := string(k.attrs[i].data); strings.HasPrefix(data, "exec ") && s.AppArmor != "" {
		if errno == unix.ENOENT {
			return fmt.Errorf("apparmor profile %s: not loaded in the kernel ([security] apparmor_policy loads it at boot)", Quote(s.AppArmor))
		}
		return fmt.Errorf("apparmor profile %s: %w", Quote(s.AppArmor), errno)
	}
	if errno == unix.EINVAL {
		return fmt.Errorf("selinux label %s: not a valid context of the loaded policy ([security] selinux_policy loads one at boot): %w", Quote(s.SELinuxLabel), errno)
	}
	return fmt.Errorf("selinux label %s: %w", Quote(s.SELinuxLabel), errno)
}

// setExecAttrs makes the init's exec transitions (planLSM's writes).
func setExecAttrs(s Spec) error {
	k := &childPlan{}
	if err := planLSM(k, s); err != nil {
		return err
	}
	for i, a := range k.attrs {
		var err error
		for _, p := range a.paths {
			if p == nil {
				break
			}
			var f *os.File
			if f, err = os.OpenFile(unix.BytePtrToString(p), os.O_WRONLY, 0); errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err == nil {
				_, err = f.Write(a.data)
				f.Close()
			}
			break
		}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return execAttrError(s, k, i, errno)
		} else if err != nil {
			return err
		}
	}
	return nil
}

// execHint says which security module may have refused the workload's
// execve with err: "" when none is configured that could.
func execHint(s Spec, err error) string {
	var hints []string
	if s.Landlock != nil && errors.Is(err, unix.EACCES) {
		hints = append(hints, "Landlock allows executing only beneath its read and write paths")
	}
	if s.SELinuxLabel != "" && (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) {
		hints = append(hints, "the SELinux policy may refuse the transition to "+s.SELinuxLabel+
			": it needs transition from berth's domain, entrypoint on the command's file type and, under no_new_privs, nnp_transition")
	}
	if len(hints) == 0 {
		return ""
	}
	return " (" + strings.Join(hints, "; ") + ")"
}
