package appliance

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// BerthFor returns berth built for arch: the running binary when arch is
// its own, else berth-linux-ARCH beside it, as the Makefile builds
// out/berth-linux-amd64, -arm64, -arm and -riscv64 side by side.
func BerthFor(arch string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("berth for %s: %w", arch, err)
	}
	if arch == runtime.GOARCH {
		return self, nil
	}
	other := filepath.Join(filepath.Dir(self), "berth-linux-"+arch)
	if _, err := os.Stat(other); err != nil {
		return "", fmt.Errorf("berth for %s: no %s beside this berth (%s, built for %s): build it (make out/berth-linux-%s)",
			arch, other, self, runtime.GOARCH, arch)
	}
	return other, nil
}

// checkout finds the berth checkout dir is in: dir or the nearest parent
// holding .cache/deb, where make fetch unpacks Debian's kernels.
func checkout(dir string) (string, bool) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", false
	}
	for {
		if st, err := os.Stat(filepath.Join(dir, ".cache", "deb")); err == nil && st.IsDir() {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// Kernel returns the Debian kernel for arch that make fetch unpacked in
// the checkout repo: .cache/deb/ARCH/linux-image/boot/vmlinuz-RELEASE,
// or vmlinux-RELEASE as Debian names riscv64's (an Image, which QEMU
// loads as it is).
func Kernel(repo, arch string) (string, error) {
	pattern := filepath.Join(repo, ".cache", "deb", arch, "linux-image", "boot", "vmlinu[xz]-*")
	m, _ := filepath.Glob(pattern)
	if len(m) == 0 {
		return "", fmt.Errorf("no Debian kernel for %s (%s): run 'make fetch ARCH=%s'", arch, pattern, arch)
	}
	sort.Strings(m)
	return m[len(m)-1], nil
}

// DefaultKernel returns the Debian kernel for arch of the berth checkout
// that holds the current directory, else of the one this berth was built
// in (out/berth-linux-ARCH).
func DefaultKernel(arch string) (string, error) {
	var dirs []string
	if wd, err := os.Getwd(); err == nil {
		dirs = append(dirs, wd)
	}
	if self, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(self))
	}
	for _, d := range dirs {
		if repo, ok := checkout(d); ok {
			return Kernel(repo, arch)
		}
	}
	return "", fmt.Errorf("no --kernel, and neither %s is in a berth checkout with kernels fetched (make fetch ARCH=%s)",
		strings.Join(dirs, " nor "), arch)
}

// KernelModules returns the modules directory of a kernel laid out as a
// Debian kernel package or an installed system has it: for
// ROOT/boot/vmlinuz-RELEASE, ROOT/lib/modules/RELEASE or
// ROOT/usr/lib/modules/RELEASE.
func KernelModules(kernel string) (string, error) {
	name := filepath.Base(kernel)
	release, ok := strings.CutPrefix(name, "vmlinuz-")
	if !ok {
		release, ok = strings.CutPrefix(name, "vmlinux-")
	}
	if !ok || release == "" {
		return "", fmt.Errorf("kernel %s: its name does not say its release (vmlinuz-RELEASE): give its modules directory", kernel)
	}
	root := filepath.Dir(filepath.Dir(kernel))
	var tried []string
	for _, d := range []string{filepath.Join(root, "lib", "modules", release), filepath.Join(root, "usr", "lib", "modules", release)} {
		st, err := os.Stat(d)
		if err == nil && st.IsDir() {
			return d, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		tried = append(tried, d)
	}
	return "", fmt.Errorf("kernel %s: no modules directory (looked for %s): give its modules directory", kernel, strings.Join(tried, " and "))
}
