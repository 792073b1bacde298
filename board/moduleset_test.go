package board

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// debianModules is the modules directory of the Debian kernel package
// that make fetch unpacked for arch.
func debianModules(t *testing.T, arch string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	pkg := filepath.Join(filepath.Dir(file), "..", ".cache", "deb", arch, "linux-image")
	dirs, _ := filepath.Glob(filepath.Join(pkg, "lib", "modules", "*"))
	more, _ := filepath.Glob(filepath.Join(pkg, "usr", "lib", "modules", "*"))
	if dirs = append(dirs, more...); len(dirs) != 1 {
		t.Fatalf("want one modules directory in %s, found %v: run make fetch-%s", pkg, dirs, arch)
	}
	return dirs[0]
}

// TestModuleSet picks modules from Debian's amd64 kernel package, which
// has no depmod output: dependencies, soft dependencies (libcrc32c needs
// crc32c, an alias of crc32c_generic and crc32c_intel) and aliases come
// from the modules' .modinfo.
func TestModuleSet(t *testing.T) {
	dir := debianModules(t, "amd64")
	s, err := OpenModuleSet(dir, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"i6300esb", "overlay", "nf_tables", "nft-expr-nat", "virtio_pci"} {
		if err := s.Add(n); err != nil {
			t.Fatalf("add %s: %v", n, err)
		}
	}
	if s.Release() != filepath.Base(dir) {
		t.Errorf("release %s, want %s", s.Release(), filepath.Base(dir))
	}
	got := s.Modules()
	for _, w := range []string{"i6300esb", "overlay", "nf_tables", "nfnetlink", "libcrc32c", "crc32c_generic", "nft_nat", "nf_nat", "virtio_pci"} {
		if !slices.Contains(got, w) {
			t.Errorf("the set lacks %s: %v", w, got)
		}
	}
	ix := s.Index()
	rel := "lib/modules/" + s.Release() + "/"
	for file, want := range map[string][]string{
		"modules.dep":     {"kernel/drivers/watchdog/i6300esb.ko: kernel/drivers/watchdog/watchdog.ko\n", "kernel/fs/overlayfs/overlay.ko:", "kernel/net/netfilter/nf_tables.ko: "},
		"modules.softdep": {"softdep libcrc32c pre: crc32c"},
		"modules.alias":   {"alias nfnetlink-subsys-10 nf_tables", "alias nft-expr-nat nft_nat", "alias crc32c crc32c_generic"},
		"modules.builtin": {"kernel/"},
	} {
		for _, w := range want {
			if !strings.Contains(string(ix[rel+file]), w) {
				t.Errorf("%s lacks %q:\n%s", file, w, ix[rel+file])
			}
		}
	}
	if strings.Contains(string(ix[rel+"modules.alias"]), " bridge\n") {
		t.Error("modules.alias lists a module that is not in the set")
	}
	for initramfs, host := range s.Files() {
		if !strings.HasPrefix(initramfs, rel+"kernel/") || !strings.HasPrefix(host, dir+"/kernel/") {
			t.Errorf("module file %s from %s", initramfs, host)
		}
	}
	err = s.Add("no_such_module")
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "no_such_module") {
		t.Errorf("a missing module: %v", err)
	}
}

// TestModuleSetLoadsAsBerth writes a set's files and index as an
// initramfs holds them and loads what was asked for through the index
// berth reads at boot: every module of the set is loaded, dependencies
// first, and nothing outside it is needed.
func TestModuleSetLoadsAsBerth(t *testing.T) {
	dir := debianModules(t, "amd64")
	s, err := OpenModuleSet(dir, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"overlay", "nf_tables", "nft_masq", "bridge", "virtio_net", "ext4"}
	for _, n := range names {
		if err := s.Add(n); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir()
	for p, data := range s.Index() {
		writeBytes(t, filepath.Join(root, p), data)
	}
	for p, host := range s.Files() {
		data, err := os.ReadFile(host)
		if err != nil {
			t.Fatal(err)
		}
		writeBytes(t, filepath.Join(root, p), data)
	}
	ix, err := readModIndex(filepath.Join(root, "lib/modules", s.Release()))
	if err != nil {
		t.Fatal(err)
	}
	ix.loaded = map[string]bool{}
	var order []string
	ix.insmod = func(p string) error {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("berth would load %s: %v", p, err)
		}
		order = append(order, moduleName(p))
		return nil
	}
	for _, n := range names {
		if _, err := ix.probe(n); err != nil {
			t.Errorf("probe %s: %v", n, err)
		}
	}
	loaded := slices.Sorted(slices.Values(order))
	if !slices.Equal(loaded, s.Modules()) {
		t.Errorf("berth loads %v\nthe set holds %v", loaded, s.Modules())
	}
	if i, j := slices.Index(order, "crc32c_generic"), slices.Index(order, "libcrc32c"); i < 0 || i > j {
		t.Errorf("crc32c_generic is not loaded before libcrc32c: %v", order)
	}
}

// TestModuleSetCompressed reads modules compressed as Debian's newer
// kernels ship them (.ko.xz, .ko.zst), made here from the amd64
// package's bridge, stp and llc, and Debian 13's riscv64 package (.ko.xz).
func TestModuleSetCompressed(t *testing.T) {
	src := debianModules(t, "amd64")
	for _, c := range []struct{ ext, tool string }{{".xz", "xz"}, {".zst", "zstd"}} {
		t.Run(c.tool, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), filepath.Base(src))
			for _, rel := range []string{"kernel/net/bridge/bridge.ko", "kernel/net/802/stp.ko", "kernel/net/llc/llc.ko"} {
				out := filepath.Join(dir, rel+c.ext)
				if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
					t.Fatal(err)
				}
				if b, err := exec.Command(c.tool, "-q", "-c", filepath.Join(src, rel)).Output(); err != nil {
					t.Fatalf("%s: %v", c.tool, err)
				} else {
					writeBytes(t, out, b)
				}
			}
			s, err := OpenModuleSet(dir, "amd64")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Add("bridge"); err != nil {
				t.Fatal(err)
			}
			dep := string(s.Index()["lib/modules/"+s.Release()+"/modules.dep"])
			if want := "kernel/net/bridge/bridge.ko" + c.ext + ": kernel/net/llc/llc.ko" + c.ext + " kernel/net/802/stp.ko" + c.ext + "\n"; !strings.Contains(dep, want) {
				t.Errorf("modules.dep:\n%s\nwant %q", dep, want)
			}
		})
	}
	t.Run("riscv64", func(t *testing.T) {
		s, err := OpenModuleSet(debianModules(t, "riscv64"), "riscv64")
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"overlay", "virtio_net", "virtio_pci"} { // virtio_pci is built in
			if err := s.Add(n); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Contains(s.Modules(), "overlay") || slices.Contains(s.Modules(), "virtio_pci") {
			t.Errorf("modules %v", s.Modules())
		}
		if _, ok := s.Files()["lib/modules/"+s.Release()+"/kernel/fs/overlayfs/overlay.ko.xz"]; !ok {
			t.Errorf("files %v", s.Files())
		}
	})
}

// TestModuleSetWrongKernel refuses modules of another architecture, and
// a directory with no modules.
func TestModuleSetWrongKernel(t *testing.T) {
	s, err := OpenModuleSet(debianModules(t, "amd64"), "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add("overlay"); err == nil || !strings.Contains(err.Error(), "is for EM_X86_64, not arm64") {
		t.Errorf("an amd64 module for arm64: %v", err)
	}
	if _, err := OpenModuleSet(t.TempDir(), "amd64"); err == nil || !strings.Contains(err.Error(), "no kernel modules") {
		t.Errorf("an empty directory: %v", err)
	}
}

func writeBytes(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestProfileModulesInDebian finds every module and NIC driver of every
// profile in the Debian kernel of each architecture the profile is for:
// a misspelt or missing module would leave an initramfs without it.
func TestProfileModulesInDebian(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64", "arm", "riscv64"} {
		t.Run(arch, func(t *testing.T) {
			s, err := OpenModuleSet(debianModules(t, arch), arch)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range Profiles {
				if !p.ForArch(arch) {
					continue
				}
				mods := p.Modules
				if arch != "arm" || !strings.HasPrefix(p.Name, "raspberrypi-") {
					// Debian's armmp kernel has no Pi 4 Ethernet (genet).
					mods = append(append([]string(nil), mods...), p.NICs...)
				}
				for _, m := range mods {
					if err := s.Add(m); err != nil {
						t.Errorf("profile %s: %v", p.Name, err)
					}
				}
			}
		})
	}
}

// fakeModulesDir writes a modules directory with depmod's output, whose
// modules are copies of Debian amd64 modules under other names: what the
// set takes from modules.dep, modules.softdep and modules.alias cannot
// come from the modules' own .modinfo, which say otherwise.
func fakeModulesDir(t *testing.T) string {
	t.Helper()
	src := debianModules(t, "amd64")
	dir := filepath.Join(t.TempDir(), "6.1.0-fake-amd64")
	for name, from := range map[string]string{
		"kernel/a/alpha.ko": "kernel/drivers/watchdog/i6300esb.ko", // its .modinfo: depends=watchdog
		"kernel/b/beta.ko":  "kernel/fs/overlayfs/overlay.ko",
		"kernel/c/gamma.ko": "kernel/net/llc/llc.ko",
		"kernel/d/delta.ko": "kernel/net/802/stp.ko",
		"kernel/e/other.ko": "kernel/drivers/watchdog/watchdog.ko",
	} {
		data, err := os.ReadFile(filepath.Join(src, from))
		if err != nil {
			t.Fatal(err)
		}
		writeBytes(t, filepath.Join(dir, name), data)
	}
	writeBytes(t, filepath.Join(dir, "modules.dep"), []byte("kernel/a/alpha.ko: kernel/b/beta.ko\nkernel/b/beta.ko:\n"+
		"kernel/c/gamma.ko:\nkernel/d/delta.ko:\nkernel/e/other.ko:\n"))
	writeBytes(t, filepath.Join(dir, "modules.softdep"), []byte("# soft dependencies\nsoftdep alpha pre: gamma post: no_such\n"))
	writeBytes(t, filepath.Join(dir, "modules.alias"), []byte("alias fake:thing* delta\n"))
	writeBytes(t, filepath.Join(dir, "modules.builtin"), []byte("kernel/z/zeta.ko\n"))
	return dir
}

// TestModuleSetDepmod takes dependencies, soft dependencies and aliases
// from the directory's depmod output when it has one, and refuses a
// modules.dep that names files the directory lacks or outside it.
func TestModuleSetDepmod(t *testing.T) {
	dir := fakeModulesDir(t)
	s, err := OpenModuleSet(dir, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"alpha", "fake:thing-1", "zeta"} {
		if err := s.Add(n); err != nil {
			t.Fatalf("add %s: %v", n, err)
		}
	}
	if got, want := s.Modules(), []string{"alpha", "beta", "delta", "gamma"}; !slices.Equal(got, want) {
		t.Errorf("modules %v, want %v", got, want)
	}
	ix := s.Index()
	rel := "lib/modules/" + s.Release() + "/"
	for file, want := range map[string]string{
		"modules.dep":     "kernel/a/alpha.ko: kernel/b/beta.ko\nkernel/b/beta.ko:\nkernel/c/gamma.ko:\nkernel/d/delta.ko:\n",
		"modules.softdep": "softdep alpha pre: gamma post: no_such\n",
		"modules.alias":   "alias fake:thing* delta\n",
		"modules.builtin": "kernel/z/zeta.ko\n",
	} {
		if got := string(ix[rel+file]); got != want {
			t.Errorf("%s:\n%s\nwant:\n%s", file, got, want)
		}
	}

	for name, dep := range map[string]string{
		"a missing file": "kernel/a/alpha.ko:\nkernel/x/missing.ko:\n",
		"a file outside": "kernel/a/alpha.ko: ../../outside.ko\n../../outside.ko:\n",
	} {
		writeBytes(t, filepath.Join(dir, "modules.dep"), []byte(dep))
		if _, err := OpenModuleSet(dir, "amd64"); err == nil || !strings.Contains(err.Error(), "modules.dep names") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestValidRelease: a kernel release names lib/modules/RELEASE in the
// artifact: a module's vermagic or a modules directory that would put
// files elsewhere (../../etc/evil) is refused.
func TestValidRelease(t *testing.T) {
	for r, want := range map[string]bool{
		"6.1.0-57-amd64": true, "6.18.44-fc-v1252": true, "5.10.0+": true,
		"": false, ".": false, "..": false, "../../etc/evil": false, "a/b": false, "a b": false,
		"x\x1b[2J": false, strings.Repeat("a", 64): true, strings.Repeat("a", 65): false,
	} {
		if got := validRelease(r); got != want {
			t.Errorf("validRelease(%q) = %v, want %v", r, got, want)
		}
	}
	if _, err := OpenModuleSet(".", "amd64"); err == nil || !strings.Contains(err.Error(), `"." is no kernel release`) {
		t.Errorf("OpenModuleSet(.): %v", err)
	}
}

// TestModuleIndexFilesNotFollowed: berth initramfs reads a modules
// directory anyone may have made: an index file that is a symlink (to
// the build machine's /etc/hostname, say, which went into the artifact
// as modules.builtin) or a FIFO (on which the build hung) is refused.
func TestModuleIndexFilesNotFollowed(t *testing.T) {
	for _, name := range []string{"modules.builtin", "modules.alias", "modules.dep"} {
		for _, kind := range []string{"symlink", "fifo"} {
			dir := fakeModulesDir(t)
			p := filepath.Join(dir, name)
			os.Remove(p)
			var err error
			if kind == "symlink" {
				err = os.Symlink("/etc/hostname", p)
			} else {
				err = syscall.Mkfifo(p, 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				s, err := OpenModuleSet(dir, "amd64")
				if err == nil {
					err = s.Add("alpha")
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Errorf("%s as a %s: taken", name, kind)
				}
			case <-time.After(time.Minute): // a hang guard, not a timing check
				t.Fatalf("%s as a %s: the build waits on it", name, kind)
			}
		}
	}
}

// TestAliasOfMissingModule: a modules.alias line naming a module with no
// file makes that name not found, as a missing module is (an optional
// one is then a note), not an error about decompressing the directory.
func TestAliasOfMissingModule(t *testing.T) {
	dir := fakeModulesDir(t)
	writeBytes(t, filepath.Join(dir, "modules.alias"), []byte("alias fake:thing* delta\nalias i6300esb ghost\n"))
	s, err := OpenModuleSet(dir, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add("i6300esb"); err == nil || !errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "decompress") {
		t.Errorf("an alias of a module with no file: %v, want not found", err)
	}
}
