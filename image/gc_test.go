package image

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestGCExcludesPrepare races GC against a Prepare that has found its
// entry in the cache and is about to return it: GC must wait for the
// cache lock (seen in /proc/locks as a blocked flock) instead of removing
// the entry under the Prepare, and remove it once Prepare is done.
func TestGCExcludesPrepare(t *testing.T) {
	_, img := packTree(t)
	c, first := preparedCache(t, img)
	var lock unix.Stat_t
	if err := unix.Stat(filepath.Join(c.Root, ".lock"), &lock); err != nil {
		t.Fatal(err)
	}
	gcDone := make(chan GCResult, 1)
	reachedCached, gcRanInside, entryThere := false, false, false
	crashPoint = func(step string) {
		if step != "cached" {
			return
		}
		reachedCached = true
		go func() {
			res, err := c.GC(nil)
			if err != nil {
				t.Error(err)
			}
			gcDone <- res
		}()
		for !flockBlocked(t, lock.Ino) { // GC waits for the lock, or else runs through
			select {
			case res := <-gcDone:
				gcRanInside = true
				gcDone <- res
			default:
				runtime.Gosched()
				continue
			}
			break
		}
		_, err := os.Stat(first.Rootfs)
		entryThere = err == nil
	}
	defer func() { crashPoint = nil }()
	p, err := c.Prepare(img, PrepareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reachedCached {
		t.Fatal("Prepare did not find its entry in the cache")
	}
	if gcRanInside || !entryThere || !p.Cached {
		t.Fatalf("GC ran while Prepare held the entry (removed it: %v)", !entryThere)
	}
	if !flockBlocked(t, lock.Ino) {
		t.Fatal("GC ran while the caller held its lease on the tree, before mounting it")
	}
	p.Release()
	if res := <-gcDone; !slices.Equal(res.Removed, []string{p.Digest}) {
		t.Errorf("GC after the Prepare removed %v, want %s", res.Removed, p.Digest)
	}
}

// flockBlocked reports whether /proc/locks shows a process waiting for a
// flock on inode ino.
func flockBlocked(t *testing.T, ino uint64) bool {
	f, err := os.Open("/proc/locks")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 6 && fields[1] == "->" && fields[2] == "FLOCK" && strings.HasSuffix(fields[6], fmt.Sprintf(":%d", ino)) {
			return true
		}
	}
	return false
}

// TestGCKeepsMounted mounts overlays over a cached tree, named in the two
// ways mountinfo shows them (lowerdir= through a symlink to the cache,
// and fsconfig's lowerdir+=): GC keeps the tree while it is mounted and
// says so, removes what nothing uses, and removes the tree once unmounted.
func TestGCKeepsMounted(t *testing.T) {
	if !isRoot {
		t.Skip("overlay mounts need root")
	}
	_, img := packTree(t)
	other := filepath.Join(t.TempDir(), "other.tar")
	writeTar(t, other, []entry{{name: "only", typ: regT, data: "other"}})
	for _, how := range []string{"lowerdir= through a symlink", "lowerdir+="} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			c, err := OpenCache(filepath.Join(dir, "cache"))
			if err != nil {
				t.Fatal(err)
			}
			used, err := c.Prepare(img, PrepareOptions{})
			if err != nil {
				t.Fatal(err)
			}
			unused, err := c.Prepare(other, PrepareOptions{})
			if err != nil {
				t.Fatal(err)
			}
			unused.Release()
			if err := os.Symlink(c.Root, filepath.Join(dir, "alias")); err != nil {
				t.Fatal(err)
			}
			lower := filepath.Join(dir, "alias", filepath.Base(filepath.Dir(used.Rootfs)), "rootfs")
			mnt := mountOverlay(t, dir, lower, how == "lowerdir+=")
			used.Release() // mounted: the mount keeps it now
			res, err := c.GC(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.InUse, []string{used.Digest}) || !slices.Equal(res.Removed, []string{unused.Digest}) {
				t.Errorf("gc with the tree mounted: %+v", res)
			}
			if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
				t.Fatal(err)
			}
			if res, err := c.GC(nil); err != nil || !slices.Equal(res.Removed, []string{used.Digest}) {
				t.Errorf("gc after the unmount: %+v %v", res, err)
			}
		})
	}
}

// mountOverlay mounts an overlay of lower at dir/mnt, with mount(2) or
// with fsconfig's lowerdir+ (one option per layer), and returns it.
func mountOverlay(t *testing.T, dir, lower string, fsconfig bool) string {
	t.Helper()
	mnt, upper, work := filepath.Join(dir, "mnt"), filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, d := range []string{mnt, upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	if !fsconfig {
		if err := unix.Mount("overlay", mnt, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work); err != nil {
			t.Fatal(err)
		}
		return mnt
	}
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		t.Skipf("fsopen: %v", err)
	}
	defer unix.Close(fd)
	for _, kv := range [][2]string{{"lowerdir+", lower}, {"upperdir", upper}, {"workdir", work}} {
		if err := unix.FsconfigSetString(fd, kv[0], kv[1]); err != nil {
			t.Skipf("fsconfig %s: %v (kernel before 6.8?)", kv[0], err)
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(m)
	if err := unix.MoveMount(m, "", unix.AT_FDCWD, mnt, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		t.Fatal(err)
	}
	return mnt
}

// TestOverlayLowers reads lower layers from overlay options as mountinfo
// shows them: octal escapes from the kernel, backslash escapes of ':'
// from mount(2)'s option string, fsconfig's one option per layer.
func TestOverlayLowers(t *testing.T) {
	cases := map[string][]string{
		`rw,lowerdir=/a:/b,upperdir=/u,workdir=/w`:                  {"/a", "/b"},
		`rw,lowerdir=/with\:colon:/with\054comma,upperdir=/u`:       {"/with:colon", "/with,comma"},
		`rw,lowerdir+=/x\040y,lowerdir+=/z,datadir+=/d,upperdir=/u`: {"/x y", "/z"},
		`rw,upperdir=/u,workdir=/w`:                                 nil,
	}
	for opts, want := range cases {
		if got := overlayLowers(opts); !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", opts, got, want)
		}
	}
}

// TestCacheLockPlanted: what a data partition written elsewhere may hold
// at the cache's .lock — a dangling symlink, a symlink to a file of the
// host, a FIFO — is neither followed nor blocked on: nothing outside the
// cache is created or opened for writing, .lock is made a regular file
// again, and the cache works (OpenCache, Prepare, GC).
func TestCacheLockPlanted(t *testing.T) {
	_, img := packTree(t)
	for _, tc := range []struct {
		name  string
		plant func(lock, outside string) error
	}{
		{"dangling symlink", func(lock, outside string) error { return os.Symlink(filepath.Join(outside, "new"), lock) }},
		{"symlink to a file", func(lock, outside string) error { return os.Symlink(filepath.Join(outside, "file"), lock) }},
		{"fifo", func(lock, _ string) error { return unix.Mkfifo(lock, 0o600) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outside := t.TempDir()
			file := filepath.Join(outside, "file")
			if err := os.WriteFile(file, []byte("host data\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			then := time.Now().Add(-time.Hour).Truncate(time.Second)
			if err := os.Chtimes(file, then, then); err != nil {
				t.Fatal(err)
			}
			root := filepath.Join(t.TempDir(), "cache")
			lock := filepath.Join(root, ".lock")
			if err := os.Mkdir(root, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := tc.plant(lock, outside); err != nil {
				t.Fatal(err)
			}
			written := watchWrites(t, outside)
			c, err := OpenCache(root)
			if err != nil {
				t.Fatal(err)
			}
			p := prepareReleased(t, c, img, PrepareOptions{})
			if _, err := c.GC(map[string]bool{p.Digest: true}); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Lstat(lock); err != nil {
				t.Error(err)
			} else if !fi.Mode().IsRegular() {
				t.Errorf("%s after the cache used it: %v, want a regular file", lock, fi.Mode())
			}
			if written() {
				t.Errorf("a file in %s was created or opened for writing", outside)
			}
			b, err := os.ReadFile(file)
			fi, serr := os.Stat(file)
			if err != nil || serr != nil || string(b) != "host data\n" || !fi.ModTime().Equal(then) {
				t.Errorf("the host's file: %q %v %v, want it untouched", b, err, serr)
			}
			if ents, err := os.ReadDir(outside); err != nil || len(ents) != 1 {
				t.Errorf("%s holds %v %v, want the file alone", outside, ents, err)
			}
		})
	}
}

// watchWrites watches the directory dir; the returned func reports
// whether a file was created in it or opened for writing there since.
func watchWrites(t *testing.T, dir string) func() bool {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_CLOSE_WRITE|unix.IN_MODIFY); err != nil {
		t.Fatal(err)
	}
	return func() bool {
		n, err := unix.Read(fd, make([]byte, 4096))
		return n > 0 || err != unix.EAGAIN
	}
}
