package boot

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/image"
)

// TestStateNotReachableByOthers prepares a container's root filesystem as
// berth does at boot, makes a setuid-root file in it as a container could,
// and checks as another host user (uid 65534) that neither the merged
// rootfs, its upper and work directories nor the image cache can be
// reached: the setuid file would run as root for them (CVE-2021-41091).
func TestStateNotReachableByOthers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("needs root: overlay mounts")
	}
	top := t.TempDir()
	// Only berth's own modes may keep the other user out.
	for _, d := range []string{top, filepath.Dir(top)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(top, "src")
	if err := os.MkdirAll(filepath.Join(src, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "bin", "hello"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := image.Pack(src, filepath.Join(top, "app.tar.zst"), image.PackOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(filepath.Join(top, "berth.toml"), []byte("[[container]]\nname = \"app\"\nimage = \"app.tar.zst\"\ncommand = [\"/bin/hello\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(top, "state")
	s := &supervisor{b: &booter{opts: Options{StateDir: state}, log: NewLogger(io.Discard)}}
	rootfs, _, err := s.prepareRootfs(context.Background(), cfg, cfg.Container[0])
	if err != nil {
		t.Fatal(err)
	}
	defer releaseRootfs(filepath.Dir(rootfs), nil)
	suid := filepath.Join(rootfs, "bin", "suid")
	if err := os.WriteFile(suid, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, 0o4755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	cached, _ := filepath.Glob(filepath.Join(state, "images", "sha256-*", "rootfs", "bin"))
	dir := filepath.Dir(rootfs)
	paths := append([]string{suid, filepath.Join(dir, "upper", "bin", "suid"), filepath.Join(dir, "work")}, cached...)
	if len(cached) != 1 {
		t.Fatalf("image cache holds %v", cached)
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			t.Fatalf("as root: %v", err)
		}
		cmd := exec.Command("/bin/ls", "-d", p)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Permission denied") {
			t.Errorf("uid 65534 reaches %s: %v %s", p, err, out)
		}
	}
}

// TestImageCacheRootSymlink: a cache root that is a symlink — the
// default one, STATE/images on a data partition written elsewhere, or
// one the config names — is refused, and nothing is written where it
// points.
func TestImageCacheRootSymlink(t *testing.T) {
	state, target := t.TempDir(), t.TempDir()
	if err := os.Symlink(target, filepath.Join(state, "images")); err != nil {
		t.Fatal(err)
	}
	s := &supervisor{b: &booter{opts: Options{StateDir: state}, log: NewLogger(io.Discard)}}
	named := &Config{}
	named.Images.Cache = filepath.Join(state, "images")
	for _, cfg := range []*Config{{}, named} {
		if _, err := s.imageCache(cfg); err == nil || !strings.Contains(err.Error(), "not a directory (a symlink is not followed: name the directory it points to)") {
			t.Errorf("cache %q a symlink: %v", cfg.Images.Cache, err)
		}
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Errorf("the symlink's target got %d entries", len(ents))
	}
}

// TestReleasePlantedSymlinks: symlinks planted in STATE/containers — by
// whoever wrote to the data partition — at a container's rootfs or lower,
// or as the container's directory itself, make berth unmount nothing they
// point to; a file in a directory's place is removed, not an error at
// every boot.
func TestReleasePlantedSymlinks(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("needs root: mounts")
	}
	victim := t.TempDir()
	if err := syscall.Mount("victim", victim, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(victim, syscall.MNT_DETACH) })
	// A directory holding a mount named rootfs, for DIR as a symlink.
	holder := t.TempDir()
	if err := os.Mkdir(filepath.Join(holder, "rootfs"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("victim2", filepath.Join(holder, "rootfs"), "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(filepath.Join(holder, "rootfs"), syscall.MNT_DETACH) })
	state := t.TempDir()
	containers := filepath.Join(state, "containers")
	plant := map[string]func(dir string) error{
		"rootfs": func(dir string) error { return os.Symlink(victim, filepath.Join(dir, "rootfs")) },
		"lower":  func(dir string) error { return os.Symlink(victim, filepath.Join(dir, "lower")) },
	}
	for name, f := range plant {
		dir := filepath.Join(containers, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := f(dir); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(holder, filepath.Join(containers, "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(containers, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	s := &supervisor{b: &booter{opts: Options{StateDir: state}, log: NewLogger(&log)}}
	s.removeStaleRootfs()
	for _, m := range []string{victim, filepath.Join(holder, "rootfs")} {
		if !mountRoot(unix.AT_FDCWD, m) {
			t.Errorf("%s was unmounted through a planted symlink", m)
		}
	}
	if ents, _ := os.ReadDir(containers); len(ents) != 0 {
		t.Errorf("STATE/containers still holds %d entries", len(ents))
	}
	if _, err := os.Stat(filepath.Join(holder, "rootfs")); err != nil {
		t.Errorf("the symlinked directory's contents were touched: %v", err)
	}
	if log.Len() != 0 {
		t.Errorf("log: %s", log.String())
	}
}

// TestContainersDirSymlink: STATE/containers replaced by a symlink (on a
// data partition written elsewhere) is not followed: the mounts and files
// of the directory it points to stay, and the boot says why.
func TestContainersDirSymlink(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("needs root: mounts")
	}
	holder := t.TempDir()
	x := filepath.Join(holder, "x")
	if err := os.MkdirAll(filepath.Join(x, "rootfs"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(x, "precious"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("victim", filepath.Join(x, "rootfs"), "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(filepath.Join(x, "rootfs"), syscall.MNT_DETACH) })
	state := t.TempDir()
	if err := os.Symlink(holder, filepath.Join(state, "containers")); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	s := &supervisor{b: &booter{opts: Options{StateDir: state}, log: NewLogger(&log)}}
	s.removeStaleRootfs()
	if err := releaseRootfs(filepath.Join(state, "containers", "x"), nil); err == nil || !strings.Contains(err.Error(), "is a symlink, not a directory") {
		t.Errorf("releaseRootfs through the symlink: %v", err)
	}
	if !mountRoot(unix.AT_FDCWD, filepath.Join(x, "rootfs")) {
		t.Error("the mount the symlink leads to was unmounted")
	}
	if data, err := os.ReadFile(filepath.Join(x, "precious")); err != nil || string(data) != "keep" {
		t.Errorf("the file the symlink leads to: %q, %v", data, err)
	}
	s.b.log.Flush(5 * time.Second)
	if !strings.Contains(log.String(), "containers is a symlink, not a directory (a symlink is not followed)") {
		t.Errorf("log: %q", log.String())
	}
}
