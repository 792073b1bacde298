package image

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// olderTree prepares img in a new cache and makes its entry look like an
// older berth's (cache format 1): no format file, and a file of the tree
// left 0600 as the umask race of format 1 left it. It returns the cache,
// the entry's rootfs and the file made 0600 (relative to the rootfs).
func olderTree(t *testing.T, want map[string]node, img string) (*Cache, string, string) {
	t.Helper()
	c, p := preparedCache(t, img)
	format := filepath.Join(filepath.Dir(p.Rootfs), formatFile)
	if b, err := os.ReadFile(format); err != nil || string(b) != "2\n" {
		t.Fatalf("format file of a new entry: %q %v", b, err)
	}
	if err := os.Remove(format); err != nil {
		t.Fatal(err)
	}
	var names []string
	for name, n := range want {
		if n.typ == unix.S_IFREG && n.perm&0o077 != 0 && n.links == "" {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		t.Fatal("the test tree has no file readable by others")
	}
	slices.Sort(names)
	if err := os.Chmod(filepath.Join(p.Rootfs, names[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	return c, p.Rootfs, names[0]
}

// TestPrepareReplacesOlderTree: a tree an older berth made is unpacked
// again in its place, once; the tree is then the image's, with its modes.
func TestPrepareReplacesOlderTree(t *testing.T) {
	want, img := packTree(t)
	c, rootfs, broken := olderTree(t, want, img)
	if st, err := os.Stat(filepath.Join(rootfs, broken)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("setup: %v %v", st, err)
	}
	p := prepareReleased(t, c, img, PrepareOptions{})
	if p.Cached || p.Stale != "" || !p.Replaced || p.Rootfs != rootfs || p.Stats.Entries != len(want) {
		t.Errorf("prepare over an older tree: %+v", p)
	}
	compareTrees(t, want, snapshot(t, rootfs))
	if ents := cacheEntries(t, c.Root); len(ents) != 1 || !strings.HasPrefix(ents[0], "sha256-") {
		t.Errorf("cache holds %v after the replacement, want the entry alone", ents)
	}
	if !entryCurrent(filepath.Dir(rootfs)) {
		t.Error("the new tree has no current format file")
	}
	again := prepareReleased(t, c, img, PrepareOptions{})
	if !again.Cached || again.Replaced || again.Stale != "" {
		t.Errorf("third prepare: %+v, want cached", again)
	}
}

// TestPrepareReplacesOlderTreeOnce: two processes' caches (two Cache
// values, each with its own locks in this process) replacing one older
// tree at once: both get the tree, one of them unpacked it, nothing is
// left behind. Neither takes the other's passing look at the entry for a
// container using it (a few rounds: the two must meet).
func TestPrepareReplacesOlderTreeOnce(t *testing.T) {
	want, img := packTree(t)
	for round := range 5 {
		first, rootfs, _ := olderTree(t, want, img)
		second := &Cache{Root: first.Root}
		var wg sync.WaitGroup
		got := make([]Prepared, 2)
		for i, c := range []*Cache{first, second} {
			wg.Go(func() {
				p, err := c.Prepare(img, PrepareOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				p.Release()
				got[i] = p
			})
		}
		wg.Wait()
		if got[0].Replaced == got[1].Replaced || got[0].Stale != "" || got[1].Stale != "" {
			t.Errorf("round %d, two prepares: %+v and %+v, want exactly one replacement", round, got[0], got[1])
		}
		compareTrees(t, want, snapshot(t, rootfs))
		if ents := cacheEntries(t, first.Root); len(ents) != 1 {
			t.Errorf("round %d: cache holds %v, want the entry alone", round, ents)
		}
	}
}

// TestPrepareKeepsOlderTreeInUse: an older tree a mounted overlay uses
// is used as it is (Stale), not pulled from under the overlay; once
// unmounted, it is replaced.
func TestPrepareKeepsOlderTreeInUse(t *testing.T) {
	if !isRoot {
		t.Skip("overlay mounts need root")
	}
	want, img := packTree(t)
	c, rootfs, broken := olderTree(t, want, img)
	mnt := mountOverlay(t, t.TempDir(), rootfs, false)
	p := prepareReleased(t, c, img, PrepareOptions{})
	if !p.Cached || p.Stale != "a container root uses it" || p.Replaced {
		t.Errorf("prepare of an older tree in use: %+v, want cached and stale", p)
	}
	if st, err := os.Stat(filepath.Join(mnt, broken)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the overlay's file: %v %v, want the older tree's, untouched", st, err)
	}
	if l, ok, err := c.Lookup(fileDigest(t, img)); err != nil || !ok || l.Stale == "" {
		t.Errorf("lookup of an older tree in use: %+v %v %v, want it, stale", l, ok, err)
	} else {
		l.Release()
	}
	if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	wantReplaced(t, c, img, want, rootfs, "once unmounted")
}

// TestLookupOlderTree: Lookup does not find an older berth's tree (a pull
// fetches the image again); LookupAny does, marked stale.
func TestLookupOlderTree(t *testing.T) {
	want, img := packTree(t)
	c, rootfs, _ := olderTree(t, want, img)
	digest := fileDigest(t, img)
	if p, ok, err := c.Lookup(digest); err != nil || ok {
		p.Release()
		t.Errorf("lookup of an older tree: %+v %v %v, want not found", p, ok, err)
	}
	p, ok, err := c.LookupAny(digest)
	if err != nil || !ok || p.Stale == "" || p.Rootfs != rootfs {
		t.Errorf("lookup any of an older tree: %+v %v %v, want it, stale", p, ok, err)
	}
	if ok {
		p.Release()
	}
}

// TestPrepareLeaseKeepsOlderTree: while a lease on an older tree is held
// (a Prepared not yet released: its caller is about to mount the tree),
// another cache does not replace it but uses it as it is; once the lease
// is released, it replaces it.
func TestPrepareLeaseKeepsOlderTree(t *testing.T) {
	want, img := packTree(t)
	c, rootfs, broken := olderTree(t, want, img)
	held, ok, err := c.LookupAny(fileDigest(t, img))
	if err != nil || !ok {
		t.Fatalf("lookup any: %v %v", ok, err)
	}
	other := &Cache{Root: c.Root}
	var steps []string
	crashPoint = func(step string) { steps = append(steps, step) }
	defer func() { crashPoint = nil }()
	p := prepareReleased(t, other, img, PrepareOptions{})
	if !p.Cached || p.Replaced || p.Stale != "a container root uses it" {
		t.Errorf("prepare under a lease: %+v", p)
	}
	// The same cache too, as an update does (its first phase's lease
	// held while it prepares the container again): in neither is the
	// image unpacked again for nothing.
	if p := prepareReleased(t, c, img, PrepareOptions{}); p.Stale != "a container root uses it" {
		t.Errorf("prepare in the leasing cache: %+v", p)
	}
	if slices.Contains(steps, "staging") {
		t.Errorf("prepares under a lease went through %v: an unpack for nothing", steps)
	}
	crashPoint = nil
	if st, err := os.Stat(filepath.Join(rootfs, broken)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the leased tree's file: %v %v, want it untouched", st, err)
	}
	if ents := cacheEntries(t, c.Root); len(ents) != 1 {
		t.Errorf("cache holds %v, want the entry alone", ents)
	}
	held.Release()
	wantReplaced(t, other, img, want, rootfs, "once the lease is released")
}

// TestPrepareOlderTreeUnpackFails: when the older tree cannot be
// unpacked again (here: a limit), it is used as it is, and nothing is
// left of the attempt.
func TestPrepareOlderTreeUnpackFails(t *testing.T) {
	want, img := packTree(t)
	c, _, _ := olderTree(t, want, img)
	p := prepareReleased(t, c, img, PrepareOptions{Limits: Limits{MaxEntries: 2}})
	if !p.Cached || p.Replaced || !strings.HasPrefix(p.Stale, "unpacking it again failed: ") {
		t.Errorf("prepare of an older tree that fails to unpack: %+v", p)
	}
	if ents := cacheEntries(t, c.Root); len(ents) != 1 {
		t.Errorf("cache holds %v, want the entry alone", ents)
	}
}

// TestEntryFormat reads format files: a later format counts as current,
// anything unreadable as an older berth's.
func TestEntryFormat(t *testing.T) {
	for _, tc := range []struct {
		content string // "-": no file
		current bool
	}{
		{"-", false}, {"", false}, {"1\n", false}, {"2\n", true}, {"2", true}, {" 3 \n", true},
		{"x\n", false}, {"-2\n", false}, {strings.Repeat("9", 100), false},
	} {
		dir := t.TempDir()
		if tc.content != "-" {
			if err := os.WriteFile(filepath.Join(dir, formatFile), []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := entryCurrent(dir); got != tc.current {
			t.Errorf("format file %q: current %v, want %v", tc.content, got, tc.current)
		}
	}
}

// TestPrepareHostileFormatFile: what a data partition written elsewhere
// may hold at an entry's format file — a FIFO, a symlink to a file of the
// current format, a directory, a device, a file larger than any format —
// is neither blocked on, nor followed, nor opened: the entry is unpacked
// again, its tree the image's.
func TestPrepareHostileFormatFile(t *testing.T) {
	want, img := packTree(t)
	outside := filepath.Join(t.TempDir(), "format")
	if err := os.WriteFile(outside, []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		plant func(p string) error
	}{
		{"fifo", func(p string) error { return unix.Mkfifo(p, 0o644) }},
		{"symlink", func(p string) error { return os.Symlink(outside, p) }},
		{"directory", func(p string) error { return os.Mkdir(p, 0o755) }},
		{"device", func(p string) error { return unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))) }},
		{"file too large", func(p string) error {
			return os.WriteFile(p, []byte("2\n"+strings.Repeat(" ", maxFormatFile)), 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "device" && !isRoot {
				t.Skip("mknod needs root")
			}
			c, first := preparedCache(t, img)
			format := filepath.Join(filepath.Dir(first.Rootfs), formatFile)
			if err := os.Remove(format); err != nil {
				t.Fatal(err)
			}
			if err := tc.plant(format); err != nil {
				t.Fatal(err)
			}
			p := prepareWithin(t, c, img, format)
			if p.Cached || !p.Replaced || p.Stale != "" || p.Rootfs != first.Rootfs {
				t.Errorf("prepare over a %s at the format file: %+v, want the entry unpacked again", tc.name, p)
			}
			compareTrees(t, want, snapshot(t, p.Rootfs))
			if fi, err := os.Lstat(format); err != nil {
				t.Error(err)
			} else if !fi.Mode().IsRegular() || !entryCurrent(filepath.Dir(format)) {
				t.Errorf("format file after the prepare: %v, want a current regular file", fi.Mode())
			}
		})
	}
}

// prepareWithin is prepareReleased, failing the test when Prepare has not
// returned within 20 s (blocked on a FIFO at fifo, say: it is then opened
// for writing until Prepare returns, so that Prepare holds no lock past
// the test).
func prepareWithin(t *testing.T, c *Cache, img, fifo string) Prepared {
	t.Helper()
	type result struct {
		p   Prepared
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := c.Prepare(img, PrepareOptions{})
		if err == nil {
			p.Release()
		}
		done <- result{p, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.p
	case <-time.After(20 * time.Second):
	}
	for range 1000 {
		if fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
			unix.Close(fd)
		}
		select {
		case <-done:
			t.Fatalf("prepare returned only once %s was opened for writing, after 20 s", fifo)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("prepare has not returned in 30 s")
	return Prepared{}
}

// TestPrepareReplaceCrash kills a child replacing an older tree at each
// step (kill -9): opened again, the cache holds the older tree or the new
// one and no staging directory, and the next prepare gives the image's
// tree.
func TestPrepareReplaceCrash(t *testing.T) {
	want, img := packTree(t)
	for _, step := range []string{"unpacked", "synced", "renamed"} {
		t.Run(step, func(t *testing.T) {
			c, rootfs, _ := olderTree(t, want, img)
			killChildAt(t, step, "BERTH_TEST_CRASH_AT="+step, "BERTH_TEST_CACHE="+c.Root, "BERTH_TEST_SRC="+img)
			c, err := OpenCache(c.Root)
			if err != nil {
				t.Fatal(err)
			}
			if ents := cacheEntries(t, c.Root); len(ents) != 1 || !strings.HasPrefix(ents[0], "sha256-") {
				t.Fatalf("after a kill at %s the cache holds %v", step, ents)
			}
			if current := entryCurrent(filepath.Dir(rootfs)); current != (step == "renamed") {
				t.Errorf("after a kill at %s the entry is current: %v", step, current)
			}
			p, err := c.Prepare(img, PrepareOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p.Release()
			if p.Replaced != (step != "renamed") {
				t.Errorf("prepare after a kill at %s: %+v", step, p)
			}
			compareTrees(t, want, snapshot(t, p.Rootfs))
		})
	}
}

// prepareReleased prepares img in c and releases the lease at once.
func prepareReleased(t *testing.T, c *Cache, img string, opts PrepareOptions) Prepared {
	t.Helper()
	p, err := c.Prepare(img, opts)
	if err != nil {
		t.Fatal(err)
	}
	p.Release()
	return p
}

// wantReplaced prepares img in c (when: the test's moment) and wants the
// older tree at rootfs replaced by the image's, want.
func wantReplaced(t *testing.T, c *Cache, img string, want map[string]node, rootfs, when string) {
	t.Helper()
	if p := prepareReleased(t, c, img, PrepareOptions{}); !p.Replaced {
		t.Errorf("prepare %s: %+v, want the tree replaced", when, p)
	}
	compareTrees(t, want, snapshot(t, rootfs))
}

// TestLookupWhileReplacing: another process's Lookup of an older tree
// while a Prepare replaces it: the Prepare replaces it (the Lookup's
// test of use is not a container's), and the Lookup finds nothing (the
// older tree unused) or the new tree, never the older one as in use.
func TestLookupWhileReplacing(t *testing.T) {
	want, img := packTree(t)
	digest := fileDigest(t, img)
	for round := range 20 {
		first, _, _ := olderTree(t, want, img)
		second := &Cache{Root: first.Root}
		var wg sync.WaitGroup
		var prep, look Prepared
		var found bool
		wg.Go(func() {
			p, err := first.Prepare(img, PrepareOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			p.Release()
			prep = p
		})
		wg.Go(func() {
			for range 50 {
				p, ok, err := second.Lookup(digest)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					p.Release()
					look, found = p, true
					if p.Stale == "" {
						return
					}
				}
			}
		})
		wg.Wait()
		if !prep.Replaced || prep.Stale != "" {
			t.Errorf("round %d: prepare %+v, want the older tree replaced", round, prep)
		}
		if found && look.Stale != "" {
			t.Errorf("round %d: lookup found the older tree as %q", round, look.Stale)
		}
	}
}
