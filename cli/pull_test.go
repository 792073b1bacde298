package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth/image/registry/registrytest"
)

// TestPullPushCLI: berth image push prints the manifest digest, berth
// pull prints the digest the reference resolved to, by tag and by digest,
// with the registry's settings from --config (TLS with the test's CA and
// basic auth) or --insecure; the pulled tree is the packed one.
func TestPullPushCLI(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{TLS: true, Basic: true})
	tree := registrytest.MakeTree(t, "cli")
	img := registrytest.PackImage(t, tree)
	s := reg.Regs[reg.Host]
	dir := t.TempDir()
	cfg := filepath.Join(dir, "berth.toml")
	toml := "[images]\ncache = \"" + filepath.Join(dir, "cache") + "\"\n[registries.\"" + reg.Host + "\"]\nca = \"" + s.CA +
		"\"\nusername = \"berth\"\npassword_file = \"" + s.PasswordFile + "\"\n"
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	ref := "docker://" + reg.Host + "/cli/img:v1"
	status, stdout, stderr := run(t, "image", "push", img, ref, "--config", cfg)
	if status != 0 {
		t.Fatalf("push: %d %s", status, stderr)
	}
	digest := strings.TrimSpace(stdout)
	for _, r := range []string{ref, "docker://" + reg.Host + "/cli/img@" + digest} {
		status, stdout, stderr = run(t, "pull", "--config", cfg, r)
		if status != 0 || strings.TrimSpace(stdout) != digest {
			t.Fatalf("pull %s: status %d, stdout %q, want %s; stderr %s", r, status, stdout, digest, stderr)
		}
	}
	status, stdout, stderr = run(t, "pull", "--config", cfg, "--json", ref)
	var out struct{ Digest, Image, Rootfs string }
	if status != 0 || json.Unmarshal([]byte(stdout), &out) != nil || out.Digest != digest {
		t.Fatalf("pull --json: %d %q %s", status, stdout, stderr)
	}
	if got, want := registrytest.TreeSum(t, out.Rootfs), registrytest.TreeSum(t, tree); got != want {
		t.Errorf("pulled tree differs:\n%s\nwant\n%s", got, want)
	}
	// Without the credentials: one line naming what to set.
	bare := filepath.Join(dir, "bare.toml")
	os.WriteFile(bare, []byte("[registries.\""+reg.Host+"\"]\nca = \""+s.CA+"\"\n"), 0o600)
	status, _, stderr = run(t, "pull", "--config", bare, "--cache", filepath.Join(dir, "c2"), ref)
	if status != 1 || !strings.Contains(stderr, "password_file") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("pull without credentials: %d %q", status, stderr)
	}
}

func TestPullUsage(t *testing.T) {
	for _, c := range []struct {
		args   []string
		status int
		out    string
	}{
		{[]string{"pull", "-h"}, 0, "usage: berth pull"},
		{[]string{"pull"}, 2, "missing argument"},
		{[]string{"pull", "docker://a/b", "docker://a/c"}, 2, ""},
		{[]string{"pull", "--bogus", "docker://a/b"}, 2, ""},
		{[]string{"image", "push", "-h"}, 0, "usage: berth image push"},
		{[]string{"image", "push", "x"}, 2, ""},
	} {
		status, stdout, stderr := run(t, c.args...)
		if status != c.status || !strings.Contains(stdout+stderr, c.out) {
			t.Errorf("%v: %d %q %q", c.args, status, stdout, stderr)
		}
	}
}

// TestPullMemory: berth pull's peak RSS stays under the 64 MiB of a local
// unpack for an image four times that size (256 MiB of incompressible
// files): blobs are streamed to disk and unpacked from there, never held.
func TestPullMemory(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	tree := registrytest.MakeTree(t, "mem")
	b := make([]byte, 64<<20)
	for i := range 4 {
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(tree, fmt.Sprintf("random%d.bin", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := registrytest.PackImage(t, tree)
	ref := "docker://" + reg.Host + "/mem/img:v1"
	if status, _, stderr := berth(t, "image", "push", "--insecure", img, ref); status != 0 {
		t.Fatalf("push: %s", stderr)
	}
	cmd := exec.Command(berthBin, "pull", "--insecure", "--cache", t.TempDir(), ref)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// ru_maxrss of a child counts the parent's peak at the fork (Go
	// starts children with vfork): the child's own VmHWM, polled while it
	// runs, is berth's alone.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	for polling := true; polling; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("pull: %v\n%s", err, out.String())
			}
			polling = false
		case <-time.After(5 * time.Millisecond):
			peak = max(peak, vmHWM(cmd.Process.Pid))
		}
	}
	st, _ := os.Stat(img)
	t.Logf("berth pull of a %d MiB image: peak RSS %d MiB", st.Size()>>20, peak>>20)
	if peak >= 64<<20 {
		t.Errorf("peak RSS %d MiB, over 64 MiB", peak>>20)
	}
}

// vmHWM is a process's peak resident set in bytes, 0 once it is gone.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestPullProgressTTY: berth pull draws its download progress on stderr
// when stderr is a terminal — one line redrawn in place, ending with the
// whole size — and not when stderr is a pipe, unless --progress asks.
func TestPullProgressTTY(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	img := registrytest.PackImage(t, registrytest.MakeTree(t, "tty"))
	ref := "docker://" + reg.Host + "/cli/tty:v1"
	if status, _, stderr := run(t, "image", "push", "--insecure", img, ref); status != 0 {
		t.Fatalf("push: %d %s", status, stderr)
	}
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	whole := fmt.Sprintf("/ %.1f MiB", float64(st.Size())/(1<<20))
	pull := func(t *testing.T, stderr *os.File, extra ...string) string {
		t.Helper()
		args := append([]string{"pull", "--insecure", "--cache", filepath.Join(t.TempDir(), "cache")}, extra...)
		cmd := exec.Command(berthBin, append(args, ref)...)
		var stdout bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("berth %v: %v", args, err)
		}
		return stdout.String()
	}
	t.Run("terminal", func(t *testing.T) {
		master, slave := openPTY(t)
		defer master.Close()
		digest := pull(t, slave)
		slave.Close()
		out, _ := io.ReadAll(master) // EIO once the slave side is closed
		if !strings.Contains(string(out), "\rdownloading ") || !strings.Contains(string(out), whole+"\r\n") {
			t.Errorf("terminal got %q, want a progress line ending %q", out, whole)
		}
		if !strings.HasPrefix(digest, "sha256:") {
			t.Errorf("stdout %q, want only the digest", digest)
		}
	})
	for _, c := range []struct {
		name  string
		extra []string
		want  bool
	}{{"pipe", nil, false}, {"pipe --progress", []string{"--progress"}, true}} {
		t.Run(c.name, func(t *testing.T) {
			f, err := os.CreateTemp(t.TempDir(), "stderr")
			if err != nil {
				t.Fatal(err)
			}
			pull(t, f, c.extra...)
			out, _ := os.ReadFile(f.Name())
			if got := strings.Contains(string(out), "downloading "); got != c.want {
				t.Errorf("stderr %q: progress drawn %v, want %v", out, got, c.want)
			}
		})
	}
}

// TestPushProgress: berth image push --progress ends with the layer's
// whole size uploaded; without the flag, to a pipe, it draws nothing; a
// second push, the registry having the layer, uploads nothing and says
// nothing of it.
func TestPushProgress(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	tree := registrytest.MakeTree(t, "push-progress")
	noise := make([]byte, 2<<20) // incompressible: the layer is over 2 MiB
	rand.Read(noise)
	if err := os.WriteFile(filepath.Join(tree, "noise"), noise, 0o644); err != nil {
		t.Fatal(err)
	}
	img := registrytest.PackImage(t, tree)
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	whole := fmt.Sprintf("uploading %.1f / %.1f MiB\n", float64(st.Size())/(1<<20), float64(st.Size())/(1<<20))
	other := registrytest.PackImage(t, registrytest.MakeTree(t, "push-plain"))
	for _, c := range []struct {
		tag, img string
		flag     []string
		want     bool
	}{{"plain", other, nil, false}, {"progress", img, []string{"--progress"}, true}, {"again", img, []string{"--progress"}, false}} {
		args := append([]string{"image", "push", "--insecure"}, c.flag...)
		status, _, stderr := run(t, append(args, c.img, "docker://"+reg.Host+"/cli/progress:"+c.tag)...)
		if status != 0 {
			t.Fatalf("push %s: %d %s", c.tag, status, stderr)
		}
		if got := strings.Contains(stderr, "uploading "); got != c.want || c.want && !strings.Contains(stderr, whole) {
			t.Errorf("push %s: stderr %q, want progress %v ending %q", c.tag, stderr, c.want, whole)
		}
	}
}
