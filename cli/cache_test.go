package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"berth/internal/testutil"
)

// TestBootImageCache boots the same config twice with `berth boot` on this
// host: the first boot unpacks the (signed, digest-pinned) image into the
// cache once for both containers, the second decodes nothing; a
// container's writes land in its own layer, never in the cache or in the
// other container; `berth image gc` keeps what the config references.
func TestBootImageCache(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "bb.tar.zst")
	if status, _, stderr := berth(t, "image", "pack", testutil.BusyboxRootfs(t), "-o", img); status != 0 {
		t.Fatalf("pack: %d %s", status, stderr)
	}
	_, digest, _ := berth(t, "image", "digest", img)
	digest = strings.TrimSpace(digest)
	key := filepath.Join(dir, "vendor")
	if status, _, stderr := berth(t, "image", "keygen", "-o", key); status != 0 {
		t.Fatalf("keygen: %d %s", status, stderr)
	}
	if status, _, stderr := berth(t, "image", "sign", "--key", key+".key", img); status != 0 {
		t.Fatalf("sign: %d %s", status, stderr)
	}
	state := filepath.Join(dir, "state")
	cfg := filepath.Join(dir, "berth.toml")
	write(t, cfg, `[images]
public_key = "vendor.pub"

[[container]]
name = "writer"
image = "bb.tar.zst"
digest = "`+digest+`"
oneshot = true
command = ["sh", "-c", "echo mine > /etc/written && cat /etc/written"]

[[container]]
name = "reader"
image = "bb.tar.zst"
after = ["writer"]
command = ["sh", "-c", "test -e /etc/written && echo sees the writer || echo clean"]
`)
	boot := func() string {
		t.Helper()
		status, stdout, stderr := berth(t, "boot", "--config", cfg, "--state", state, "--socket", filepath.Join(dir, "berth.sock"))
		if status != 0 {
			t.Fatalf("boot: status %d\n%s%s", status, stdout, stderr)
		}
		return stdout
	}
	short := digest[:len("sha256:")+12]

	// 1. First boot: one unpack, shared.
	out := boot()
	for _, w := range []string{
		"image " + img + " for writer: " + short + " unpacked into the cache",
		"image " + img + " for reader: " + short + " already unpacked, nothing decoded",
		"writer | mine", "reader | clean",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("first boot lacks %q", w)
		}
	}
	cached := filepath.Join(state, "images", strings.Replace(digest, ":", "-", 1), "rootfs")
	if _, err := os.Stat(filepath.Join(cached, "bin", "busybox")); err != nil {
		t.Errorf("no cached tree: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(cached, "etc", "written")); err == nil {
		t.Errorf("a container's write reached the image cache")
	}

	// 2. Second boot: nothing decoded.
	out = boot()
	if n := strings.Count(out, "already unpacked, nothing decoded"); n != 2 {
		t.Errorf("second boot: %d images ready without decoding, want 2\n%s", n, out)
	}
	if strings.Contains(out, "unpacked into the cache") {
		t.Errorf("second boot decoded the image again")
	}
	if t.Failed() {
		t.Logf("log:\n%s", out)
	}

	// 3. A tree an older berth unpacked (no format file), with busybox
	// left 0600 as that berth's umask race could leave it: unpacked again
	// in its place, and the containers run busybox.
	if err := os.Remove(filepath.Join(filepath.Dir(cached), "format")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(cached, "bin", "busybox"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = boot()
	for _, w := range []string{
		"image " + img + " for writer: " + short + " was unpacked by an older berth: unpacked again in its place",
		"image " + img + " for reader: " + short + " already unpacked, nothing decoded",
		"writer | mine", "reader | clean",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("boot over an older tree lacks %q\n%s", w, out)
		}
	}
	if st, err := os.Stat(filepath.Join(cached, "bin", "busybox")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("busybox in the cache after the boot: %v %v, want 0755", st, err)
	}

	// 4. gc keeps what the config references, removes the rest.
	if status, stdout, stderr := berth(t, "image", "gc", "--cache", filepath.Join(state, "images"), "--config", cfg); status != 0 || stdout != "" {
		t.Errorf("gc with the config: status %d, stdout %q, stderr %s", status, stdout, stderr)
	}
	// An entry under a mounted overlay (a running container's root) stays.
	mnt := filepath.Join(dir, "mnt")
	for _, d := range []string{"upper", "work", "mnt"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	opts := "lowerdir=" + cached + ",upperdir=" + filepath.Join(dir, "upper") + ",workdir=" + filepath.Join(dir, "work")
	if err := unix.Mount("overlay", mnt, "overlay", 0, opts); err != nil {
		t.Fatal(err)
	}
	// --state of no generations: the boot's generation 1 would keep the
	// tree (TestGCKeepsGenerations).
	noGens := t.TempDir()
	os.Mkdir(filepath.Join(noGens, "generations"), 0o700) // empty
	status, stdout, stderr := berth(t, "image", "gc", "--cache", filepath.Join(state, "images"), "--keep", "sha256:"+strings.Repeat("0", 64), "--state", noGens)
	unix.Unmount(mnt, unix.MNT_DETACH)
	if status != 0 || stdout != "" || !strings.Contains(stderr, "kept "+digest+": a mounted container root uses it") {
		t.Errorf("gc with the tree mounted: status %d, stdout %q, stderr %s", status, stdout, stderr)
	}
	status, stdout, stderr = berth(t, "image", "gc", "--cache", filepath.Join(state, "images"), "--keep", "sha256:"+strings.Repeat("0", 64), "--state", noGens)
	if status != 0 || stdout != "removed "+digest+"\n" {
		t.Errorf("gc keeping nothing of ours: status %d, stdout %q, stderr %s", status, stdout, stderr)
	}
}

// TestBootImageRefused checks that an image failing its digest or its
// signature is refused before anything is unpacked: the container is
// reported failed with the reason and the cache stays empty.
func TestBootImageRefused(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "bb.tar.zst")
	if status, _, stderr := berth(t, "image", "pack", testutil.BusyboxRootfs(t), "-o", img); status != 0 {
		t.Fatalf("pack: %d %s", status, stderr)
	}
	if status, _, stderr := berth(t, "image", "keygen", "-o", filepath.Join(dir, "vendor")); status != 0 {
		t.Fatalf("keygen: %d %s", status, stderr)
	}
	tests := []struct {
		name, keys, want string
	}{
		{"digest mismatch", `digest = "sha256:` + strings.Repeat("ab", 32) + `"`, "sha256:" + strings.Repeat("ab", 32)},
		{"unsigned", `public_key = "vendor.pub"`, "bb.tar.zst.sig"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			cfg := filepath.Join(dir, "berth.toml")
			write(t, cfg, "[[container]]\nname = \"app\"\nimage = \"bb.tar.zst\"\ncommand = [\"true\"]\n"+tc.keys+"\n")
			status, stdout, stderr := berth(t, "boot", "--config", cfg, "--state", state, "--socket", filepath.Join(dir, "berth.sock"))
			if status != 1 || !strings.Contains(stdout, "container app: image:") || !strings.Contains(stdout, tc.want) {
				t.Errorf("status %d, want 1 and a log naming %q:\n%s%s", status, tc.want, stdout, stderr)
			}
			ents, _ := os.ReadDir(filepath.Join(state, "images"))
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), "sha256-") || strings.HasPrefix(e.Name(), ".staging-") {
					t.Errorf("the refused image reached the cache: %s", e.Name())
				}
			}
		})
	}
}
