package appliance_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"berth/appliance"
)

// build builds spec into a new file and returns its bytes.
func build(t *testing.T, spec appliance.Spec) []byte {
	t.Helper()
	b, err := appliance.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "initramfs")
	if err := b.Write(out); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestInitramfsReproducible builds the same appliance twice — the second
// time from copies of every input with other modification times, owners,
// modes and directory order — and gets the same bytes; SOURCE_DATE_EPOCH
// changes them, as it sets every record's time.
func TestInitramfsReproducible(t *testing.T) {
	config, files := appDir(t)
	spec := appliance.Spec{Config: config, Arch: runtime.GOARCH, Berth: testBerth(t), ModulesDir: fakeModules(t), Files: files}
	first := build(t, spec)
	if again := build(t, spec); !bytes.Equal(first, again) {
		t.Fatal("two builds of the same inputs differ")
	}

	// The same inputs elsewhere: copied (cp without -p: new times), then
	// touched, chowned and chmodded.
	moved := spec
	copyTree := func(src string) string {
		dst := filepath.Join(t.TempDir(), filepath.Base(src))
		if out, err := exec.Command("cp", "-r", src, dst).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		past := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		err := filepath.Walk(dst, func(p string, info os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			if err := os.Lchown(p, 1234, 5678); err != nil {
				return err
			}
			if !info.IsDir() {
				if err := os.Chmod(p, 0o600); err != nil {
					return err
				}
			}
			return os.Chtimes(p, past, past)
		})
		if err != nil {
			t.Fatal(err)
		}
		return dst
	}
	moved.Config = filepath.Join(copyTree(filepath.Dir(config)), "berth.toml")
	moved.ModulesDir = copyTree(spec.ModulesDir)
	moved.Berth = filepath.Join(copyTree(spec.Berth))
	moved.Files = map[string]string{}
	for at, host := range files {
		moved.Files[at] = filepath.Join(copyTree(filepath.Dir(host)), filepath.Base(host))
	}
	if again := build(t, moved); !bytes.Equal(first, again) {
		t.Error("copies of the inputs with other times, owners and modes give other bytes")
	}

	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if epoch := build(t, spec); bytes.Equal(first, epoch) {
		t.Error("SOURCE_DATE_EPOCH does not change the records' times")
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	b, err := appliance.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(filepath.Join(t.TempDir(), "x")); err == nil || !strings.Contains(err.Error(), `SOURCE_DATE_EPOCH="yesterday"`) {
		t.Errorf("a bad SOURCE_DATE_EPOCH: %v", err)
	}
}

// TestInitramfsOrder gets the same bytes whatever order files are added
// in, and refuses two different files at one path.
func TestInitramfsOrder(t *testing.T) {
	names := []string{"b/z", "a", "b/a", "c/d/e"}
	var outs [][]byte
	for _, order := range [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}} {
		i := appliance.NewInitramfs()
		for _, n := range order {
			if err := i.AddData(names[n], []byte(names[n]), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var buf bytes.Buffer
		if err := i.Encode(&buf); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, buf.Bytes())
	}
	if !bytes.Equal(outs[0], outs[1]) || !bytes.Equal(outs[0], outs[2]) {
		t.Error("the order files are added in changes the archive")
	}
	i := appliance.NewInitramfs()
	if err := i.AddData("etc/x", []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := i.AddData("etc/x", []byte("one"), 0o644); err != nil {
		t.Errorf("the same file twice: %v", err)
	}
	if err := i.AddData("etc/x", []byte("two"), 0o644); err == nil || !strings.Contains(err.Error(), "/etc/x is there already") {
		t.Errorf("another file at the same path: %v", err)
	}
	if err := i.AddData("etc/x/y", []byte("two"), 0o644); err == nil || !strings.Contains(err.Error(), "/etc/x is a file") {
		t.Errorf("a file under a file: %v", err)
	}
}
