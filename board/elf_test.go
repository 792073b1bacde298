package board

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestELFSection reads .modinfo from 64- and 32-bit modules and refuses,
// with an error and no panic, modules cut short or whose headers point
// out of the file or at more than berth reads.
func TestELFSection(t *testing.T) {
	for _, c := range []struct{ arch, rel string }{
		{"amd64", "kernel/fs/overlayfs/overlay.ko"},
		{"arm", "kernel/fs/overlayfs/overlay.ko"},
	} {
		data, err := os.ReadFile(filepath.Join(debianModules(t, c.arch), c.rel))
		if err != nil {
			t.Fatal(err)
		}
		e, err := openELF(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		info, err := e.section(".modinfo")
		if err != nil || !bytes.Contains(info, []byte("\x00vermagic=")) || !sameMachine(e.machine, c.arch) {
			t.Errorf("%s: machine %s, .modinfo %q, %v", c.arch, machineName(e.machine), info, err)
		}
		if none, err := e.section(".no_such_section"); none != nil || err != nil {
			t.Errorf("%s: a missing section: %q, %v", c.arch, none, err)
		}
		// e_shoff, e_shentsize, e_shstrndx
		shoff, entsize, strndx := 0x20, 0x2e, 0x32
		if e.is64 {
			shoff, entsize, strndx = 0x28, 0x3a, 0x3e
		}
		for name, bad := range map[string][]byte{
			"cut short":         data[:len(data)/2],
			"header only":       data[:16],
			"not ELF":           append([]byte("\x7fELG"), data[4:]...),
			"headers outside":   patch(data, shoff, 0xffffff00, e),
			"names index":       patch16(data, strndx, 0xffff, e),
			"tiny header entry": patch16(data, entsize, 8, e),
		} {
			e, err := openELF(bytes.NewReader(bad))
			if err == nil {
				_, err = e.section(".modinfo")
			}
			if err == nil {
				t.Errorf("%s, %s: no error", c.arch, name)
			}
		}
	}
}

// patch writes v at off in a copy of data, in e's width and byte order.
func patch(data []byte, off int, v uint32, e *elfFile) []byte {
	out := bytes.Clone(data)
	if e.is64 {
		e.order.PutUint64(out[off:], uint64(v))
	} else {
		e.order.PutUint32(out[off:], v)
	}
	return out
}

// patch16 writes a 16-bit v at off in a copy of data.
func patch16(data []byte, off int, v uint16, e *elfFile) []byte {
	out := bytes.Clone(data)
	e.order.PutUint16(out[off:], v)
	return out
}

// TestELFMachine tells a program for this architecture from one for
// another, and from a file that is no program.
func TestELFMachine(t *testing.T) {
	self, _ := os.Executable()
	if err := ELFMachine(self, runtime.GOARCH); err != nil {
		t.Errorf("this test binary: %v", err)
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	if err := ELFMachine(self, other); err == nil || !strings.Contains(err.Error(), "is a program for EM_") {
		t.Errorf("for %s: %v", other, err)
	}
	script := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := ELFMachine(script, runtime.GOARCH); err == nil || !strings.Contains(err.Error(), "not an ELF file") {
		t.Errorf("a script: %v", err)
	}
	if err := ELFMachine(self, "mips"); err == nil {
		t.Error("an unknown architecture")
	}
	// A dynamically linked program of this machine: Debian's own.
	for _, dyn := range []string{"/bin/true", "/usr/bin/true"} {
		if _, err := os.Stat(dyn); err != nil {
			continue
		}
		if err := ELFMachine(dyn, runtime.GOARCH); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
			t.Errorf("%s, dynamically linked: %v", dyn, err)
		}
		return
	}
	t.Error("no dynamically linked program to test with")
}

// sameMachine reports whether machine is arch's ELF machine.
func sameMachine(machine uint16, arch string) bool {
	want, ok := elfMachine(arch)
	return ok && machine == want
}
