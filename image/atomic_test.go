package image

import (
	"archive/tar"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// destKind is a kind of DIR to unpack into.
type destKind struct {
	name  string
	setup func(t *testing.T, dest string) // makes dest (nothing: missing)
}

var destKinds = []destKind{
	{"missing", func(*testing.T, string) {}},
	{"empty", func(t *testing.T, dest string) { mkdir(t, dest) }},
	{"empty mount point", func(t *testing.T, dest string) { mkdir(t, dest); mountTmpfs(t, dest) }},
	{"not empty", func(t *testing.T, dest string) {
		mkdir(t, dest)
		if err := os.WriteFile(filepath.Join(dest, "keep.txt"), []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
	}},
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.Mkdir(p, 0o750); err != nil {
		t.Fatal(err)
	}
}

// mountTmpfs mounts a fresh tmpfs on dir until the test ends.
func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	if !isRoot {
		t.Skip("mounting a tmpfs needs root")
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256m,mode=1777"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

// noStaging fails the test if a staging directory is left in dir.
func noStaging(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), stagePrefix) {
			t.Errorf("staging directory %s left in %s", e.Name(), dir)
		}
	}
}

// TestUnpackTargets unpacks a good image into each kind of DIR — missing,
// empty, an empty mount point (a tmpfs), not empty — from a berth image
// and from a tar: DIR gets the image's tree, the image's root metadata
// included; a DIR that held files keeps them; no staging directory is
// left anywhere.
func TestUnpackTargets(t *testing.T) {
	want, img := packTree(t)
	plain := filepath.Join(filepath.Dir(img), "img.tar")
	run(t, "sh", "-c", "zstd -q -d -c "+img+" > "+plain)
	for _, k := range destKinds {
		for _, src := range []string{img, plain} {
			t.Run(k.name+"/"+filepath.Base(src), func(t *testing.T) {
				base := t.TempDir()
				dest := filepath.Join(base, "dest")
				k.setup(t, dest)
				before := map[string]node{}
				if k.name == "not empty" {
					before = snapshot(t, dest)
					delete(before, ".")
				}
				if _, err := Unpack(src, dest, UnpackOptions{}); err != nil {
					t.Fatal(err)
				}
				expect := maps.Clone(want)
				maps.Copy(expect, before)
				compareTrees(t, expect, snapshot(t, dest))
				noStaging(t, base)
				noStaging(t, dest)
				if ents, _ := os.ReadDir(base); len(ents) != 1 {
					t.Errorf("%s holds %d entries, want only dest", base, len(ents))
				}
			})
		}
	}
}

// TestUnpackTargetsHostile unpacks hostile and broken images, whose first
// entries are fine, into each kind of DIR in every mode: DIR must end as
// it was (missing, or empty — a mount point still mounted), or for a DIR
// that held files, hold them still; nothing is written outside DIR and no
// staging directory is left anywhere.
func TestUnpackTargetsHostile(t *testing.T) {
	good := []entry{{name: "etc/", typ: tar.TypeDir}, {name: "etc/passwd", typ: tar.TypeReg, data: "root:x:0:0"},
		{name: "big", typ: tar.TypeReg, data: strings.Repeat("x", 5000)}}
	cases := []struct {
		name string
		bad  []entry // nil: the good entries, cut in the middle of big's data
	}{
		{"truncated", nil},
		{"dotdot", []entry{{name: "../x", typ: tar.TypeReg, data: "x"}}},
		{"through a symlink", []entry{{name: "evil", typ: tar.TypeSymlink, link: "../sentinel"}, {name: "evil/f", typ: tar.TypeReg, data: "x"}}},
		{"hardlink outside", []entry{{name: "h", typ: tar.TypeLink, link: "../outside"}}},
		{"absolute", []entry{{name: "/etc/shadow", typ: tar.TypeReg, data: "x"}}},
		{"root as a file", []entry{{name: ".", typ: tar.TypeReg, data: "x"}}},
	}
	for _, k := range destKinds {
		for mode, m := range unpackModes {
			for _, c := range cases {
				t.Run(k.name+"/"+m.name+"/"+c.name, func(t *testing.T) {
					base := t.TempDir()
					sentinel := filepath.Join(base, "sentinel")
					mkdir(t, sentinel)
					os.Chmod(sentinel, 0o755)
					os.WriteFile(filepath.Join(base, "outside"), []byte("outside"), 0o644)
					arc := filepath.Join(base, "evil.tar")
					writeTar(t, arc, append(append([]entry{}, good...), c.bad...))
					if c.bad == nil {
						os.Truncate(arc, 512*6+2500)
					}
					dest := filepath.Join(base, "dest")
					k.setup(t, dest)
					var before unix.Stat_t
					unix.Stat(dest, &before)
					if _, err := unpackMode(t, arc, dest, mode, UnpackOptions{}); err == nil {
						t.Fatal("unpack succeeded")
					}
					checkOutside(t, base, sentinel)
					noStaging(t, base)
					checkDestAfterFailure(t, k.name, dest, &before)
				})
			}
		}
	}
}

// checkDestAfterFailure checks what a failed unpack left in dest.
func checkDestAfterFailure(t *testing.T, kind, dest string, before *unix.Stat_t) {
	t.Helper()
	ents, err := os.ReadDir(dest)
	switch kind {
	case "missing":
		if !os.IsNotExist(err) {
			t.Errorf("dest exists after a failed unpack (%d entries, %v)", len(ents), err)
		}
		return
	case "not empty":
		if b, err := os.ReadFile(filepath.Join(dest, "keep.txt")); err != nil || string(b) != "mine" {
			t.Errorf("keep.txt: %q %v", b, err)
		}
		noStaging(t, dest)
		return
	}
	if err != nil || len(ents) != 0 {
		t.Errorf("dest holds %d entries after a failed unpack (%v)", len(ents), err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dest, &st); err != nil || st.Ino != before.Ino || st.Dev != before.Dev || st.Mode != before.Mode {
		t.Errorf("dest changed: %+v, was %+v (%v)", st, before, err)
	}
}

// TestUnpackCrash kills (kill -9) a child process unpacking into DIR at
// each step, for a missing DIR, an empty one and an empty mount point:
// DIR must then be as it was or complete, and a later unpack into it must
// remove what the dead one left and give the complete tree.
func TestUnpackCrash(t *testing.T) {
	want, img := packTree(t)
	steps := map[string][]string{
		"missing":           {"staging", "extracting", "unpacked", "synced", "renamed"},
		"empty":             {"staging", "extracting", "unpacked", "synced", "renamed"},
		"empty mount point": {"staging", "extracting", "unpacked", "synced", "moving", "moved"},
	}
	for _, k := range destKinds[:3] {
		for _, step := range steps[k.name] {
			t.Run(k.name+"/"+step, func(t *testing.T) {
				base := t.TempDir()
				dest := filepath.Join(base, "dest")
				k.setup(t, dest)
				crashUnpackAt(t, step, img, dest)
				switch ents, err := os.ReadDir(dest); {
				case step == "renamed":
					compareTrees(t, want, snapshot(t, dest))
				case step == "moving" || step == "moved":
					if len(ents) < 2 { // the staging directory and what moved
						t.Errorf("after a kill while moving, dest holds %d entries", len(ents))
					}
				case k.name == "missing" && !os.IsNotExist(err), k.name != "missing" && len(ents) > 1:
					t.Errorf("after a kill at %s dest holds %d entries (%v)", step, len(ents), err)
				}
				if _, err := Unpack(img, dest, UnpackOptions{}); err != nil {
					t.Fatal(err)
				}
				compareTrees(t, want, snapshot(t, dest))
				noStaging(t, base)
				noStaging(t, dest)
			})
		}
	}
}

// crashUnpackAt runs Unpack(img, dest) in a child process and kills it
// with SIGKILL once it reaches step.
func crashUnpackAt(t *testing.T, step, img, dest string) {
	t.Helper()
	killChildAt(t, step, "BERTH_TEST_UNPACK_AT="+step, "BERTH_TEST_DEST="+dest, "BERTH_TEST_SRC="+img)
}

// killChildAt runs this test binary as a child with env added (TestMain
// dispatches on it), waits until the child says it is at step and kills
// it with SIGKILL there.
func killChildAt(t *testing.T, step string, env ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 200)
	n, _ := out.Read(line)
	if got := strings.TrimSpace(string(line[:n])); got != "at "+step {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q", got)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child: %v", err)
	}
}

// crashUnpackChild runs Unpack(BERTH_TEST_SRC, BERTH_TEST_DEST); at step
// it says so on stdout and waits to be killed.
func crashUnpackChild(step string) {
	crashPoint = func(s string) {
		if s == step {
			fmt.Println("at", s)
			// The parent kills us here. A sleep, not select{}: with every other
			// goroutine gone, the runtime would call select{} a deadlock and
			// exit 2 before the kill arrives.
			time.Sleep(time.Hour)
		}
	}
	_, err := Unpack(os.Getenv("BERTH_TEST_SRC"), os.Getenv("BERTH_TEST_DEST"), UnpackOptions{})
	fmt.Println("finished", err)
	os.Exit(0)
}

// TestUnpackBusy refuses to unpack into a DIR another unpack is staging
// in, and leaves that unpack's staging directory alone.
func TestUnpackBusy(t *testing.T) {
	_, img := packTree(t)
	dest := filepath.Join(t.TempDir(), "dest")
	mkdir(t, dest)
	mountTmpfs(t, dest)
	live, err := newStaging(dest, stagePrefix)
	if err != nil {
		t.Fatal(err)
	}
	defer live.remove()
	if _, err := Unpack(img, dest, UnpackOptions{}); err == nil || !strings.Contains(err.Error(), "another unpack") {
		t.Fatalf("error %v, want another unpack in progress", err)
	}
	if _, err := os.Stat(live.path); err != nil {
		t.Errorf("the live staging directory was removed: %v", err)
	}
}

// TestStagingHostileLeftovers: what a process that writes the target
// planted as a staging directory's leftovers is never followed: the
// removal's chmod walk leaves what symlinks at any depth point to alone,
// and a journal
// that is a FIFO, a symlink or too large is refused, not read.
func TestStagingHostileLeftovers(t *testing.T) {
	victim := t.TempDir()
	if err := os.Chmod(victim, 0o751); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for _, d := range []string{"tree/a/b", "tree/c"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"tree/link", "tree/a/link", "tree/a/b/link"} {
		if err := os.Symlink(victim, filepath.Join(dir, l)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"tree/a/b", "tree/a", "tree/c"} {
		if err := os.Chmod(filepath.Join(dir, d), 0o500); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := unix.Open(tree, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	chmodTreeAt(fd, 0)
	if fi, err := os.Stat(victim); err != nil || fi.Mode().Perm() != 0o751 {
		t.Errorf("the directory behind the symlinks: %v, %v; want mode 0751", fi.Mode(), err)
	}
	for _, d := range []string{"tree", "tree/a", "tree/a/b", "tree/c"} {
		if fi, _ := os.Lstat(filepath.Join(dir, d)); fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", d, fi.Mode().Perm())
		}
	}

	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(victim, "secret")
	if err := os.WriteFile(secret, []byte("a\x00b"), 0o600); err != nil {
		t.Fatal(err)
	}
	slink := filepath.Join(dir, "slink")
	if err := os.Symlink(secret, slink); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, maxJournal+1); err != nil {
		t.Fatal(err)
	}
	// readJournal reads p as the journal of a staging directory of its own.
	readJournal := func(p string) ([]byte, error) {
		stage := t.TempDir()
		if err := os.Rename(p, filepath.Join(stage, journalName)); err != nil {
			t.Fatal(err)
		}
		fd, err := openDirAtNoFollow(unix.AT_FDCWD, stage)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		return readJournalAt(fd, filepath.Join(stage, journalName))
	}
	for name, p := range map[string]string{"a FIFO": fifo, "a symlink": slink, "a file past the limit": big} {
		if _, err := readJournal(p); err == nil {
			t.Errorf("%s as the journal: read", name)
		}
	}
	ok := filepath.Join(dir, "ok")
	if err := os.WriteFile(ok, []byte("x\x00y"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := readJournal(ok); err != nil || string(b) != "x\x00y" {
		t.Errorf("a journal: %q, %v", b, err)
	}
}

// TestUnpackDanglingSymlink: a DIR that is a symlink to nothing is
// refused saying so, not as a race, and nothing is made at either end.
func TestUnpackDanglingSymlink(t *testing.T) {
	_, img := packTree(t)
	base := t.TempDir()
	link := filepath.Join(base, "link")
	if err := os.Symlink("nowhere", link); err != nil {
		t.Fatal(err)
	}
	_, err := Unpack(img, link, UnpackOptions{})
	if err == nil || !strings.Contains(err.Error(), link+" is a symlink to nowhere, which does not exist") {
		t.Fatalf("unpack into a dangling symlink: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(base, "nowhere")); !os.IsNotExist(err) {
		t.Errorf("the symlink's target was made (%v)", err)
	}
	noStaging(t, base)
}
