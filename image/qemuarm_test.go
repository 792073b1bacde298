//go:build qemuarm

// The 32-bit test (make test-32bit): it needs qemu-arm-static and about
// 5 GiB of disk, and takes a few minutes, so it is built only with the
// qemuarm tag. Everything it needs missing is a failure, not a skip.

package image

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// maxUnpackRSS bounds the unpack's memory on 32-bit as on 64-bit: the
// windows count towards it.
const maxUnpackRSS = 64 << 20

// bigSize is the incompressible file of the 32-bit test: over 2 GiB, so
// that no 32-bit process can map the image whole, and odd.
const bigSize = 2<<30 + 64<<20 + 12345

// TestQemuArm32 packs an image of more than 2 GiB of random data on the
// host and has the 32-bit arm berth, under qemu-arm, unpack it and read
// the file at its end: berth reads it through windows (an arm berth that
// maps images whole fails with "file too large to map"). The tree must
// match: the big file byte for byte, the last file's bytes from both
// unpack and cat; and the unpack's peak RSS — berth's own, not qemu's —
// stays within 64 MiB.
func TestQemuArm32(t *testing.T) {
	qemu, err := exec.LookPath("qemu-arm-static")
	if err != nil {
		t.Fatal("qemu-arm-static is missing: install Debian's qemu-user-static (make test-32bit does)")
	}
	arm := armBerth(t)
	work := bigTempDir(t, 5<<30)
	img := filepath.Join(work, "big.berth")
	last := packBig(t, work, img)

	dest := filepath.Join(work, "dest")
	start := time.Now()
	out, use := runQemu(t, qemu, arm, "image", "unpack", img, dest)
	t.Logf("qemu-arm: berth image unpack of %d bytes: %.1f s, peak RSS %d MiB (qemu's: %d MiB)",
		fileSize(t, img), time.Since(start).Seconds(), use.guest>>10, use.qemu>>10)
	switch {
	case use.guest < 0:
		t.Errorf("qemu-arm never showed %s below 4 GiB (guest_base 0): the unpack's memory cannot be told from qemu's", arm)
	case use.guest > maxUnpackRSS>>10:
		t.Errorf("the unpack's peak RSS is %d MiB, over the bound of %d MiB", use.guest>>10, maxUnpackRSS>>20)
	}
	if len(out) > 0 {
		t.Logf("unpack said: %s", out)
	}
	checkBig(t, filepath.Join(dest, "big.bin"))
	if got, err := os.ReadFile(filepath.Join(dest, "zz", "last.txt")); err != nil || !bytes.Equal(got, last) {
		t.Errorf("zz/last.txt unpacked: %q %v, want %q", got, err, last)
	}
	os.RemoveAll(dest)

	start = time.Now()
	out, use = runQemu(t, qemu, arm, "image", "cat", img, "zz/last.txt")
	t.Logf("qemu-arm: berth image cat of the last file: %.1f s, peak RSS %d MiB (qemu's: %d MiB)",
		time.Since(start).Seconds(), use.guest>>10, use.qemu>>10)
	if !bytes.Equal(out, last) {
		t.Errorf("berth image cat zz/last.txt: %q, want %q", out, last)
	}
	if out, _ := runQemu(t, qemu, arm, "image", "ls", img, "big.bin"); !strings.Contains(string(out), fmt.Sprint(bigSize)) {
		t.Errorf("berth image ls big.bin: %q, want its size %d", out, bigSize)
	}

}

// armBerth is the arm berth to test: $BERTH_ARM, or one built now.
func armBerth(t *testing.T) string {
	if p := os.Getenv("BERTH_ARM"); p != "" {
		return p
	}
	bin := filepath.Join(t.TempDir(), "berth-arm")
	cmd := exec.Command("go", "build", "-o", bin, "..")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm", "GOARM=7", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the arm berth: %v\n%s", err, out)
	}
	return bin
}

// bigTempDir is a new directory on a disk with need bytes free:
// $BERTH_BIG_TMPDIR, or /var/tmp, never a tmpfs (the test's files would
// take that much memory).
func bigTempDir(t *testing.T, need int64) string {
	parent := os.Getenv("BERTH_BIG_TMPDIR")
	if parent == "" {
		parent = "/var/tmp"
	}
	var st unix.Statfs_t
	if err := unix.Statfs(parent, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		t.Fatalf("%s is a tmpfs: set BERTH_BIG_TMPDIR to a directory on a disk", parent)
	}
	if free := int64(st.Bavail) * st.Bsize; free < need {
		t.Fatalf("%s has %d MiB free, the test needs %d MiB: set BERTH_BIG_TMPDIR", parent, free>>20, need>>20)
	}
	dir, err := os.MkdirTemp(parent, "berth-qemuarm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// bigData is the big file's content: a fast, seeded stream.
func bigData() io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{'b', 'e', 'r', 't', 'h'}), bigSize)
}

// packBig writes a tree (a.txt, big.bin, zz/last.txt — in that order in
// the stream) and packs it into img, then removes the tree. It returns
// the last file's content.
func packBig(t *testing.T, work, img string) []byte {
	tree := filepath.Join(work, "tree")
	last := []byte("the last file, after more than 2 GiB of stream\n")
	for name, data := range map[string][]byte{"a.txt": []byte("first\n"), "zz/last.txt": last} {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(filepath.Join(tree, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, bigData()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := Pack(tree, img, PackOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("packed %d bytes on the host in %.1f s", fileSize(t, img), time.Since(start).Seconds())
	if err := os.RemoveAll(tree); err != nil {
		t.Fatal(err)
	}
	return last
}

// usage is what a run under qemu-arm used, in KiB, sampled every 20 ms.
type usage struct {
	qemu  int64 // qemu's VmHWM: the guest's memory, qemu's and its translator's
	guest int64 // the peak RSS of the guest's mappings: berth's own; -1 if never seen
}

// runQemu runs the arm berth under qemu-arm with args and returns its
// stdout and its peak memory; it fails the test when berth fails. (The
// child's ru_maxrss would count the test process's own RSS, which the
// child shares until it executes qemu.)
func runQemu(t *testing.T, qemu, arm string, args ...string) ([]byte, usage) {
	t.Helper()
	cmd := exec.Command(qemu, append([]string{arm}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	use := usage{guest: -1}
	for tick := time.Tick(20 * time.Millisecond); ; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("qemu-arm berth %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
			}
			return stdout.Bytes(), use
		case <-tick:
			q, g := sampleQemu(cmd.Process.Pid, arm)
			use.qemu, use.guest = max(use.qemu, q), max(use.guest, g)
		}
	}
}

// sampleQemu reads qemu's VmHWM and the resident size of the guest's
// mappings: qemu-arm on a 64-bit host puts the guest's 4 GiB at host
// address 0 (guest_base 0), which the mapping of the arm binary shows;
// guest is -1 until it does.
func sampleQemu(pid int, arm string) (qemuHWM, guest int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, -1
	}
	inGuest, sawBinary := false, false
	for _, line := range strings.Split(string(b), "\n") {
		var lo, hi uint64
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 {
			inGuest = hi <= 1<<32
			sawBinary = sawBinary || inGuest && strings.HasSuffix(line, " "+arm)
			continue
		}
		if rest, ok := strings.CutPrefix(line, "Rss:"); ok && inGuest {
			var kib int64
			fmt.Sscan(rest, &kib)
			guest += kib
		}
	}
	if !sawBinary {
		guest = -1
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if _, rest, ok := strings.Cut(string(status), "VmHWM:"); ok {
		fmt.Sscan(rest, &qemuHWM)
	}
	return qemuHWM, guest
}

// checkBig compares the unpacked big file with the stream it was made of.
func checkBig(t *testing.T, p string) {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, want := sha256.New(), sha256.New()
	n, err := io.Copy(got, f)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(want, bigData())
	if n != bigSize || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Errorf("big.bin: %d bytes, sha256 %x; want %d bytes, sha256 %x", n, got.Sum(nil), bigSize, want.Sum(nil))
	}
}

func fileSize(t *testing.T, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
