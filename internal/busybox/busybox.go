// Package busybox makes the root filesystems berth's tests, make demo and
// the benchmarks run containers in, from Debian's static busybox for any
// architecture, as the Makefile fetches it into .cache.
package busybox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Find returns the static busybox for arch that `make fetch` unpacked
// from Debian's busybox-static package: bin/busybox, or usr/bin/busybox in
// Debian 13's merged-/usr package.
func Find(repo, arch string) (string, error) {
	pkg := filepath.Join(repo, ".cache", "deb", arch, "busybox-static")
	for _, p := range []string{filepath.Join(pkg, "bin", "busybox"), filepath.Join(pkg, "usr", "bin", "busybox")} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no busybox for %s under %s: run 'make fetch ARCH=%s'", arch, pkg, arch)
}

// appletNames reads the applets a busybox binary has from its own
// applet_names table ("[", "[[", "acpid", ... NUL-separated, sorted), so
// that a busybox of any architecture can be listed without running it.
func appletNames(bin []byte) ([]string, error) {
	i := bytes.Index(bin, []byte("[\x00[[\x00"))
	if i < 0 {
		return nil, errors.New("no applet table")
	}
	var names []string
	for rest := bin[i:]; ; {
		name, after, ok := bytes.Cut(rest, []byte{0})
		if !ok || len(name) == 0 || len(name) > 64 || bytes.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == '/' || r > '~' }) {
			break
		}
		names = append(names, string(name))
		rest = after
	}
	if len(names) < 10 {
		return nil, fmt.Errorf("applet table holds %d names", len(names))
	}
	return names, nil
}

// Rootfs writes a minimal root filesystem for arch at dir:
// /bin/busybox with a symlink per applet, /etc/passwd and /etc/group, and
// the directories a container mounts on. files adds more (path → content;
// mode 0755 when the content starts with "#!").
func Rootfs(repo, arch, dir string, files map[string]string) error {
	bb, err := Find(repo, arch)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	applets, err := appletNames(data)
	if err != nil {
		return fmt.Errorf("busybox %s: %w", bb, err)
	}
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "tmp", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), data, 0o755); err != nil {
		return err
	}
	for _, applet := range applets {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil && !os.IsExist(err) {
			return err
		}
	}
	all := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"etc/group":  "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
	}
	for k, v := range files {
		all[k] = v
	}
	for name, content := range all {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(content, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			return err
		}
	}
	return nil
}
