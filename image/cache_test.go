package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain lets the crash tests re-execute this binary as a child that
// runs Prepare or Unpack and stops at a given step.
func TestMain(m *testing.M) {
	if step := os.Getenv("BERTH_TEST_CRASH_AT"); step != "" {
		crashChild(step)
		return
	}
	if step := os.Getenv("BERTH_TEST_UNPACK_AT"); step != "" {
		crashUnpackChild(step)
		return
	}
	os.Exit(m.Run())
}

// crashChild runs Prepare(BERTH_TEST_SRC) in BERTH_TEST_CACHE; at step it
// says so on stdout and waits to be killed.
func crashChild(step string) {
	crashPoint = func(s string) {
		if s == step {
			fmt.Println("at", s)
			// The parent kills us here. A sleep, not select{}: with every other
			// goroutine gone, the runtime would call select{} a deadlock and
			// exit 2 before the kill arrives.
			time.Sleep(time.Hour)
		}
	}
	c, err := OpenCache(os.Getenv("BERTH_TEST_CACHE"))
	if err == nil {
		_, err = c.Prepare(os.Getenv("BERTH_TEST_SRC"), PrepareOptions{})
	}
	fmt.Println("finished", err)
	os.Exit(0)
}

// TestPrepareCached prepares an image twice: the second time nothing is
// decoded, and the tree is the image's.
func TestPrepareCached(t *testing.T) {
	want, img := packTree(t)
	c, err := OpenCache(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.Prepare(img, PrepareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if first.Cached || first.Stats.Entries != len(want) || first.Digest != fileDigest(t, img) {
		t.Errorf("first prepare: %+v", first)
	}
	compareTrees(t, want, snapshot(t, first.Rootfs))
	second, err := c.Prepare(img, PrepareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !second.Cached || second.Stats.Entries != 0 || second.Rootfs != first.Rootfs || second.Elapsed <= 0 {
		t.Errorf("second prepare: %+v", second)
	}
	if !strings.HasSuffix(filepath.Dir(first.Rootfs), "sha256-"+first.Digest[7:]) {
		t.Errorf("rootfs %s is not under the digest", first.Rootfs)
	}
}

// preparedCache opens a new cache and prepares img in it, its lease
// released.
func preparedCache(t *testing.T, img string) (*Cache, Prepared) {
	t.Helper()
	c, err := OpenCache(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Prepare(img, PrepareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Release()
	return c, p
}

// fileDigest is `sha256sum` of a file.
func fileDigest(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha(b)
}

// TestPrepareConcurrent prepares one image from many goroutines at once,
// and two images side by side: each image is unpacked exactly once.
func TestPrepareConcurrent(t *testing.T) {
	_, img := packTree(t)
	other := filepath.Join(t.TempDir(), "other.tar")
	writeTar(t, other, []entry{{name: "only", typ: regT, data: "other"}})
	c, err := OpenCache(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	unpacked := map[string]int{}
	for i := range 8 {
		src := img
		if i%4 == 3 {
			src = other
		}
		wg.Go(func() {
			p, err := c.Prepare(src, PrepareOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if !p.Cached {
				unpacked[src]++
			}
		})
	}
	wg.Wait()
	if unpacked[img] != 1 || unpacked[other] != 1 {
		t.Errorf("unpacks per image: %v, want one each", unpacked)
	}
}

// TestPrepareRefuses checks an expected digest and a required signature
// are enforced before anything is written to the cache.
func TestPrepareRefuses(t *testing.T) {
	_, img := packTree(t)
	dir := t.TempDir()
	key, pub, err := Keygen(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	_, otherPub, _ := Keygen(filepath.Join(dir, "other"))
	signed := filepath.Join(dir, "signed.img")
	copyFile(t, img, signed)
	if _, err := Sign(signed, key, "", ""); err != nil {
		t.Fatal(err)
	}
	another := filepath.Join(dir, "another.tar")
	writeTar(t, another, []entry{{name: "x", typ: regT, data: "x"}})
	if _, err := Sign(another, key, "", ""); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		src  string
		opts PrepareOptions
		want error
	}{
		{"wrong digest", img, PrepareOptions{Digest: "sha256:" + strings.Repeat("0", 64)}, ErrDigestMismatch},
		{"unsigned", img, PrepareOptions{PublicKey: pub}, ErrSignature},
		{"signed by another key", signed, PrepareOptions{PublicKey: otherPub}, ErrSignature},
		{"signature of another image", img, PrepareOptions{PublicKey: pub, Signature: another + ".sig"}, ErrSignature},
		{"good signature", signed, PrepareOptions{PublicKey: pub}, nil},
		{"good digest", img, PrepareOptions{Digest: fileDigest(t, img)}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "cache")
			cache, err := OpenCache(root)
			if err != nil {
				t.Fatal(err)
			}
			_, err = cache.Prepare(c.src, c.opts)
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if c.want != nil {
				if ents := cacheEntries(t, root); len(ents) != 0 {
					t.Errorf("cache holds %v after a refusal", ents)
				}
			}
		})
	}
}

// cacheEntries lists the cache root, less its lock and memos.
func cacheEntries(t *testing.T, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != ".lock" && e.Name() != ".digests" {
			out = append(out, e.Name())
		}
	}
	return out
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPrepareCrash kills a child process doing Prepare (kill -9) at each
// step: the cache must then hold the complete tree or nothing, lose its
// staging directory when opened again, and prepare the image afterwards.
func TestPrepareCrash(t *testing.T) {
	want, img := packTree(t)
	for _, step := range []string{"staging", "extracting", "unpacked", "synced", "renamed"} {
		t.Run(step, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "cache")
			killChildAt(t, step, "BERTH_TEST_CRASH_AT="+step, "BERTH_TEST_CACHE="+root, "BERTH_TEST_SRC="+img)
			c, err := OpenCache(root)
			if err != nil {
				t.Fatal(err)
			}
			ents := cacheEntries(t, root)
			digest := fileDigest(t, img)
			switch {
			case len(ents) == 0 && step != "renamed":
			case len(ents) == 1 && ents[0] == "sha256-"+digest[7:] && (step == "renamed"):
				compareTrees(t, want, snapshot(t, filepath.Join(root, ents[0], "rootfs")))
			default:
				t.Fatalf("after a kill at %s the cache holds %v", step, ents)
			}
			p, err := c.Prepare(img, PrepareOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Cached != (step == "renamed") {
				t.Errorf("cached %v after a kill at %s", p.Cached, step)
			}
			compareTrees(t, want, snapshot(t, p.Rootfs))
		})
	}
}

// TestOpenCacheCleanup removes staging and trash directories nobody holds
// and keeps one a live unpack holds.
func TestOpenCacheCleanup(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{".staging-dead/rootfs/etc", ".trash-dead/x", ".staging-live/rootfs", "sha256-" + strings.Repeat("a", 64) + "/rootfs"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := lockDir(filepath.Join(root, ".staging-live"), unix.LOCK_EX)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := OpenCache(root); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(cacheEntries(t, root), " ")
	if want := ".staging-live sha256-" + strings.Repeat("a", 64); got != want {
		t.Errorf("cache holds %q, want %q", got, want)
	}
}

// TestGC removes what is not kept, and the temporary file of a digest
// memo a power cut interrupted; the memos of existing images stay.
func TestGC(t *testing.T) {
	_, img := packTree(t)
	other := filepath.Join(t.TempDir(), "other.tar")
	writeTar(t, other, []entry{{name: "only", typ: regT, data: "other"}})
	c, err := OpenCache(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Prepare(img, PrepareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Prepare(other, PrepareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a.Release()
	b.Release()
	memos := filepath.Join(c.Root, ".digests")
	before, _ := os.ReadDir(memos)
	memo, _ := c.memoPath(img)
	data, err := os.ReadFile(memo)
	if err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(memos, "."+filepath.Base(memo)+".tmp-123")
	if err := os.WriteFile(leftover, data, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := c.GC(map[string]bool{a.Digest: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || res.Removed[0] != b.Digest || len(res.Kept) != 1 || res.Kept[0] != a.Digest || res.Freed <= 0 {
		t.Errorf("gc %+v, want %s removed and %s kept", res, b.Digest, a.Digest)
	}
	if _, err := os.Stat(a.Rootfs); err != nil {
		t.Errorf("kept entry: %v", err)
	}
	if _, err := os.Stat(b.Rootfs); err == nil {
		t.Error("removed entry still there")
	}
	if got := cacheEntries(t, c.Root); len(got) != 1 {
		t.Errorf("cache holds %v", got)
	}
	if _, err := os.Lstat(leftover); err == nil {
		t.Error("the leftover of an interrupted memo is still there")
	}
	if after, _ := os.ReadDir(memos); len(after) != len(before) || len(before) != 2 {
		t.Errorf("memos before gc %v, after %v: want both images' kept", before, after)
	}
}

// TestPrepareForeignEntry: an entry planted on the cache's disk — the
// image's digest as a symlink to a directory of the host, or a real
// directory whose rootfs is a symlink to / — is not followed: the image
// is unpacked anew in its place. A cache root that is a symlink is
// refused.
func TestPrepareForeignEntry(t *testing.T) {
	want, img := packTree(t)
	digest := fileDigest(t, img)
	host := t.TempDir()
	if err := os.MkdirAll(filepath.Join(host, "rootfs", "host-secret"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		plant func(entry string) error
	}{
		{"entry a symlink", func(entry string) error { return os.Symlink(host, entry) }},
		{"rootfs a symlink", func(entry string) error {
			if err := os.Mkdir(entry, 0o700); err != nil {
				return err
			}
			// With the current format's file: the entry looks whole.
			if err := writeFormat(entry); err != nil {
				return err
			}
			return os.Symlink("/", filepath.Join(entry, "rootfs"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "cache")
			c, err := OpenCache(root)
			if err != nil {
				t.Fatal(err)
			}
			entry := filepath.Join(root, "sha256-"+digest[len("sha256:"):])
			if err := tc.plant(entry); err != nil {
				t.Fatal(err)
			}
			p, err := c.Prepare(img, PrepareOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Release()
			if p.Cached {
				t.Error("the planted entry was taken as cached")
			}
			for _, path := range []string{entry, p.Rootfs} {
				if fi, err := os.Lstat(path); err != nil || !fi.IsDir() {
					t.Errorf("%s after the prepare: %v %v, want a directory", path, fi.Mode(), err)
				}
			}
			compareTrees(t, want, snapshot(t, p.Rootfs))
			if _, err := os.Stat(filepath.Join(host, "rootfs", "host-secret")); err != nil {
				t.Errorf("the host directory the symlink named: %v", err)
			}
		})
	}
}

// TestCacheRemoveIfEmpty: only a root holding nothing but its lock, not
// locked by anyone else, goes, and with it its empty parents up to top;
// a file beside the lock, a lock held elsewhere, a parent holding
// something else, or a top that is not above root keeps them.
func TestCacheRemoveIfEmpty(t *testing.T) {
	for _, tc := range []struct {
		name     string
		prepare  func(t *testing.T, base, root string) (cleanup func())
		top      string // relative to base
		gone     string // relative to base: must be gone ("" for none)
		keptRoot bool
	}{
		{name: "fresh", top: "a", gone: "a"},
		{name: "top is root", top: "a/b", gone: "a/b"},
		{name: "file beside the lock", top: "a", keptRoot: true, prepare: func(t *testing.T, base, root string) func() {
			writeFile(t, filepath.Join(root, "blob"), "x")
			return nil
		}},
		{name: "parent holds more", top: "a", gone: "a/b", prepare: func(t *testing.T, base, root string) func() {
			writeFile(t, filepath.Join(base, "a", "other"), "x")
			return nil
		}},
		{name: "lock held", top: "a", keptRoot: true, prepare: func(t *testing.T, base, root string) func() {
			fd, err := unix.Open(filepath.Join(root, ".lock"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Flock(fd, unix.LOCK_SH); err != nil {
				t.Fatal(err)
			}
			return func() { unix.Close(fd) }
		}},
		{name: "top not above root", top: "elsewhere", gone: "a/b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			root := filepath.Join(base, "a", "b")
			c, err := OpenCache(root)
			if err != nil {
				t.Fatal(err)
			}
			if tc.prepare != nil {
				if cleanup := tc.prepare(t, base, root); cleanup != nil {
					defer cleanup()
				}
			}
			if err := c.RemoveIfEmpty(filepath.Join(base, tc.top)); err != nil {
				t.Fatal(err)
			}
			_, rootErr := os.Lstat(root)
			if tc.keptRoot != (rootErr == nil) {
				t.Errorf("root kept %v, want %v", rootErr == nil, tc.keptRoot)
			}
			if tc.gone != "" {
				if _, err := os.Lstat(filepath.Join(base, tc.gone)); !os.IsNotExist(err) {
					t.Errorf("%s not removed: %v", tc.gone, err)
				}
				if up := filepath.Dir(filepath.Join(base, tc.gone)); up != base {
					if _, err := os.Lstat(up); err != nil {
						t.Errorf("%s, above what was made, removed: %v", up, err)
					}
				}
			}
		})
	}
}

// writeFile writes a test file.
func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCacheLockFollowsRemoval: a process that opened the cache's lock
// file just before another removed the cache it had made (a failed
// first pull: RemoveIfEmpty) or replaced the file, and took the lock
// after, holds the lock of the file the path names, not of the one
// removed: OpenCache makes the root again, and a lock taken there is
// seen by everyone (review of stop 46).
func TestCacheLockFollowsRemoval(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "a", "cache")
	first, err := OpenCache(root)
	if err != nil {
		t.Fatal(err)
	}
	once := func(f func()) {
		lockOpened = func() {
			lockOpened = nil
			f()
		}
	}
	defer func() { lockOpened = nil }()

	// Removed between the open and the lock: OpenCache makes it again.
	once(func() {
		if err := first.RemoveIfEmpty(base); err != nil {
			t.Errorf("remove: %v", err)
		}
	})
	second, err := OpenCache(root)
	if err != nil {
		t.Fatalf("open while the cache was removed: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, ".lock")); err != nil {
		t.Fatalf("the cache made again has no lock file: %v", err)
	}

	// Replaced between the open and the lock: the lock held is the new
	// file's, which another open of the path cannot take.
	once(func() {
		tmp := filepath.Join(root, "new-lock")
		if err := os.WriteFile(tmp, nil, 0o600); err != nil {
			t.Error(err)
		}
		if err := os.Rename(tmp, filepath.Join(root, ".lock")); err != nil {
			t.Error(err)
		}
	})
	unlock, err := second.lockRoot(unix.LOCK_EX)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	f, err := os.Open(filepath.Join(root, ".lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		t.Errorf("the lock file the path names was not locked: flock %v", err)
	}
}
