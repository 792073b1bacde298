package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"berth/internal/testutil"
)

// TestRunUserNS runs an ordinary image and an ordinary directory in a
// user namespace: the container's root sees the image's files owned by
// 0 and writes its own (berth run maps the root mount; where it cannot,
// or BERTH_NO_IDMAP=1, it shifts the owners of the image's private
// copy; an operator's directory is never chowned).
func TestRunUserNS(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	img := filepath.Join(t.TempDir(), "bb.tar.zst")
	if status, _, stderr := berth(t, "image", "pack", rootfs, "-o", img); status != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	const script = `stat -c "%u:%g" /bin/busybox; id -u; echo mine > /made && stat -c "%u:%g" /made; mkdir /newdir && echo mkdir ok
		awk '$5 == "/" { print ($6 ~ /idmapped/) ? "idmapped" : "shifted" }' /proc/self/mountinfo`
	for _, c := range []struct{ src, noIDMap, how string }{{img, "", "idmapped"}, {img, "1", "shifted"}, {rootfs, "", "idmapped"}} {
		t.Setenv("BERTH_NO_IDMAP", c.noIDMap) // 1: the unpacked image's owners are shifted instead
		status, stdout, stderr := berth(t, "run", "--userns", c.src, "--", "sh", "-c", script)
		if want := "0:0\n0\n0:0\nmkdir ok\n" + c.how + "\n"; status != 0 || stdout != want {
			t.Errorf("%s (BERTH_NO_IDMAP=%s): status %d stdout %q stderr %q; want %q", c.src, c.noIDMap, status, stdout, stderr, want)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(rootfs, "made"), &st); err != nil || st.Uid != 0 {
		t.Errorf("the directory's new file on the host: uid %d, %v; want 0, the ids the container wrote", st.Uid, err)
	}
}

// TestBootUserNS boots an ordinary image in a user namespace, over an
// idmapped image and, forced, over a shifted copy: the container's root
// sees the image's files owned by 0 and writes its own, which the host
// sees owned by the mapped root (100000); the cached tree keeps its
// owners.
func TestBootUserNS(t *testing.T) {
	for _, mode := range []string{"idmapped", "shifted"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "shifted" {
				t.Setenv("BERTH_NO_IDMAP", "1")
			}
			bootUserNS(t, mode)
		})
	}
}

func bootUserNS(t *testing.T, mode string) {
	dir := t.TempDir()
	if status, _, stderr := berth(t, "image", "pack", testutil.BusyboxRootfs(t), "-o", filepath.Join(dir, "bb.tar.zst")); status != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	cfg, state, sock := filepath.Join(dir, "berth.toml"), filepath.Join(dir, "state"), filepath.Join(dir, "berth.sock")
	write(t, cfg, `[[container]]
name = "ns"
image = "bb.tar.zst"
user_ns = true
init = true
command = ["sh", "-c", "echo $(stat -c %u:%g /bin/busybox) $(id -u); echo mine > /made; mkdir /newdir; echo ready; sleep 1000"]
`)
	t.Setenv("BERTH_SOCKET", sock)
	log := &bootLog{}
	cmd := exec.Command(berthBin, "boot", "--config", cfg, "--state", state, "--socket", sock)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, "the container", log, func() bool {
		return strings.Contains(log.String(), "ns | ready") || strings.Contains(log.String(), "container ns failed")
	})
	if !strings.Contains(log.String(), "ns | 0:0 0\n") {
		t.Errorf("the container does not see the image's files as root's:\n%s", log.String())
	}
	upper := filepath.Join(state, "containers", "ns", "upper")
	for _, p := range []string{"made", "newdir"} {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(upper, p), &st); err != nil || st.Uid != 100000 || st.Gid != 100000 {
			t.Errorf("%s on the host: %d:%d, %v; want 100000:100000", p, st.Uid, st.Gid, err)
		}
	}
	trees, _ := filepath.Glob(filepath.Join(state, "images", "sha256-*", "rootfs", "bin", "busybox"))
	shifted, _ := filepath.Glob(filepath.Join(state, "images", "sha256-*", "shifted-*", "rootfs", "bin", "busybox"))
	for _, p := range trees {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil || st.Uid != 0 {
			t.Errorf("the cached tree's %s: uid %d, %v; want 0", p, st.Uid, err)
		}
	}
	if want := map[string]int{"idmapped": 0, "shifted": 1}[mode]; len(shifted) != want {
		t.Errorf("%d shifted copies, want %d", len(shifted), want)
	}
	for _, p := range shifted {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil || st.Uid != 100000 {
			t.Errorf("the shifted copy's %s: uid %d, %v; want 100000", p, st.Uid, err)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if _, err := os.Stat(trees[0]); err != nil {
		t.Errorf("the cached tree after the boot: %v", err)
	}
}
