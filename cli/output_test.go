package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOutputNotRegularVerbs gives image pack, image sign and initramfs an
// output that is a FIFO or a device node: each exits 1 naming it, before
// the work (initramfs builds nothing), and leaves it as it was (-o
// /dev/null once replaced the host's /dev/null with a regular file).
func TestOutputNotRegularVerbs(t *testing.T) {
	dir := t.TempDir()
	at := func(name string) string { return filepath.Join(dir, name) }
	write(t, at("src/etc/hostname"), "box\n")
	write(t, at("app.toml"), "[[container]]\nname = \"web\"\nimage = \"app.tar.zst\"\ncommand = [\"true\"]\n")
	if status, _, stderr := berth(t, "image", "pack", at("src"), "-o", at("app.tar.zst")); status != 0 {
		t.Fatalf("pack: %d %s", status, stderr)
	}
	if status, _, stderr := berth(t, "image", "keygen", "-o", at("k")); status != 0 {
		t.Fatalf("keygen: %d %s", status, stderr)
	}
	if err := unix.Mkfifo(at("fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]string{at("fifo"): "a FIFO"}
	if unix.Mknod(at("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))) == nil {
		nodes[at("null")] = "a character device"
	}
	for out, kind := range nodes {
		for _, args := range [][]string{
			{"image", "pack", at("src"), "-o", out},
			{"image", "sign", "--key", at("k.key"), "--sig", out, at("app.tar.zst")},
			{"initramfs", "--config", at("app.toml"), "-o", out},
		} {
			before, _ := os.Lstat(out)
			status, stdout, stderr := berth(t, args...)
			want := out + " is " + kind + ", not a regular file: refusing to replace it"
			if status != 1 || !strings.Contains(stderr, want) || strings.Contains(stdout, "<-") {
				t.Errorf("berth %v: status %d, stdout %q, stderr %q; want 1 and %q", args, status, stdout, stderr, want)
			}
			var now any
			if after, err := os.Lstat(out); err != nil {
				now = err
			} else {
				now = after.Mode()
			}
			if now != before.Mode() {
				t.Errorf("berth %v: %s is now %v, was %v", args, out, now, before.Mode())
			}
		}
	}
}
