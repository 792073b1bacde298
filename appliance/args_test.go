package appliance

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestMachineArgs checks the QEMU command line of each architecture: TCG,
// -no-reboot, the console on stdio and on the kernel command line,
// panic=-1, the user network with its forwards, disks in order (a comma
// in a path doubled, as QEMU reads it), and no NIC without a network.
func TestMachineArgs(t *testing.T) {
	for _, arch := range ArchNames {
		q := QEMU{Arch: arch, Kernel: "k", Initramfs: "i", Append: []string{"berth.debug"},
			Net:   &UserNet{HostFwd: []string{"tcp:127.0.0.1:18080-:8080"}},
			Disks: []string{"/d/a.img", "/d/b,c.img"}}
		args, err := q.Args()
		if err != nil {
			t.Fatal(err)
		}
		line := strings.Join(args, " ")
		a, _ := LookupArch(arch)
		for _, w := range []string{
			a.QEMU + " ", "-accel tcg", "-serial mon:stdio", "-no-reboot", "-m 256 -smp 1", "-kernel k -initrd i",
			"-netdev user,id=n0,dns=10.0.2.3,hostfwd=tcp:127.0.0.1:18080-:8080 -device virtio-net-pci,netdev=n0",
			"-drive file=/d/a.img,format=raw,if=virtio -drive file=/d/b,,c.img,format=raw,if=virtio",
		} {
			if !strings.Contains(line, w) {
				t.Errorf("%s: %q lacks %q", arch, line, w)
			}
		}
		if got := args[len(args)-1]; got != "console="+a.Console+" panic=-1 quiet berth.debug" {
			t.Errorf("%s: kernel command line %q", arch, got)
		}
		if slices.Contains(args, "-enable-kvm") || strings.Contains(line, "kvm") {
			t.Errorf("%s: %q asks for KVM", arch, line)
		}
	}
	noNet, _ := QEMU{Arch: "amd64"}.Args()
	if !strings.Contains(strings.Join(noNet, " "), "-nic none") {
		t.Errorf("no network: %q", noNet)
	}
	board := Arch{QEMU: "qemu-system-aarch64", Machine: []string{"-M", "raspi3b", "-serial", "null", "-serial", "mon:stdio"}, Console: "ttyS1"}
	pi, _ := QEMU{Machine: &board}.Args()
	if n := strings.Count(strings.Join(pi, " "), "-serial"); n != 2 {
		t.Errorf("a board routing its serial ports gets %d -serial: %q", n, pi)
	}
	if _, err := (QEMU{Arch: "mips"}).Args(); err == nil {
		t.Error("an unknown architecture")
	}
}

// TestForward reads -p HOSTPORT:GUESTPORT.
func TestForward(t *testing.T) {
	for in, want := range map[string]string{
		"18080:80": "tcp:127.0.0.1:18080-:80", "1:65535": "tcp:127.0.0.1:1-:65535",
		"80": "", "0:80": "", "80:0": "", "65536:1": "", "a:b": "", "80:80:80": "", ":80": "", "-1:80": "",
	} {
		got, err := Forward(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("Forward(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestKernelModules finds a kernel's modules as a Debian package or an
// installed system lays them out, and says why when it cannot.
func TestKernelModules(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/boot", "a/lib/modules/6.1.0-9-amd64", "b/boot", "b/usr/lib/modules/6.12.1-riscv64", "c/boot"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct{ kernel, want, err string }{
		{"a/boot/vmlinuz-6.1.0-9-amd64", "a/lib/modules/6.1.0-9-amd64", ""},
		{"b/boot/vmlinux-6.12.1-riscv64", "b/usr/lib/modules/6.12.1-riscv64", ""},
		{"c/boot/vmlinuz-6.1.0-9-amd64", "", "no modules directory"},
		{"c/boot/Image", "", "its name does not say its release"},
	}
	for _, tc := range tests {
		got, err := KernelModules(filepath.Join(root, tc.kernel))
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, want an error with %q", tc.kernel, err, tc.err)
		case tc.err == "" && (err != nil || got != filepath.Join(root, tc.want)):
			t.Errorf("%s: %s, %v", tc.kernel, got, err)
		}
	}
}

// TestBerthFor takes the running binary for its own architecture and
// berth-linux-ARCH beside it for another, and says how to build a
// missing one.
func TestBerthFor(t *testing.T) {
	self, _ := os.Executable()
	if got, err := BerthFor(runtime.GOARCH); err != nil || got != self {
		t.Errorf("own arch: %s, %v", got, err)
	}
	other := "riscv64"
	want := filepath.Join(filepath.Dir(self), "berth-linux-"+other)
	_, err := BerthFor(other)
	if err == nil || !strings.Contains(err.Error(), "no "+want+" beside this berth") || !strings.Contains(err.Error(), "make out/berth-linux-riscv64") {
		t.Errorf("missing: %v", err)
	}
	if err := os.WriteFile(want, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(want)
	if got, err := BerthFor(other); err != nil || got != want {
		t.Errorf("beside: %s, %v", got, err)
	}
}

// TestLookupArch: every name of ArchNames, in its order, is one of the
// table's, and nothing else is.
func TestLookupArch(t *testing.T) {
	if len(arches) != len(ArchNames) {
		t.Fatalf("%d architectures in the table, %d names", len(arches), len(ArchNames))
	}
	for i, name := range ArchNames {
		if a, ok := LookupArch(name); !ok || a.GOARCH != name || arches[i].GOARCH != name {
			t.Errorf("%s: %+v %v, table's %d is %s", name, a, ok, i, arches[i].GOARCH)
		}
	}
	for _, name := range []string{"", "x86_64", "armhf", "AMD64", "arm64 "} {
		if _, ok := LookupArch(name); ok {
			t.Errorf("LookupArch(%q) found one", name)
		}
	}
}
