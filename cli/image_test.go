package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestImageVerbs drives `berth image` as a user would: pack a small tree,
// then each verb, checking its exit status and what it prints.
func TestImageVerbs(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	write(t, filepath.Join(src, "etc", "motd"), "hello from the image\n")
	write(t, filepath.Join(src, "srv", "data.bin"), strings.Repeat("0123456789", 100000))
	if err := os.Symlink("../etc/motd", filepath.Join(src, "srv", "motd")); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "img.tar.zst")
	if status, _, stderr := berth(t, "image", "pack", src, "-o", img); status != 0 {
		t.Fatalf("pack: %d %s", status, stderr)
	}
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	for _, k := range []string{"k", "other"} {
		if status, _, stderr := berth(t, "image", "keygen", "-o", filepath.Join(dir, k)); status != 0 {
			t.Fatalf("keygen: %d %s", status, stderr)
		}
	}
	wrong := "sha256:" + strings.Repeat("ab", 32)
	truncated := filepath.Join(dir, "truncated.tar.zst")
	write(t, truncated, string(raw[:len(raw)/2]))

	tests := []struct {
		name       string
		args       []string
		status     int
		stdout     string // substring ("" = anything)
		stderr     string // substring
		notCreated string // a path that must not exist afterwards
	}{
		{"ls root", []string{"ls", img}, 0, "etc\n", "", ""},
		{"ls dir", []string{"ls", img, "/srv"}, 0, "srv/motd -> ../etc/motd", "", ""},
		{"ls missing", []string{"ls", img, "/nope"}, 1, "", "ls " + img + ": /nope: no such file in the image", ""},
		{"cat", []string{"cat", img, "/etc/motd"}, 0, "hello from the image\n", "", ""},
		{"cat missing", []string{"cat", img, "/etc/nope"}, 1, "", "/etc/nope: no such file in the image", ""},
		{"cat a directory", []string{"cat", img, "/etc"}, 1, "", "is a directory", ""},
		{"digest", []string{"digest", img}, 0, digest + "\n", "", ""},
		{"sign", []string{"sign", "--key", filepath.Join(dir, "k.key"), img}, 0, "", "signed " + digest, ""},
		{"verify", []string{"verify", "--pub", filepath.Join(dir, "k.pub"), img}, 0, "verified " + digest, "", ""},
		{"verify by another key", []string{"verify", "--pub", filepath.Join(dir, "other.pub"), img}, 1, "", "not a valid signature", ""},
		{"unpack, wrong digest", []string{"unpack", "--digest", wrong, img, filepath.Join(dir, "out1")}, 1, "", "digest mismatch", filepath.Join(dir, "out1")},
		{"unpack, bad signature", []string{"unpack", "--pub", filepath.Join(dir, "other.pub"), img, filepath.Join(dir, "out2")}, 1, "", "signature", filepath.Join(dir, "out2")},
		{"unpack, truncated", []string{"unpack", truncated, filepath.Join(dir, "out4")}, 1, "", "offset", filepath.Join(dir, "out4")},
		{"unpack, verified", []string{"unpack", "--digest", digest, "--pub", filepath.Join(dir, "k.pub"), img, filepath.Join(dir, "out3")}, 0, "", "", ""},
		{"unknown verb", []string{"frob"}, 2, "", "unknown subcommand", ""},
		{"cat without a path", []string{"cat", img}, 2, "", "usage", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, stdout, stderr := berth(t, append([]string{"image"}, tc.args...)...)
			if status != tc.status || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("berth image %v: status %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)",
					tc.args, status, tc.status, stdout, tc.stdout, stderr, tc.stderr)
			}
			if tc.notCreated != "" {
				if _, err := os.Lstat(tc.notCreated); err == nil {
					t.Errorf("%s was created", tc.notCreated)
				}
			}
		})
	}
	got, err := os.ReadFile(filepath.Join(dir, "out3", "srv", "data.bin"))
	if err != nil || string(got) != strings.Repeat("0123456789", 100000) {
		t.Errorf("unpacked data.bin differs (err %v)", err)
	}

	// ls --json is for scripts: one object per entry.
	_, stdout, _ := berth(t, "image", "ls", "--json", img, "/etc/motd")
	var rows []struct {
		Path string `json:"path"`
		Type string `json:"type"`
		Size int64  `json:"size"`
	}
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil || len(rows) != 1 ||
		rows[0].Path != "etc/motd" || rows[0].Type != "file" || rows[0].Size != 21 {
		t.Errorf("ls --json: %v %+v\n%s", err, rows, stdout)
	}
}

// TestImageUnpackAsTyped runs `berth image unpack` from a shell exactly
// as a user types it, into a directory made just before, the working
// directory, and a missing one: each gets the image's tree and nothing is
// left beside it.
func TestImageUnpackAsTyped(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	write(t, filepath.Join(src, "etc", "motd"), "hello\n")
	write(t, filepath.Join(src, "bin", "tool"), "#!/bin/sh\n")
	img := filepath.Join(dir, "img.tar.zst")
	if status, _, stderr := berth(t, "image", "pack", src, "-o", img); status != 0 {
		t.Fatalf("pack: %d %s", status, stderr)
	}
	for _, c := range []struct{ name, script string }{
		{"mkdir then unpack", "mkdir d && berth image unpack img.tar.zst d"},
		{"into the working directory", "mkdir d && cd d && berth image unpack ../img.tar.zst ."},
		{"into a missing directory", "berth image unpack img.tar.zst d"},
	} {
		t.Run(c.name, func(t *testing.T) {
			work := t.TempDir()
			if err := os.Link(img, filepath.Join(work, "img.tar.zst")); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("sh", "-c", c.script)
			cmd.Dir = work
			cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(berthBin)+":"+os.Getenv("PATH"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", c.script, err, out)
			}
			if got, err := os.ReadFile(filepath.Join(work, "d", "etc", "motd")); err != nil || string(got) != "hello\n" {
				t.Errorf("d/etc/motd: %q %v", got, err)
			}
			ents, _ := os.ReadDir(work)
			ents2, _ := os.ReadDir(filepath.Join(work, "d"))
			if len(ents) != 2 || len(ents2) != 2 {
				t.Errorf("left %d entries beside d (want the image and d), %d in d (want bin, etc)", len(ents), len(ents2))
			}
		})
	}
}

// TestImageGCSummary checks `berth image gc` says what it did, and
// refuses a directory that is not a berth cache, leaving it alone.
func TestImageGCSummary(t *testing.T) {
	dir := t.TempDir()
	keep := "sha256:" + strings.Repeat("0", 64)
	notCache := filepath.Join(dir, "home")
	write(t, filepath.Join(notCache, "notes.txt"), "mine\n")
	status, stdout, stderr := berth(t, "image", "gc", "--cache", notCache, "--keep", keep)
	if status != 1 || stdout != "" || !strings.Contains(stderr, "not a berth image cache") {
		t.Errorf("gc of a directory that is no cache: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
	if ents, _ := os.ReadDir(notCache); len(ents) != 1 {
		t.Errorf("gc wrote into %s: %d entries", notCache, len(ents))
	}
	status, _, stderr = berth(t, "image", "gc", "--cache", filepath.Join(dir, "missing"), "--keep", keep)
	if status != 1 || !strings.Contains(stderr, "no image cache at") {
		t.Errorf("gc of a missing directory: status %d, stderr %q", status, stderr)
	}

	cache := filepath.Join(dir, "cache")
	if err := os.Mkdir(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	status, stdout, stderr = berth(t, "image", "gc", "--cache", cache, "--keep", keep)
	if status != 0 || stdout != "" || !strings.Contains(stderr, "nothing to remove, kept 0 trees") {
		t.Errorf("gc of an empty cache: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
	tree := filepath.Join(cache, "sha256-"+strings.Repeat("ab", 32), "rootfs")
	write(t, filepath.Join(tree, "data"), strings.Repeat("x", 100000))
	// A digest cut as the log prints it, or not one, and a state
	// directory that is not there keep nothing: refused, the tree kept.
	for _, args := range [][]string{
		{"--keep", "sha256:" + strings.Repeat("ab", 6)},
		{"--keep", strings.Repeat("ab", 32)},
		{"--keep", "sha256:not-hex!"},
		{"--keep", keep, "--state", filepath.Join(dir, "stat")},
		{"--keep", keep, "--state", dir}, // there, but not berth's state
	} {
		status, stdout, stderr = berth(t, append([]string{"image", "gc", "--cache", cache}, args...)...)
		if status != 2 || stdout != "" || !strings.Contains(stderr, "(nothing removed)") {
			t.Errorf("gc %v: status %d, stdout %q, stderr %q; want it refused", args, status, stdout, stderr)
		}
		if _, err := os.Stat(tree); err != nil {
			t.Fatalf("gc %v removed the tree: %v", args, err)
		}
	}
	status, stdout, stderr = berth(t, "image", "gc", "--cache", cache, "--keep", keep)
	if status != 0 || stdout != "removed sha256:"+strings.Repeat("ab", 32)+"\n" || !strings.Contains(stderr, "removed 1 tree, kept 0, freed 0.1 MiB") {
		t.Errorf("gc of a cache with one tree: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
}
