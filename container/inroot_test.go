package container

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// countComponents wraps openat2 to count the path components the kernel is
// asked to walk, until the returned function restores it.
func countComponents(n *int) func() {
	orig := sysOpenat2
	sysOpenat2 = func(dirfd int, path string, how *unix.OpenHow) (int, error) {
		*n += strings.Count(strings.Trim(path, "/"), "/") + 1
		return orig(dirfd, path, how)
	}
	return func() { sysOpenat2 = orig }
}

func testRoot(t *testing.T) *rootMounter {
	t.Helper()
	dir := t.TempDir()
	f, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &rootMounter{root: f, path: dir}
}

// sameFile reports whether the handle h is the file at path.
func sameFile(t *testing.T, h *os.File, path string) bool {
	t.Helper()
	var a, b unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(path, &b); err != nil {
		t.Fatal(err)
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// TestDeepTargetIsLinear creates mount targets 500, 1000 and 2000
// directories deep and counts the path components the kernel walks in
// openat2 on the way: the work must grow linearly with the depth (resolving
// every prefix again from the root made it quadratic).
func TestDeepTargetIsLinear(t *testing.T) {
	for _, depth := range []int{500, 1000, 2000} {
		r := testRoot(t)
		var walked int
		restore := countComponents(&walked)
		target := strings.Repeat("d/", depth)
		h, err := resolveIn(r.root, target, createDirs)
		restore()
		if err != nil {
			t.Fatalf("depth %d: %v", depth, err)
		}
		if !sameFile(t, h, filepath.Join(r.path, target)) {
			t.Errorf("depth %d: the handle is not the deepest directory", depth)
		}
		h.Close()
		t.Logf("depth %d: openat2 walked %d components", depth, walked)
		if walked > 3*depth+8 {
			t.Errorf("depth %d: openat2 walked %d components, want at most %d (linear)", depth, walked, 3*depth+8)
		}
	}
}

// TestResolveInsideRoot checks that symlinks on the way to a target are
// followed as if the root were "/", and that a target reached through
// symlinks is created inside the root.
func TestResolveInsideRoot(t *testing.T) {
	r := testRoot(t)
	for _, d := range []string{"a/b", "etc"} {
		if err := os.MkdirAll(filepath.Join(r.path, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{"up": "../../..", "abs": "/a/b", "root": "/", "loop": "loop", "dangling": "/nonexistent/x",
		"etc/stub": "../run/resolve/stub", "escape": "../../../../outside/d", "dangling2": "/nothere/x"}
	for name, to := range links {
		if err := os.Symlink(to, filepath.Join(r.path, name)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		target, want string // want: where it lands, relative to the root; "" for an error
	}{
		{"up/x", "x"},
		{"abs/c", "a/b/c"},
		{"root/root/root/etc/new", "etc/new"},
		{"a/b", "a/b"},
		{"loop/x", ""},
		// A dangling symlink: what it names is made inside the root, as
		// runc does (an image's /etc/resolv.conf to systemd's stub)...
		{"dangling/y", "nonexistent/x/y"},
		{"etc/stub", "run/resolve/stub"},
		{"escape/e", "outside/d/e"},
		// ...only the first on the path: after another, the link's
		// directory is not the path's.
		{"root/dangling2/y2", ""},
		{strings.Repeat("root/", 41) + "z", ""}, // more symlinks than the kernel follows in one path
	}
	for _, tc := range tests {
		h, err := resolveIn(r.root, tc.target, createDirs)
		if tc.want == "" {
			if err == nil {
				h.Close()
				t.Errorf("%s: resolved, want an error", tc.target)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.target, err)
			continue
		}
		if !sameFile(t, h, filepath.Join(r.path, tc.want)) {
			t.Errorf("%s: not resolved to %s", tc.target, tc.want)
		}
		h.Close()
	}
	if _, err := os.Stat("/x"); err == nil {
		t.Error("a target through a symlink created /x on the host")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(r.path), "outside")); err == nil {
		t.Error("a dangling symlink's target was made outside the root")
	}
	// A file: the mount point of /etc/resolv.conf through systemd's link.
	if err := os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(r.path, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	h, err := resolveIn(r.root, "/etc/resolv.conf", createFile)
	if err != nil {
		t.Fatalf("/etc/resolv.conf to systemd's stub: %v", err)
	}
	defer h.Close()
	if st, err := os.Stat(filepath.Join(r.path, "run/systemd/resolve/stub-resolv.conf")); err != nil || !st.Mode().IsRegular() || !sameFile(t, h, filepath.Join(r.path, "run/systemd/resolve/stub-resolv.conf")) {
		t.Errorf("/etc/resolv.conf to systemd's stub: the stub %v, %v", st, err)
	}
}
