package boot_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/image"
	"berth/internal/busybox"
	"berth/internal/testutil"
	"berth/internal/vm"
)

// storageConfig mounts the data partition; "app", as a user namespace's
// root, appends a line to a note in its volume; "status" then shows
// berth status's storage as a user would see it.
const storageConfig = `
[storage]
device = "%s"
timeout = "%s"

[[container]]
name = "app"
image = "/images/demo.tar.zst"
oneshot = true
user_ns = true
command = ["/bin/sh", "-c", "echo written >> /root/note && echo note has $(wc -l < /root/note) lines, volume owner $(stat -c %%u:%%g /root)"]
[[container.mount]]
volume = "notes"
target = "/root"

[[container]]
name = "status"
image = "/images/demo.tar.zst"
oneshot = true
command = ["/bin/sh", "-c", "berth status | grep '^storage'; berth status --json | grep -E '\"(state|volumes_dir)\"'"]
` + vm.BerthCLIMounts

// storageModules are what the guest needs for a virtio disk with ext4
// besides the overlay: berth loads them itself (by modalias, and the
// filesystem as fs-ext4). ext4's soft dependency names an alias,
// crypto-crc32c, that vm.Modules does not resolve: crc32c_generic
// provides it.
var storageModules = []string{"overlay", "virtio_pci", "virtio_blk", "ext4", "crc32c_generic"}

// storageImages are the persistence test's images, each built once: a
// busybox rootfs with a token that tells the images apart and a payload
// that makes the unpack take a while under TCG, so that a power cut
// lands in it (1500 files of 2 KiB). The manifests of their trees are
// what a cache entry must be.
type storageImages struct {
	dir   string
	paths map[string]string
	trees map[string]map[string]string
}

// image returns the path of the image with token, and its manifest.
func (s *storageImages) image(t *testing.T, token string) (string, map[string]string) {
	t.Helper()
	if p, ok := s.paths[token]; ok {
		return p, s.trees[token]
	}
	files := map[string]string{"token": token}
	for i := range 1500 {
		sum := sha256.Sum256([]byte(fmt.Sprint(i)))
		files[fmt.Sprintf("payload/%02d/%04d", i%30, i)] = strings.Repeat(fmt.Sprintf("%x", sum), 32)
	}
	rootfs := filepath.Join(s.dir, "rootfs-"+token)
	if err := busybox.Rootfs(testutil.RepoRoot(), "amd64", rootfs, files); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.dir, "image-"+token+".tar.zst")
	if err := image.Pack(rootfs, p, image.PackOptions{}); err != nil {
		t.Fatal(err)
	}
	if s.paths == nil {
		s.paths, s.trees = map[string]string{}, map[string]map[string]string{}
	}
	s.paths[token], s.trees[token] = p, treeManifest(t, rootfs)
	return p, s.trees[token]
}

// TestQEMUStorage boots with a virtio disk the test formats as ext4
// labelled "data". amd64: the first boot finds and mounts it, unpacks
// the image into the cache there and a user-namespaced container writes
// into its volume; the second boot decodes nothing and finds the note.
// Then QEMU is killed (SIGKILL: a power cut) at five random moments of
// the unpack of a new image, the last just after its end: after each,
// the disk holds complete cache entries or none — never a partial tree —
// and the volume's note as it was; a last boot finishes, leaving the
// last image's entry alone and no staging directory. Besides,
// a boot without the disk (amd64) and one whose "data" is a FAT stick
// (arm64) report the partition missing or unmountable on the console and
// in berth status: the container with a volume is marked failed, the
// other runs.
func TestQEMUStorage(t *testing.T) {
	for _, tool := range []string{"mkfs.ext4", "mkfs.vfat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (make host-deps installs e2fsprogs and dosfstools): %v", tool, err)
		}
	}
	t.Run("persist/amd64", func(t *testing.T) {
		t.Parallel()
		testStoragePersists(t)
	})
	t.Run("missing/amd64", func(t *testing.T) {
		t.Parallel()
		out, err := bootAppliance(t, appliance{arch: "amd64", config: fmt.Sprintf(storageConfig, "LABEL=data", "2s"), modules: storageModules})
		if err != nil {
			t.Errorf("QEMU did not exit cleanly: %v", err)
		}
		wantUnusable(t, out, "missing: waited 2s for LABEL=data")
	})
	t.Run("unmountable/arm64", func(t *testing.T) {
		t.Parallel()
		disk := makeDisk(t, 32<<20, "mkfs.vfat", "-n", "DATA")
		out, err := bootAppliance(t, appliance{arch: "arm64", config: fmt.Sprintf(storageConfig, "LABEL=DATA", "30s"), modules: storageModules,
			vm: vm.Config{ExtraQEMU: diskArgs(disk)}})
		if err != nil {
			t.Errorf("QEMU did not exit cleanly: %v", err)
		}
		wantUnusable(t, out, "failed: mount /dev/vda at /data as ext4: invalid argument (kernel: EXT4-fs (vda): VFS: Can't find ext4 filesystem")
	})
}

// wantUnusable checks a boot whose data partition could not be used:
// the console says why, the container with a volume fails, the other
// runs and shows it in berth status, and the machine powers off.
func wantUnusable(t *testing.T, out, why string) {
	t.Helper()
	wantLines(t, out,
		"berth: WARNING: storage LABEL=", why, "; berth's state and image cache stay in /var/lib/berth, and containers with volumes will not start",
		"berth: container app: volume notes needs the data partition LABEL=",
		"status | storage     LABEL=", "; containers with volumes do not start; state in /var/lib/berth",
		`"state": "`+strings.SplitN(why, ":", 2)[0]+`"`,
		"berth: power off")
	if strings.Contains(out, "app | note has") {
		t.Errorf("app ran without its volume")
	}
}

// testStoragePersists is the amd64 persistence test and its power cuts.
func testStoragePersists(t *testing.T) {
	disk := makeDisk(t, 256<<20, "mkfs.ext4", "-q", "-F", "-L", "data")
	config := fmt.Sprintf(storageConfig, "LABEL=data", "30s")
	// The boots cut short leave the note alone, should one get as far
	// as the containers.
	readOnly := strings.Replace(config, "echo written >> /root/note && ", "", 1)
	images := &storageImages{dir: t.TempDir()}
	boot := func(token string, console *lineClock, kill <-chan struct{}) (string, error) {
		img, _ := images.image(t, token)
		a := appliance{arch: "amd64", config: config, modules: storageModules, image: img,
			kill: kill, vm: vm.Config{ExtraQEMU: diskArgs(disk)}}
		if console != nil {
			a.serial = console
		}
		if kill != nil {
			a.config = readOnly
		}
		return bootAppliance(t, a)
	}

	// 1. The first boot unpacks the image into the cache on the disk;
	// the unpack's duration, as the console shows it, sizes the window
	// of the power cuts.
	start := time.Now()
	console := &lineClock{}
	out, err := boot("first", console, nil)
	if err != nil {
		t.Errorf("boot 1: QEMU did not exit cleanly: %v", err)
	}
	wantLines(t, out,
		`berth: storage: LABEL=data is /dev/vda (ext4 "data"), found after`,
		"berth: storage: /dev/vda mounted at /data (ext4, noatime,nodev,nosuid); berth's state in /data/berth",
		"unpacked into the cache", "app | note has 1 lines, volume owner 0:0",
		`status | storage     LABEL=data: /dev/vda (ext4 "data") mounted at /data (ext4), `, "; state in /data/berth, volumes in /data/volumes",
		`"state": "mounted"`, `"volumes_dir": "/data/volumes"`, "berth: power off")
	window := console.between(imagesPhase, unpacked)
	t.Logf("boot 1: %s; the images phase took %s to the unpack's end", time.Since(start).Round(time.Millisecond), window)
	if t.Failed() || window <= 0 {
		t.FailNow()
	}

	// 2. The second boot decodes nothing and finds the note.
	start = time.Now()
	out, err = boot("first", nil, nil)
	if err != nil {
		t.Errorf("boot 2: QEMU did not exit cleanly: %v", err)
	}
	wantLines(t, out, "already unpacked, nothing decoded", "app | note has 2 lines", "berth: power off")
	if unpacked.MatchString(out) {
		t.Errorf("boot 2 decoded the image again")
	}
	t.Logf("boot 2: %s", time.Since(start).Round(time.Millisecond))
	checkDisk(t, images, disk, 2)
	if t.Failed() {
		t.FailNow()
	}

	// 3. Five power cuts, each in the unpack of a new image, at random
	// moments: four in successive quarters of boot 1's unpack, the last
	// just after the unpack's end, the tree renamed into place and, with
	// ext4's delayed allocation, durable only if it was synced first.
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("power cuts: seed %d", seed)
	slice := window / 4
	interrupted := 0
	for i := 1; i <= 5; i++ {
		on, delay := imagesPhase, time.Duration(i-1)*slice+time.Duration(rng.Int64N(int64(slice)))
		if i == 5 {
			on, delay = unpacked, time.Duration(rng.Int64N(int64(slice)))
		}
		kill := make(chan struct{})
		console := &lineClock{on: on, then: func() { time.AfterFunc(delay, func() { close(kill) }) }}
		start := time.Now()
		out, _ := boot(fmt.Sprint(i), console, kill)
		finished := unpacked.MatchString(out)
		if !finished {
			interrupted++
		}
		staging, tokens := checkDisk(t, images, disk, 2)
		t.Logf("power cut %d: %s after %q (boot killed after %s); unpack finished: %v; partial trees on the disk: %d; entries: %v",
			i, delay.Round(time.Millisecond), on, time.Since(start).Round(time.Millisecond), finished, staging, tokens)
		if finished && !slices.Contains(tokens, fmt.Sprint(i)) {
			t.Errorf("power cut %d: berth said the image was unpacked into the cache, but the disk holds no complete entry of it", i)
		}
		if t.Failed() {
			t.Fatalf("console:\n%s", out)
		}
	}
	if interrupted == 0 {
		t.Errorf("no power cut came before the end of an unpack")
	}

	// 4. A last boot with the last image: it ends with that image's
	// entry, complete, and at most one other, complete too: the image of
	// the generation before, which the cache keeps until the next commit
	// (berth rollback needs it).
	start = time.Now()
	out, err = boot("5", nil, nil)
	if err != nil {
		t.Errorf("last boot: QEMU did not exit cleanly: %v", err)
	}
	wantLines(t, out, "app | note has 3 lines", "berth: power off")
	t.Logf("last boot: %s", time.Since(start).Round(time.Millisecond))
	staging, found := checkDisk(t, images, disk, 3)
	if staging != 0 {
		t.Errorf("the last boot left %d staging directories", staging)
	}
	if !slices.Contains(found, "5") || len(found) > 2 {
		t.Errorf("after the last boot the cache holds %v: want 5's entry and at most the previous generation's", found)
	}
}

// imagesPhase is the console line that ends the phase before the
// images: the unpack starts right after it; unpacked ends it.
var (
	imagesPhase = regexp.MustCompile(`berth: phase \d+/\d+ network`)
	unpacked    = regexp.MustCompile(`unpacked into the cache`)
)

// makeDisk makes a raw disk image of size bytes and a filesystem on it
// with mkfs and its arguments (the image appended).
func makeDisk(t *testing.T, size int64, mkfs ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs[0], append(mkfs[1:], p)...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", mkfs, err, out)
	}
	return p
}

// diskArgs attach a raw disk image as a virtio disk.
func diskArgs(disk string) []string {
	return []string{"-drive", "file=" + disk + ",if=virtio,format=raw"}
}

// checkDisk mounts a copy of the disk on this host (replaying its
// journal as the next boot would) and checks what a power cut must not
// break: the volume's note has its lines, and each cache entry is a
// complete tree of one of the test's images — tokens, when given, says
// which are allowed. It returns how many staging directories (unpacks in
// progress) the disk holds.
func checkDisk(t *testing.T, images *storageImages, disk string, lines int, tokens ...string) (staging int, found []string) {
	t.Helper()
	mnt, unmount := mountDiskCopy(t, disk)
	defer unmount()
	note, err := os.ReadFile(filepath.Join(mnt, "volumes", "notes", "note"))
	if want := strings.Repeat("written\n", lines); err != nil || string(note) != want {
		t.Errorf("the volume's note: %q (%v), want %q", note, err, want)
	}
	cache := filepath.Join(mnt, "berth", "images")
	ents, err := os.ReadDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		switch name := e.Name(); {
		case strings.HasPrefix(name, ".staging-"):
			staging++
		case strings.HasPrefix(name, "sha256-"):
			found = append(found, checkEntry(t, images, filepath.Join(cache, name, "rootfs"), tokens))
		case name == ".lock" || name == ".digests":
		default:
			t.Errorf("the cache holds %s", name)
		}
	}
	if len(tokens) > 0 && len(found) != len(tokens) {
		t.Errorf("the cache holds %d entries, want %d", len(found), len(tokens))
	}
	return staging, found
}

// checkEntry compares a cache entry's tree with the image it must be:
// one of the test's images (one of tokens, when given), whole. It
// returns the image's token.
func checkEntry(t *testing.T, images *storageImages, rootfs string, tokens []string) string {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(rootfs, "token"))
	if err != nil {
		t.Errorf("cache entry %s: no token: a partial tree", rootfs)
		return ""
	}
	if _, ok := images.paths[string(token)]; !ok {
		t.Errorf("cache entry %s: token %q is none of the test's images: a partial tree", rootfs, token)
		return string(token)
	}
	if len(tokens) > 0 && !slices.Contains(tokens, string(token)) {
		t.Errorf("cache entry %s: image %q, want one of %v", rootfs, token, tokens)
	}
	_, want := images.image(t, string(token))
	got := treeManifest(t, rootfs)
	for p, w := range want {
		if got[p] != w {
			t.Errorf("cache entry %s: %s is %q, want %q: a partial tree", rootfs, p, got[p], w)
			break
		}
	}
	if len(got) != len(want) {
		t.Errorf("cache entry %s: %d paths, want %d", rootfs, len(got), len(want))
	}
	return string(token)
}

// treeManifest describes each path of a tree: its type and permissions,
// and a regular file's content hash or a symlink's target.
func treeManifest(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%s %o", fi.Mode().Type(), fi.Mode().Perm())
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %x", sha256.Sum256(data))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		m[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return m
}

// lineClock is a console writer that notes when each line arrives and,
// the first time a line matches on, calls then.
type lineClock struct {
	on   *regexp.Regexp
	then func()

	mu      sync.Mutex
	partial []byte
	lines   []string
	at      []time.Time
	fired   bool
}

func (c *lineClock) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(c.partial[:i])
		c.partial = c.partial[i+1:]
		c.lines, c.at = append(c.lines, line), append(c.at, time.Now())
		if c.on != nil && !c.fired && c.on.MatchString(line) {
			c.fired = true
			c.then()
		}
	}
}

// between is the time from the first line matching from to the first
// line after it matching to; 0 when either is missing.
func (c *lineClock) between(from, to *regexp.Regexp) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, l := range c.lines {
		if from.MatchString(l) {
			for j := i + 1; j < len(c.lines); j++ {
				if to.MatchString(c.lines[j]) {
					return c.at[j].Sub(c.at[i])
				}
			}
			return 0
		}
	}
	return 0
}

// mountDiskCopy mounts a copy of the raw disk image disk on this host,
// which replays its journal as the next boot would, and returns where,
// with the function that unmounts it.
func mountDiskCopy(t *testing.T, disk string) (mnt string, unmount func()) {
	t.Helper()
	dir := t.TempDir()
	cp := filepath.Join(dir, "disk.img")
	mnt = filepath.Join(dir, "mnt")
	if out, err := exec.Command("cp", "--sparse=always", disk, cp).CombinedOutput(); err != nil {
		t.Fatalf("copy the disk: %v\n%s", err, out)
	}
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "loop,nodev,nosuid,noexec", cp, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount the disk: %v\n%s", err, out)
	}
	return mnt, func() { exec.Command("umount", mnt).Run() }
}
