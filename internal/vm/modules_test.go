package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestModules(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")
	set, err := Modules(repo, "amd64", []string{"i6300esb", "overlay"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(set.Dep, "kernel/drivers/watchdog/i6300esb.ko:") || !strings.Contains(set.Dep, "kernel/fs/overlayfs/overlay.ko:") {
		t.Errorf("modules.dep:\n%s", set.Dep)
	}
	// nf_tables: libcrc32c's soft dependency on crc32c comes along, and
	// the aliases the kernel asks request_module for are listed.
	nft, err := Modules(repo, "amd64", []string{"nf_tables", "nft_nat"})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"softdep libcrc32c pre: crc32c"} {
		if !strings.Contains(nft.Softdep, w) {
			t.Errorf("modules.softdep lacks %q:\n%s", w, nft.Softdep)
		}
	}
	for _, w := range []string{"alias nfnetlink-subsys-10 nf_tables", "alias nft-expr-nat nft_nat"} {
		if !strings.Contains(nft.Alias, w) {
			t.Errorf("modules.alias lacks %q", w)
		}
	}
	if !strings.Contains(nft.Dep, "crc32c") {
		t.Errorf("crc32c, libcrc32c's soft dependency, is not in the set:\n%s", nft.Dep)
	}
	if _, err := Modules(repo, "amd64", []string{"no_such_module"}); err == nil {
		t.Error("a missing module resolved")
	}
}

// TestCompressedModules reads the dependencies of modules compressed as
// Debian's newer kernels ship them (.ko.xz, .ko.zst), made here from the
// package's own .ko files.
func TestCompressedModules(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")
	set, err := Modules(repo, "amd64", []string{"bridge"})
	if err != nil {
		t.Fatal(err)
	}
	var ko string
	for _, host := range set.Files {
		if filepath.Base(host) == "bridge.ko" {
			ko = host
		}
	}
	want, err := moduleDepends(ko)
	if err != nil || len(want) == 0 {
		t.Fatalf("bridge.ko depends on %v, %v", want, err)
	}
	dir := t.TempDir()
	for _, c := range []struct{ ext, tool string }{{".xz", "xz"}, {".zst", "zstd"}} {
		out := filepath.Join(dir, "bridge.ko"+c.ext)
		cmd := exec.Command(c.tool, "-c", ko)
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout = f
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v", c.tool, err)
		}
		f.Close()
		got, err := moduleDepends(out)
		if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: depends %v, %v; want %v", out, got, err, want)
		}
		if name, ok := moduleFileName(filepath.Base(out)); !ok || name != "bridge" {
			t.Errorf("module name of %s: %q", out, name)
		}
	}
}
